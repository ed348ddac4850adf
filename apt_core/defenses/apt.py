"""APT: adversarial poisoning training (the seed paper of APT Lab).

Paper: Chenwang Wu, Defu Lian, Yong Ge, Zhihao Zhu, Enhong Chen, Senchao Yuan, "Fight Fire
with Fire: Towards Robust Recommender Systems via Adversarial Poisoning Training", SIGIR
2021 (Algorithm 1; Eq. 4-5; docs/algorithms.md).

Threat model: the defender trains MF on data D that may contain fake user profiles it cannot
tell apart from real ones.  Budget: the defender injects its own n* "ERM users", each rating
m* items, and regenerates all of them every T_inter epochs after T_pre epochs of plain
training.  n* is ``erm_users`` if given, else round(``erm_fraction`` x real users), else the
preset's count (docs/algorithms.md, APT step 1).  The real users are the service's own accounts before the
attack (:meth:`DefenseContext.real_user_count`): a budget, not a label, so the defender
still cannot tell which of its accounts are fake.  APT's ERM users rate the
items whose influence on the empirical risk is most negative (sampled with p ∝ exp(-t·Ĩ)) at
their mean plus r⁺: fake users push target items up; ratings near the item's honest level
pull them back.

Presets (``preset``; every explicit argument overrides its entry; see
:data:`apt_core.defenses.erm.ERM_PRESETS`):

- ``"paper"`` (default): our reading of the authors' released code (that it produced the
  paper's tables cannot be checked: its main.py loads poison files from an unreleased folder).  Where the paper's text and the
  authors' code disagree we follow the code: LiSSA influence (1000 steps, minibatch 16384,
  scale 1, no damping; the text names no solver settings), T_pre 4 on FilmTrust (text: 5),
  50 ERM users on ML-100K and FilmTrust (text: 5% of the users, i.e. 47 / 40), and spread 0
  for an item with a single rating (``np.std`` of one value; we used the global std).
  Elsewhere the paper's Table 1 schedule and 5% of the users.
- ``"lab-v1"``: APT Lab's settings before the LiSSA work (identity solver, 5% of the users,
  T_pre 5 on FilmTrust, global std for an item rated once), so older results stay comparable.

Influence solver (``solver``; the preset chooses when None).  ``"lissa"`` runs the authors'
stochastic recursion w <- g + w - H_batch w (1000 steps; ``lissa_*`` settings) on MF's
closed-form Hessian-vector products, seeded per fit and round.  Those 1000 steps compute the
spectral filter f(H) g, f(λ) = (1 - (1 - λ)^1001) / λ, which ``"lissa-full"`` applies with the
full-data Hessian (1000 products, deterministic) and ``"lissa-lanczos"`` (the ``paper``
preset's choice) by the Lanczos method in about 10 products.  ``"identity"`` takes w = ∇L_ER
(lab-v1); ``"cg"`` solves (H + λI) w = ∇L_ER by Jacobi-preconditioned CG (λ = ``damping`` x
H's mean diagonal).

The old claim here, that identity "is what produced the paper's numbers", was wrong: MF's
Hessian at T_pre has eigenvalues up to ~0.008 (ML-100K) / ~0.014 (FilmTrust), so 1000 steps
weigh directions from 1/λ to 1001: LiSSA is not a multiple of the gradient.  Measured at
APT's first regeneration (poisoned data, paper targets, ``scripts/lissa_agreement.py``),
against the authors' stochastic LiSSA: a second stochastic run agrees at Spearman >= 0.9999;
lissa-lanczos (10-15 products, 0.1 s) at Spearman 1.0000 with 99-100% of the 100 most negative
items shared; identity at 0.92-0.97 (top-100 shared 64-95%); CG at 0.90-0.99.

What that does to APT (mean ± sd over model seeds and paired tests: docs/results.md, which
holds the numbers; none are repeated here, where they would go stale): on FilmTrust's
unpopular paper targets lissa-lanczos holds PGA and TNA, which lab-v1 (identity) leaves mostly
standing, with clean and with observed statistics alike; on ML-100K no solver differs from
LiSSA by a paired test.  Against the earlier PGA / TNA one target drifted to the *positive*
end of the LiSSA influence after the first round and was never rated by ERM users again (the
authors' stochastic LiSSA did the same), and CG failed.  The preset's spread 0 for items rated
once costs on unpopular targets with a single rating: ERM users then rate it exactly at its
one rating + r⁺.  No setting wins everywhere; the ``paper`` preset keeps the
authors' choices, ``lab-v1`` and the single arguments keep the others reachable.

Other victims (LightGCN, NeuMF): the influence is Eq. 4-5 on the victim's own training loss
over D, by autograd Hessian-vector products (:mod:`apt_core.influence.autograd`; MF keeps its
closed form, which the general path reproduces on MF).  With implicit feedback (their
default) an ERM user's ratings are only interactions: I_j is the influence of adding the
interaction (z, j), and the ratings drawn from N(mean_j + r⁺, std_j) carry no information.

Diagnostics (for the dashboard), per regeneration round: the influence vector over items,
each item's rank in it (0 = most negative), the ERM items chosen, the solver's iterations
and residual; plus which rating statistics were used (``erm_stats``).
"""
from __future__ import annotations

