"""BPR-surrogate attack: fillers chosen by the gradient of a hit-ratio proxy on a BPR model.

Paper: in the spirit of Huang, Mu, Gong, Li, Liu, Xu, "Data Poisoning Attacks to Deep Learning
Based Recommender Systems", NDSS 2021 (arXiv 2101.02644; as its abstract states, fake users
whose interactions maximise the number of normal users to whom the targets are recommended, a
non-convex integer program the authors solve approximately; their solver is not reproduced).
What is implemented here is an approximation of that objective, not their algorithm: the
surrogate is a BPR matrix factorisation (Rendle et al., UAI 2009), and the fillers come from
one gradient computation on it:

1. Fit BPR-MF (``dim`` factors, Adam) on the real users' interactions: user factors ``P``,
   item factors ``Q``.
2. For every target ``t``, find where its factor would have to be for the real users who did
   not interact with it to rank it in their top ``hr_k``: projected gradient ascent on
   ``q`` of the hit-ratio proxy ``mean_u log sigmoid((p_u . q - tau_u) / T)`` (``tau_u``: the
   score of user ``u``'s ``hr_k``-th best unrated item, rated items masked as the evaluation
   does; ``T``: the spread of the scores), ``|q|`` capped at the largest item norm.  The
   displacement ``d_t = q*_t - q_t`` is the direction the target must move.
3. A BPR step moves a target towards the factors of the users who interact with it, and a
   fake user's factor (fitted from zero) starts along ``sum_j (q_j - mean q)`` over its items.
   So the first-order gain of giving the fake users item ``j`` is ``(q_j - mean q) . sum_t d_t``,
   the gradient of the proxy with respect to the fake users' (soft) interaction with ``j``.
   ``fillers="clone"`` (default): the real users the moved targets would reach first (largest
   margin ``p_u . q* - tau_u``) are the niche; each fake user copies one of them, keeping the
   ``filler_share x n_filler`` items of its profile with the largest gain.  ``"gain"``: every
   fake user draws its fillers uniformly from the ``pool x n_filler`` items of largest gain
   (these are mostly the popular items: on ML-100K it did no better than popular-filler).
4. ``rounds > 1``: inject the fake users into the surrogate, fine-tune it, and recompute
   steps 2-3 from the poisoned surrogate (the targets have moved; so have the thresholds).

Threat model: white box on the data (every real user's interactions; a BPR recommender can be
trained on them, and "clone" copies real profiles), grey box on the victim (its architecture is not used: the fillers transfer
from BPR-MF to LightGCN and NeuMF).  Budget: ``n_fake_users`` fake users, each interacting with
every target and ``n_filler`` fillers; ratings are the scale maximum (ignored by implicit victims).
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, AttackResult, Param, ProgressFn
from apt_core.data.dataset import Interactions


def fit_bpr_mf(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, dim: int, epochs: int, lr: float,
               reg: float, generator: torch.Generator, init: tuple[torch.Tensor, torch.Tensor] | None = None,
               batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """BPR-MF (one uniform negative per positive, Adam, L2 ``reg`` on the batch rows): ``(P, Q)``.

    ``init`` continues from given factors (rows beyond ``init``'s users start at N(0, 0.1²))."""
    P = torch.randn(n_users, dim, generator=generator) * 0.1
    Q = torch.randn(n_items, dim, generator=generator) * 0.1
    if init is not None:
        P[: len(init[0])] = init[0]
        Q = init[1].clone()
    P.requires_grad_(True)
    Q.requires_grad_(True)
    opt = torch.optim.Adam([P, Q], lr=lr)
    u_all, i_all = torch.from_numpy(np.asarray(users, np.int64)), torch.from_numpy(np.asarray(items, np.int64))
    n = len(u_all)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            u, i = u_all[idx], i_all[idx]
            j = torch.randint(0, n_items, (len(idx),), generator=generator)
            pu, qi, qj = P[u], Q[i], Q[j]
            loss = torch.nn.functional.softplus((pu * (qj - qi)).sum(-1)).mean()
            loss = loss + reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return P.detach(), Q.detach()


def thresholds(scores: torch.Tensor, rated: torch.Tensor, targets: np.ndarray, hr_k: int) -> torch.Tensor:
    """Each user's ``hr_k``-th best score among the non-target items it has not rated (what a
    target must beat to enter the user's top ``hr_k``, rated items masked as the evaluation does)."""
    masked = scores.masked_fill(rated, -torch.inf)
    masked[:, torch.from_numpy(targets)] = -torch.inf
    return masked.topk(min(hr_k, masked.shape[1] - 1), dim=1).values[:, -1]


def target_displacements(P: torch.Tensor, Q: torch.Tensor, rated: torch.Tensor, targets: np.ndarray, hr_k: int,
                         objective: str = "hit", reach: int | None = None, steps: int = 200) -> torch.Tensor:
    """``d_t = q*_t - q_t`` per target (rows): where each target's factor must go to enter the
    real users' top ``hr_k`` (projected gradient ascent of the hit-ratio proxy, module docstring).

    ``objective="hit"``: the proxy is ``mean_u sigmoid(margin_u / T)`` with a sharp ``T`` (a
    smoothed hit ratio: a user far below the threshold adds nothing, so the optimum may be a
    niche of users), started from the best of every user's and item's direction, and ``|q|``
    capped at the median norm of the items with about ``reach`` interactions (what the target
    will have after the attack).  ``"mean"``: ``mean_u log sigmoid(margin_u / T)`` (every user
    pulls; the optimum is the average taste), started at ``q_t``, ``|q|`` capped at the largest
    item norm."""
    scores = P @ Q.T
    tau = thresholds(scores, rated, targets, hr_k)
    spread = float(scores.std()) or 1.0
    norms = Q.norm(dim=1)
    if objective == "hit":
        temperature = 0.1 * spread
        counts = rated.sum(0).to(torch.float32)
        want = float(reach if reach is not None else counts.median())
        near = (counts >= 0.5 * want) & (counts <= 2.0 * want)
        cap = float(norms[near].median()) if bool(near.any()) else float(norms.median())
        starts = torch.cat([P, Q])
        starts = cap * starts / starts.norm(dim=1, keepdim=True).clamp_min(1e-12)
    else:
        temperature, cap, starts = spread, float(norms.max()), None
    out = []
    for t in targets:
        users = ~rated[:, int(t)]
        pu, tu = P[users], tau[users]

        def proxy(q: torch.Tensor) -> torch.Tensor:
            margin = (q @ pu.T - tu) / temperature
            return torch.sigmoid(margin).mean(-1) if objective == "hit" else torch.nn.functional.logsigmoid(margin).mean(-1)

        q0 = Q[int(t)] if starts is None else starts[int(torch.argmax(proxy(starts)))]
        q = q0.clone().requires_grad_(True)
        opt = torch.optim.Adam([q], lr=0.01 * cap)
        for _ in range(steps):
            loss = -proxy(q)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                norm = q.norm()
                if norm > cap:
                    q.mul_(cap / norm)
        out.append(q.detach() - Q[int(t)])
    return torch.stack(out)


def clone_rows(train: Interactions, users: np.ndarray, targets: np.ndarray, gain: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per given real user, its ``k`` non-target items of largest ``gain`` (``(len(users), k)``
    items and a validity mask for users with fewer items)."""
    items = np.zeros((len(users), k), dtype=np.int64)
    valid = np.zeros((len(users), k), dtype=bool)
    for row, u in enumerate(users):
        own = train.user_items(int(u))
        own = own[~np.isin(own, targets)]
        best = own[np.argsort(-gain[own], kind="stable")[:k]]
        items[row, : len(best)] = best
        valid[row, : len(best)] = True
    return items, valid


class BPRSurrogateAttack(Attack):
    name = "bpr-surrogate"
    summary = "Clones the real profiles a BPR-MF surrogate's hit-ratio gradient says the targets reach first (after Huang et al. 2021)"
    paper = "after Huang, Mu, Gong, Li, Liu, Xu, NDSS 2021 (approximation: BPR-MF surrogate, one-step gradient)"
    threat_model = "white box on the data (all real interactions); victim architecture not used"
    params = (
        Param("dim", int, 32, "factors of the BPR-MF surrogate", low=1, high=512),
        Param("epochs", int, 30, "training epochs of the surrogate (fine-tuning between rounds: a third)", low=1, high=1000),
        Param("lr", float, 0.01, "Adam learning rate of the surrogate", low=0.0, low_open=True, high=1.0),
        Param("hr_k", int, 50, "the top-K the hit-ratio proxy aims at", low=1, high=1000),
        Param("pool", float, 1.5, "fillers are drawn from the pool x n_filler items with the largest gain", low=1.0, high=20.0),
        Param("rounds", int, 1, "surrogate rounds (>1: re-fit on the poisoned data and re-pick)", low=1, high=5),
        Param("objective", str, "hit", "hit-ratio proxy: hit (smoothed hit ratio, may pick a niche) or mean (mean log-sigmoid margin)",
              choices=("hit", "mean")),
        Param("filler_share", float, 1.0, "share of the filler budget used (fewer fillers concentrate a fake user on the best ones)",
              low=0.0, low_open=True, high=1.0),
        Param("fillers", str, "clone", "gain: drawn from the items of largest gain; clone: each fake user copies one of the real users "
              "the moved targets reach first, keeping its items of largest gain", choices=("gain", "clone")),
        Param("surrogate", str, "bpr-mf", "the surrogate's architecture: bpr-mf, or lightgcn (the LightGCN victim's recipe, its final "
              "propagated embeddings; white box on the victim's architecture)", choices=("bpr-mf", "lightgcn")),
        Param("steps", int, 200, "gradient ascent steps of the targets' displacement", low=1, high=10000),
    )

    def __init__(self, dim: int = 32, epochs: int = 30, lr: float = 0.01, hr_k: int = 50, pool: float = 1.5, rounds: int = 1,
                 objective: str = "hit", filler_share: float = 1.0, fillers: str = "clone", surrogate: str = "bpr-mf",
                 steps: int = 200) -> None:
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> AttackResult:
        gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        n_real, n_items = train.n_users, train.n_items
        rated = torch.zeros(n_real, n_items, dtype=torch.bool)
        rated[torch.from_numpy(train.users), torch.from_numpy(train.items)] = True
        cand = non_targets(n_items, targets)
        n_used = max(1, int(round(self.filler_share * n_filler))) if n_filler else 0
        P, Q = self._fit(train, gen, device)
        profiles, gains_top, niche_sizes = None, [], []
        for r in range(self.rounds):
            if progress is not None:
                progress(r / self.rounds, f"bpr-surrogate round {r + 1}/{self.rounds}")
            reach = n_fake_users + int(np.median(train.real_item_counts[targets]))
            d = target_displacements(P[:n_real], Q, rated, targets, self.hr_k, self.objective, reach, self.steps).sum(0)
            gain_all = ((Q - Q.mean(0)) @ d).numpy()
            gain = gain_all[cand]
            pool = cand[np.argsort(-gain, kind="stable")[: max(n_used, int(round(self.pool * n_used)))]]
            gains_top.append(pool[:10].tolist())
            if self.fillers == "clone":
                # The real users the moved targets would reach first (largest margin over their
                # threshold): each fake user copies one of them, keeping its items of largest gain.
                q_star = (Q[torch.from_numpy(targets)] + d / len(targets)).mean(0)
                margin = (P[:n_real] @ q_star - thresholds(P[:n_real] @ Q.T, rated, targets, self.hr_k)).numpy()
                niche = np.argsort(-margin, kind="stable")[:n_fake_users]
                items, valid = clone_rows(train, niche[np.arange(n_fake_users) % len(niche)], targets, gain_all, n_used)
                niche_sizes.append(int((margin > 0).sum()))
            else:
                items = sample_rows(rng, n_fake_users, pool, n_used)
                valid = None
            profiles = assemble(items, np.full(items.shape, train.scale.maximum), targets, train.scale, n_items, valid)
            if r + 1 < self.rounds:
                poisoned = profiles.inject(train)
                if self.surrogate == "lightgcn":  # no warm start through a changed graph: refit on the poisoned data
                    P, Q = self._fit(poisoned, gen, device)
                else:
                    P, Q = fit_bpr_mf(poisoned.users, poisoned.items, poisoned.n_users, n_items, self.dim,
                                      max(1, self.epochs // 3), self.lr, 1e-4, gen, init=(P[:n_real], Q))
        popularity = train.real_item_counts
        chosen = profiles.items[~np.isin(profiles.items, targets)]
        diagnostics = {"top_gain_items": gains_top,
                       "filler_popularity_mean": float(popularity[chosen].mean()) if len(chosen) else 0.0,
                       "catalogue_popularity_mean": float(popularity.mean()),
                       "surrogate_users_reached": niche_sizes}
        return AttackResult(profiles, diagnostics)

    def _fit(self, data: Interactions, gen: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The surrogate's user and item factors on ``data`` (``P`` rows: every user of ``data``)."""
        if self.surrogate == "lightgcn":
            # The victim's own recipe (docs/victims.md), ``epochs`` epochs; LightGCN's model holds
            # the final (layer-averaged) embeddings, so its dot products are the victim's scores.
            from apt_core.models.victims import default_victim_config, victim_trainer

            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            trainer = victim_trainer(data.n_users, data.n_items, default_victim_config("lightgcn", self.epochs), device, seed)
            trainer.train_epochs(*trainer.tensors(data), self.epochs)
            model = trainer.model()
            return model.P.detach().to("cpu", torch.float32), model.Q.detach().to("cpu", torch.float32)
        return fit_bpr_mf(data.users, data.items, data.n_users, data.n_items, self.dim, self.epochs, self.lr, 1e-4, gen)
