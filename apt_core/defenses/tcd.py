"""TCD: Triple Cooperative Defense, three MF models that label data for each other.

Paper: Qingyang Wang, Defu Lian, Chenwang Wu, Enhong Chen, "Towards Robust Recommender
Systems via Triple Cooperative Defense", arXiv 2210.13762, 2022 (the APT authors' lab's
successor to APT; extended as "Securing Recommender System via Cooperative Training").

Threat model: none: honest; trains on the observed, possibly poisoned, data.  The defender
neither detects nor removes anyone and never reads clean data.  Budget: no accounts are
added; each model gets pseudo-ratings on unrated (user, item) pairs, at most every pair of the
rating matrix per model per epoch (``mask_rate`` and ``max_pairs`` bound it).

Schedule (the authors' ``models/co_SVD.py``): three MF models; during the first ``pre``
epochs each trains on the observed ratings only.  From then on, every epoch, for model
j = 0, 1, 2 in turn: predict every (user, item) pair with the other two models (their
current state: a model trained earlier in the same epoch counts as updated), round both to
the rating grid, keep the UNRATED pairs where the two rounded predictions are equal, keep
each with probability ``mask_rate``, and train model j for one epoch on the observed ratings
plus these pseudo-ratings (value: the agreed rounded prediction, not clipped to the scale,
as in the authors' code; ``clip=True`` clips both to the scale before comparing, an
ablation of ours).  Model 0 is the recommender reported.

Our choices, each stated where the code differs from the authors':

- Users: every user of the training data gets pseudo-ratings, injected ones included (the
  authors predict the full matrix of the poisoned data; a defender cannot tell them apart).
- Grid: the data set's own grid, ``round(x·max/step)·step/max`` in normalised units; equal
  to the authors' ``round(x·max)/max`` on integer scales (ML-100K, ML-1M), finer on
  FilmTrust (step 0.5, where the authors round to whole stars).
- ``pre``: warm-up epochs counted as epochs (the authors' flag ``pre=0`` means pseudo-ratings
  from the second epoch, i.e. our ``pre=1``, the default).
- ``recipe="ours"`` (default): each model is the run's victim with the run's recipe
  (docs/protocol.md for MF: d = 64, Adagrad lr 10, batch 4096, 25 epochs), so the TCD row is
  comparable to the other rows; model j's seed is ``random_state`` for j = 0 (so
  ``mask_rate=0`` gives exactly plain MF) and derived from it for j = 1, 2.
  ``recipe="authors"``: their optimiser: 128 factors, Adadelta (lr 20, ρ 0.95, ε 1e-8,
  sparse: only rows in the minibatch move), L2 1e-4 on the batch's factors, batch 2048, 40
  epochs (MF only).
- Bounded memory: predictions are made in user chunks (never a dense n_users × n_items
  matrix); only the kept pseudo-ratings are stored.  Where the matrix has more than
  ``max_pairs`` cells (ML-1M: 22 M) each agreed pair is kept with probability
  ``mask_rate · max_pairs / cells``, a uniform sample of the candidate pairs, so at most about
  ``max_pairs`` pseudo-ratings per model per epoch.  ML-100K (1.6 M) and FilmTrust (3.1 M)
  are not sampled at the default.
- Cost: each epoch trains three models on the observed ratings plus up to a matrix's worth of
  pseudo-ratings; on ML-100K a fit is tens of times a plain MF fit.
- Implicit-feedback victims (LightGCN, NeuMF with ``feedback="implicit"``; our adaptation, the
  paper and the authors' code are rating prediction only): their scores are logits, not
  ratings, and their loss reads every training pair as an interaction, so a rounded-score
  pseudo-rating would be an invented positive.  Measured (ML-100K, two 5-epoch fits): the
  rounded rule agreed on 0.63 M unrated pairs for NeuMF and 1.08 M for LightGCN (6-11x the
  99 K real interactions; most with a logit near 0, i.e. "not liked"), all of which the victim
  would have trained on as interactions.  The agreement TCD keeps is therefore taken on the
  victim's own output, its top-k lists: an unrated pair becomes a pseudo-interaction of model j
  when it is in both other models' top ``top_k`` for that user (the high-confidence
  positives; at most ``top_k`` per user), kept with probability ``mask_rate``.  ``top_k=10``
  was fixed before any run on an attack (the HR@10 cut-off; ML-100K: at most 9.4 K pairs, a
  tenth of the data), never tuned.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult, Param
from apt_core.errors import CancelledError, ConfigError
from apt_core.models.mf import MFConfig, MFTrainer
from apt_core.models.victims import make_trainer

#: the authors' optimiser (TCD's run_main.py flags and co_SVD.py): their L2 term is
#: reg·(mean(p_u²) + mean(q_i²)) over batch × factors, i.e. our per-row reg divided by d.
AUTHORS_MF = MFConfig(dim=128, epochs=40, lr=20.0, batch_size=2048, reg=1e-4 / 128)
ADADELTA_RHO, ADADELTA_EPS = 0.95, 1e-8  # TensorFlow 1's AdadeltaOptimizer defaults


class AdadeltaMFTrainer(MFTrainer):
    """:class:`MFTrainer` with TensorFlow 1's sparse Adadelta instead of Adagrad (TCD's recipe).

    Sparse: as with an embedding lookup in TF, only rows with a gradient in the minibatch
    update their accumulators (a dense Adadelta would decay every row's every step)."""

    def __init__(self, n_users: int, n_items: int, config: MFConfig = AUTHORS_MF, device: str | torch.device = "cpu", random_state: int = 0):
        super().__init__(n_users, n_items, config, device, random_state)
        self.acc_P.zero_()
        self.acc_Q.zero_()
        self.delta_P = torch.zeros_like(self.P)
        self.delta_Q = torch.zeros_like(self.Q)

    @property
    def _fused(self) -> bool:
        return False

    def grow_users(self, n_total: int) -> None:
        extra = n_total - self.P.shape[0]
        super().grow_users(n_total)
        if extra > 0:
            self.acc_P[-extra:] = 0
            self.delta_P = torch.cat([self.delta_P, torch.zeros_like(self.P[-extra:])])

    def _adagrad_update(self, gP: torch.Tensor, gQ: torch.Tensor) -> None:
        for param, grad, acc, delta in ((self.P, gP, self.acc_P, self.delta_P), (self.Q, gQ, self.acc_Q, self.delta_Q)):
            rows = grad.abs().sum(1).nonzero().squeeze(1)
            g = grad.index_select(0, rows)
            a = acc.index_select(0, rows).mul_(ADADELTA_RHO).addcmul_(g, g, value=1 - ADADELTA_RHO)
            d = delta.index_select(0, rows)
            update = (d + ADADELTA_EPS).sqrt_().div_((a + ADADELTA_EPS).sqrt_()).mul_(g)
            d.mul_(ADADELTA_RHO).addcmul_(update, update, value=1 - ADADELTA_RHO)
            acc.index_copy_(0, rows, a)
            delta.index_copy_(0, rows, d)
            param.index_add_(0, rows, update, alpha=-self.config.lr)


def _user_chunks(train: Interactions, chunk_elements: int):
    """Users in chunks of about ``chunk_elements`` cells: ``(start, stop, rows, items)`` with each rated
    cell of the chunk's users as (row within the chunk, item), the cells pseudo-labels never take."""
    indptr, rated_items, _ = train.csr
    chunk = max(1, chunk_elements // max(1, train.n_items))
    for start in range(0, train.n_users, chunk):
        stop = min(train.n_users, start + chunk)
        rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
        yield start, stop, rows, np.asarray(rated_items[indptr[start] : indptr[stop]], dtype=np.int64)


def _model_seed(random_state: int, j: int) -> int:
    """Model 0 keeps the run's seed (so it can equal plain MF); models 1, 2 get independent ones."""
    if j == 0:
        return int(random_state)
    return int(np.random.SeedSequence([int(random_state), j]).generate_state(1)[0])


class TCD(Defense):
    """Triple Cooperative Defense (Wang, Lian, Wu, Chen, arXiv 2210.13762)."""

    name = "tcd"
    summary = ("three copies of the victim; each trains on the data plus unrated pairs where the other two agree "
               "on the rounded rating (implicit feedback: both put the pair in the user's top-k)")
    paper = "Wang, Lian, Wu, Chen, arXiv 2210.13762, 2022 (TCD)"
    threat_model = "none: honest; trains on the observed, possibly poisoned, data"
    divergence_hint = "lower the MF learning rate (recipe='ours') or use recipe='authors'"
    params = (
        Param("pre", int, 1, "warm-up epochs on the observed ratings only before pseudo-ratings start "
              "(the authors' code: flag pre=0, i.e. pseudo-ratings from the second epoch = our 1)", low=0, high=1000, paper=1),
        Param("mask_rate", float, 1.0, "probability of keeping each agreed unrated pair (paper/code default 1; 0: three plain MFs)",
              low=0.0, high=1.0, paper=1.0),
        Param("recipe", str, "ours", "'ours': the run's victim recipe (comparable to the other rows); 'authors': their "
              "optimiser (128 factors, Adadelta lr 20, L2 1e-4, batch 2048, 40 epochs; MF only)", choices=("ours", "authors"), paper="authors"),
        Param("max_pairs", int, 5_000_000, "most candidate (user, item) cells per model per epoch; a larger matrix "
              "(ML-1M) keeps a uniform sample of its agreed pairs", low=1, high=20_000_000),
        Param("clip", bool, False, "round to the grid AND clip to the scale before comparing (an ablation of ours; the "
              "authors' code does not clip, so pairs both models predict near 0 get the pseudo-rating 0)", paper=False),
        Param("top_k", int, 10, "implicit-feedback victims only (our adaptation): an unrated pair becomes a "
              "pseudo-interaction when it is in both other models' top-k for the user", low=1, high=10_000),
    )

    def __init__(self, pre: int = 1, mask_rate: float = 1.0, recipe: str = "ours", max_pairs: int = 5_000_000, clip: bool = False,
                 top_k: int = 10):
        self._set_declared(locals())

    @staticmethod
    def implicit(context: DefenseContext) -> bool:
        """True where the victim learns from interactions (its loss ignores rating values)."""
        return getattr(context.victim, "feedback", "explicit") == "implicit"

    def _trainers(self, train: Interactions, context: DefenseContext) -> tuple[list, int]:
        if self.recipe == "authors":
            if context.victim is not None:
                raise ConfigError("tcd.recipe='authors' is the authors' MF; use recipe='ours' with another victim")
            return [AdadeltaMFTrainer(train.n_users, train.n_items, AUTHORS_MF, context.device, _model_seed(context.random_state, j))
                    for j in range(3)], AUTHORS_MF.epochs
        epochs = context.mf_config.epochs
        return [make_trainer(train.n_users, train.n_items, context, _model_seed(context.random_state, j)) for j in range(3)], epochs

    def pseudo_ratings(self, first, second, train: Interactions, rng: np.random.Generator,
                       device: torch.device | str = "cpu", chunk_elements: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, normalised ratings) of the unrated pairs where two fitted models agree on the grid.

        Users are scored in chunks of about ``chunk_elements`` cells; rated cells (every user
        of ``train``) are excluded; each agreed cell is kept with probability ``mask_rate``
        (times ``max_pairs / cells`` on a matrix larger than ``max_pairs``)."""
        n_users, n_items = train.n_users, train.n_items
        cells = n_users * n_items
        keep = self.mask_rate * min(1.0, self.max_pairs / max(1, cells))
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        if keep <= 0 or cells == 0:
            return empty
        scale = train.scale
        per_step = float(scale.maximum / scale.step)  # normalised rating x -> grid index round(x · max / step)
        grid_range = (round(scale.minimum / scale.step), round(scale.maximum / scale.step))
        found_u, found_i, found_k = [], [], []
        with torch.no_grad():
            for start, stop, rows, rated in _user_chunks(train, chunk_elements):
                users = torch.arange(start, stop, device=device)
                k1 = torch.round(first.score_users(users).float() * per_step)
                k2 = torch.round(second.score_users(users).float() * per_step)
                if self.clip:
                    k1, k2 = k1.clamp_(*grid_range), k2.clamp_(*grid_range)
                agree = (k1 == k2).cpu().numpy()
                agree[rows, rated] = False
                u, i = np.nonzero(agree)
                if keep < 1.0:
                    sampled = rng.random(len(u)) < keep
                    u, i = u[sampled], i[sampled]
                found_u.append(u + start)
                found_i.append(i)
                found_k.append(k1.cpu().numpy()[u, i])
        if not found_u:
            return empty
        users, items = np.concatenate(found_u).astype(np.int64), np.concatenate(found_i).astype(np.int64)
        values = (np.concatenate(found_k) / per_step).astype(np.float32)
        return users, items, values

    def pseudo_interactions(self, first, second, train: Interactions, rng: np.random.Generator,
                            device: torch.device | str = "cpu", chunk_elements: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, 1.0) of the unrated pairs both fitted models put in the user's top ``top_k``.

        The implicit-feedback counterpart of :meth:`pseudo_ratings`: rated cells are masked
        before ranking (as the evaluation masks them); a user with fewer than ``top_k`` unrated
        items gets only those; each agreed pair is kept with probability ``mask_rate``."""
        n_users, n_items = train.n_users, train.n_items
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self.mask_rate <= 0 or n_users == 0 or n_items == 0:
            return empty
        k = min(int(self.top_k), n_items)
        found_u, found_i = [], []
        with torch.no_grad():
            for start, stop, rated_rows, rated in _user_chunks(train, chunk_elements):
                users = torch.arange(start, stop, device=device)
                rows, cols = torch.from_numpy(rated_rows).to(device), torch.from_numpy(rated).to(device)
                in_top = []
                for model in (first, second):
                    scores = model.score_users(users).float()
                    scores[rows, cols] = -torch.inf
                    best = scores.topk(k, dim=1)
                    top = torch.zeros_like(scores, dtype=torch.bool)
                    top.scatter_(1, best.indices, torch.isfinite(best.values))  # a rated item is never "top"
                    in_top.append(top)
                u, i = np.nonzero((in_top[0] & in_top[1]).cpu().numpy())
                if self.mask_rate < 1.0:
                    kept = rng.random(len(u)) < self.mask_rate
                    u, i = u[kept], i[kept]
                found_u.append(u + start)
                found_i.append(i)
        users, items = np.concatenate(found_u).astype(np.int64), np.concatenate(found_i).astype(np.int64)
        return users, items, np.ones(len(users), np.float32)

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        trainers, epochs = self._trainers(train, context)
        real = trainers[0].tensors(train)  # the same tensors serve all three (same device)
        rng = np.random.default_rng(np.random.SeedSequence([int(context.random_state), 7]))
        added: list[int] = []
        # Pseudo-ratings are not clipped (as in the authors' code): count those under the
        # scale's minimum (e.g. 0 stars), which act as "not liked" labels on unrated pairs.
        lowest, below_minimum = float(train.scale.minimum / train.scale.maximum) - 1e-6, 0
        device = real[0].device
        implicit = self.implicit(context)
        label = self.pseudo_interactions if implicit else self.pseudo_ratings
        for epoch in range(epochs):
            for j, trainer in enumerate(trainers):
                if epoch < self.pre:
                    trainer.train_epochs(*real, 1)
                    continue
                u, i, r = label(trainers[(j + 1) % 3].model(), trainers[(j + 2) % 3].model(), train, rng, device)
                added.append(len(r))
                below_minimum += int((r < lowest).sum())
                extended = (torch.cat([real[0], torch.from_numpy(u).to(device)]), torch.cat([real[1], torch.from_numpy(i).to(device)]),
                            torch.cat([real[2], torch.from_numpy(r).to(device)]))
                trainer.train_epochs(*extended, 1)
            if context.progress is not None and context.progress((epoch + 1) / max(1, epochs), f"tcd: epoch {epoch + 1}/{epochs}") is False:
                raise CancelledError("training cancelled")
        cells = train.n_users * train.n_items
        return DefenseResult(trainers[0].model(), {
            "defense": self.name, "epochs": epochs, "pre": self.pre, "mask_rate": self.mask_rate, "recipe": self.recipe, "clip": self.clip,
            "pseudo_ratings_mean": float(np.mean(added)) if added else 0.0,
            "pseudo_share_of_unrated": float(np.mean(added)) / max(1, cells - len(train)) if added else 0.0,
            "pseudo_below_minimum_share": below_minimum / max(1, sum(added)),
            "sampled": cells > self.max_pairs and not implicit, "final_loss": trainers[0].last_loss,
            "pseudo_labels": f"top-{self.top_k} agreement (implicit feedback)" if implicit else "rounded-rating agreement",
            "top_k": self.top_k if implicit else None,
        })