import time

import numpy as np

from apt_core.defenses.base import Param
from apt_core.defenses.erm_batch import fit_erm_batch
from apt_core.defenses.erm import ERM_PARAMS, ERMBatch, ERMTraining, RoundState, draw_ratings, get_preset, sample_without_replacement
from apt_core.influence.mf import ER_LOSSES, PRECONDITIONERS, SOLVERS, RatingStructure, influence_vector, probe_users
from apt_core.influence.solvers import LissaSettings
from apt_core.influence.autograd import victim_influence
from apt_core.models.mf import MFTrainer


class APT(ERMTraining):
    """Adversarial poisoning training (Wu et al., SIGIR 2021)."""

    name = "apt"
    summary = "adversarial poisoning training: ERM users rate items of negative influence (Wu et al. 2021)"
    paper = "Wu, Lian, Ge, Zhu, Chen, Yuan, SIGIR 2021"
    threat_model = "observed data only (erm_stats=clean: the authors' oracle)"
    params = ERM_PARAMS + (
        Param("solver", str, None, "influence solver (None: the preset's; paper: lissa-lanczos)", choices=SOLVERS, optional=True,
              paper="lissa (authors' code)"),
        Param("damping", float, 10.0, "cg: damping as a multiple of H's mean diagonal", low=0.0, high=1e6),
        Param("cg_max_iter", int, 30, "cg: iterations", low=1, high=10_000),
        Param("cg_tol", float, 1e-2, "cg: relative residual tolerance", low=0.0, low_open=True, high=1.0),
        Param("preconditioner", str, "jacobi", "cg: preconditioner", choices=PRECONDITIONERS),
        Param("warm_start", bool, True, "start each round's solve from the previous round's solution"),
        Param("n_probe", int, 10, "probe users z of Eq. 4 (smallest rating-vector norm)", low=1, high=10_000, paper=10),
        Param("er_loss", str, "mean", "empirical-risk loss: sigmoid of the mean (authors' code) or per rating (text)", choices=ER_LOSSES,
              paper="mean (code)"),
        Param("lissa_steps", int, 1000, "LiSSA: recursion steps", low=0, high=100_000, paper=1000),
        Param("lissa_batch_size", int, 16384, "LiSSA: ratings per Hessian minibatch", low=1, high=1_000_000, paper=16384),
        Param("lissa_scale", float, 1.0, "LiSSA: scale", low=0.0, low_open=True, high=1e6, paper=1.0),
        Param("lissa_damping", float, 0.0, "LiSSA: damping", low=0.0, high=1.0, high_open=True, paper=0.0),
        Param("lanczos_max_iter", int, 40, "lissa-lanczos: Lanczos iterations at most", low=1, high=1000),
        Param("lanczos_tol", float, 1e-3, "lissa-lanczos: tolerance", low=0.0, low_open=True, high=1.0),
        Param("victim_solver", str, "identity", "influence solver for victims other than MF (LiSSA's filter overflows on a neural "
              "victim's indefinite Hessian)", choices=SOLVERS),
    )

    def __init__(
        self,
        erm_fraction: float | None = None,
        erm_stats: str = "observed",
        t: float | None = None,
        t_pre: int | None = None,
        t_inter: int | None = None,
        m_star: int | None = None,
        r_plus: float | None = None,
        solver: str | None = None,
        damping: float = 10.0,
        cg_max_iter: int = 30,
        cg_tol: float = 1e-2,
        preconditioner: str = "jacobi",
        warm_start: bool = True,
        n_probe: int = 10,
        er_loss: str = "mean",
        erm_users: int | None = None,
        preset: str = "paper",
        single_rating_std: str | None = None,
        lissa_steps: int = 1000,
        lissa_batch_size: int = 16384,
        lissa_scale: float = 1.0,
        lissa_damping: float = 0.0,
        lanczos_max_iter: int = 40,
        lanczos_tol: float = 1e-3,
        detector: str = "cogroup",
        victim_solver: str = "identity",
    ):
        self._set_declared(locals())

    def resolved_solver(self) -> str:
        """``solver``, or the preset's when None: resolved when fitting, never stored, so that
        ``set_params(preset=...)`` equals a fresh construction with that preset."""
        return self.solver if self.solver is not None else get_preset(self.preset).solver

    @property
    def lissa(self) -> LissaSettings:
        return LissaSettings(self.lissa_steps, self.lissa_batch_size, self.lissa_scale, self.lissa_damping)

    batched = True

    @classmethod
    def fit_many(cls, jobs):
        """The jobs in one MF batch (:func:`apt_core.defenses.erm_batch.fit_erm_batch`); the same results as one by one."""
        return fit_erm_batch(jobs)

    def _generate(self, state: RoundState) -> ERMBatch:
        train, trainer = state.train, state.trainer
        is_mf = isinstance(trainer, MFTrainer)
        if state.cache is None:
            # D never changes during the fit, so neither do the probe users z of Eq. 4.
            state.cache = {
                "probe": probe_users(train.users, train.normalised_ratings, train.n_users, self.n_probe),
                "structure": RatingStructure.build(state.d_users, state.d_items, train.n_users, train.n_items) if is_mf else None,
            }
        t0 = time.perf_counter()
        # Jobs of one batch whose models are equal here (same data, seed and pre-training, no
        # round yet; apt_core.defenses.erm_batch) share the first round's solve: computed once.
        memo, memo_key = state.cache.get("first_round"), None
        if is_mf and memo is not None and "w" not in state.cache:
            memo_key = (state.epoch, self.resolved_solver(), self.damping, self.cg_max_iter, self.cg_tol, self.er_loss, self.preconditioner,
                        self.n_probe, self.lissa, self.lanczos_max_iter, self.lanczos_tol)
        res = memo.get(memo_key) if memo_key is not None else None
        if is_mf and res is None:
            # Influence on the model of D only: ERM rows are excluded ("n" of Eq. 4 = users of D).
            res = influence_vector(
                trainer.P[: train.n_users], trainer.Q, state.d_users, state.d_items, state.d_ratings, state.cache["probe"],
                solver=self.resolved_solver(), damping=self.damping, max_iter=self.cg_max_iter, tol=self.cg_tol, er_loss=self.er_loss,
                preconditioner=self.preconditioner, x0=state.cache.get("w") if self.warm_start else None,
                structure=state.cache["structure"], lissa=self.lissa,
                # the stochastic LiSSA draws fresh minibatches each round, reproducibly
                seed=int(state.context.random_state) * 1009 + state.epoch,
                lanczos_max_iter=self.lanczos_max_iter, lanczos_tol=self.lanczos_tol,
            )
            if memo_key is not None:
                memo[memo_key] = res
        elif not is_mf:
            # Another victim (LightGCN, NeuMF): the same Eq. 4-5 by autograd HVPs on its own
            # loss over D (apt_core.influence.autograd); ERM users' edges are left out.
            res = victim_influence(
                trainer, state.d_users, state.d_items, state.d_ratings, train.n_users, state.cache["probe"],
                random_state=int(state.context.random_state) * 1000 + state.epoch,
                solver=self.victim_solver, damping=self.damping, max_iter=self.cg_max_iter, tol=self.cg_tol,
                x0=state.cache.get("w") if self.warm_start else None, lissa=self.lissa,
                lanczos_max_iter=self.lanczos_max_iter, lanczos_tol=self.lanczos_tol,
            )
        state.cache["w"] = res.solution
        influence_seconds = time.perf_counter() - t0
        infl = res.values
        order = np.argsort(infl, kind="stable")
        rank = np.empty(len(infl), dtype=np.int32)
        rank[order] = np.arange(len(infl), dtype=np.int32)
        phi = np.flatnonzero(infl < 0)
        s = state.settings
        if len(phi) == 0:
            # No item lowers the risk: nothing to prefer, so draw uniformly (reported).
            phi = np.arange(train.n_items)
            logits = np.zeros(len(phi))
        else:
            vals = infl[phi]
            span = vals.max() - vals.min()
            scaled = (vals - vals.min()) / span - 1.0 if span > 0 else np.zeros_like(vals)
            logits = -s.t * scaled
        cols = sample_without_replacement(logits, state.n_erm, s.m_star, state.rng)
        items = phi[cols].ravel()
        users = np.repeat(np.arange(state.n_erm), cols.shape[1])
        ratings = draw_ratings(items, state.means, state.stds, s.r_plus * train.scale.maximum, train, state.rng)
        extra = {
            "influence": infl.astype(np.float32),
            "influence_rank": rank,
            "n_negative": int((infl < 0).sum()),
            "solver": res.solver,
            "cg_iterations": None if res.cg is None else res.cg.iterations,
            "cg_residual": None if res.cg is None else res.cg.residual,
            "cg_converged": None if res.cg is None else res.cg.converged,
            "damping_absolute": res.damping,
            "lanczos_iterations": None if res.lanczos is None else res.lanczos.iterations,
            "lanczos_ritz_range": None if res.lanczos is None else [res.lanczos.ritz_min, res.lanczos.ritz_max],
            "influence_seconds": influence_seconds,
            "probe_users": res.probe_users.astype(np.int32),
        }
        return ERMBatch(users, items, ratings, extra)


def target_influence_ranks(diagnostics: dict, targets) -> list[list[int]]:
    """Per round, the rank of each target in the influence ordering (0 = most negative)."""
    targets = np.asarray(targets, dtype=np.int64)
    return [[int(r["influence_rank"][t]) for t in targets] for r in diagnostics.get("rounds", []) if "influence_rank" in r]
