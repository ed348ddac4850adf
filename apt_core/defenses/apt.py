"""APT: adversarial poisoning training (the seed paper of APT Lab).

Paper: Chenwang Wu, Defu Lian, Yong Ge, Zhihao Zhu, Enhong Chen, Senchao Yuan, "Fight Fire
with Fire: Towards Robust Recommender Systems via Adversarial Poisoning Training", SIGIR
2021 (Algorithm 1; Eq. 4-5; docs/algorithms.md).

Threat model: the defender trains MF on data D that may contain fake user profiles it cannot
tell apart from real ones.  Budget: the defender injects its own n* = round(erm_fraction x
real users) "ERM users" (default 5%), each rating m* items, and regenerates all of them every
T_inter epochs after T_pre epochs of plain training.  APT's ERM users rate the items whose
influence on the empirical risk is most negative (sampled with p ∝ exp(-t·Ĩ)) at their mean
plus r⁺: fake users push target items up; ratings near the item's honest level pull them back.

Influence solver (``solver``).  ``"cg"`` solves (H + λI) w = ∇L_ER by Jacobi-preconditioned
CG on exact Hessian-vector products (λ = ``damping`` x H's mean diagonal; MF's Hessian is
indefinite after 15 Adagrad epochs, and below damping ~10 CG met negative curvature on
ML-100K).  ``"identity"`` (the default) takes w = ∇L_ER.  The authors' code runs 1000 steps
of LiSSA with scale 1, w ≈ Σ_k (I - H)^k ∇L_ER, which on MF's tiny Hessian eigenvalues is
≈ a multiple of ∇L_ER: identity is what produced the paper's numbers.  Measured on ML-100K
(3% attack, 5 targets, 2 seeds, clean stats, RI): random targets Average 0.86 / Random 0.77 /
PGA 0.52 with identity against 0.88 / 0.83 / 0.06 with CG; unpopular targets 0.94 / 0.97 /
0.93 against 0.95 / 0.97 / 0.00.  Against PGA on ML-100K, CG's influence ranks the targets
among the most *positive* entries, so its ERM users never rate them.  On FilmTrust it is the
other way round: PGA RI 0.71 (random) / 0.70 (unpopular targets) with CG against 0.08 / 0.05
with identity (Average and Random barely move FilmTrust's target HR, 0.011-0.016, so their
RIs there say little).  Neither solver wins everywhere: whether the targets land on the
negative side of I depends on the sign of the poisoned model's residuals.  Identity stays
the default for its provenance and cost (~10x cheaper); pass ``solver="cg"`` for H^-1.

Other victims (LightGCN, NeuMF): the influence is Eq. 4-5 on the victim's own training loss
over D, by autograd Hessian-vector products (:mod:`apt_core.influence_autograd`; MF keeps its
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

from apt_core.defenses.erm import ERMBatch, ERMTraining, RoundState, draw_ratings, sample_without_replacement
from apt_core.errors import ConfigError
from apt_core.influence import ER_LOSSES, PRECONDITIONERS, SOLVERS, RatingStructure, influence_vector, probe_users
from apt_core.influence_autograd import victim_influence
from apt_core.models.mf import MFTrainer


class APT(ERMTraining):
    """Adversarial poisoning training (Wu et al., SIGIR 2021)."""

    name = "apt"
    summary = "adversarial poisoning training: ERM users rate items of negative influence (Wu et al. 2021)"

    def __init__(
        self,
        erm_fraction: float = 0.05,
        erm_stats: str = "observed",
        t: float | None = None,
        t_pre: int | None = None,
        t_inter: int | None = None,
        m_star: int | None = None,
        r_plus: float | None = None,
        solver: str = "identity",
        damping: float = 10.0,
        cg_max_iter: int = 30,
        cg_tol: float = 1e-2,
        preconditioner: str = "jacobi",
        warm_start: bool = True,
        n_probe: int = 10,
        er_loss: str = "mean",
    ):
        super().__init__(erm_fraction, erm_stats, t, t_pre, t_inter, m_star, r_plus)
        if solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if not (float(damping) >= 0 and np.isfinite(damping)):
            raise ConfigError(f"damping must be a finite number >= 0, got {damping}")
        if int(cg_max_iter) < 1 or not (float(cg_tol) > 0):
            raise ConfigError(f"cg_max_iter must be >= 1 and cg_tol > 0, got {cg_max_iter}, {cg_tol}")
        if int(n_probe) < 1:
            raise ConfigError(f"n_probe must be >= 1, got {n_probe}")
        if preconditioner not in PRECONDITIONERS:
            raise ConfigError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, got {preconditioner!r}")
        if er_loss not in ER_LOSSES:
            raise ConfigError(f"er_loss must be one of {', '.join(ER_LOSSES)}, got {er_loss!r}")
        self.solver = solver
        self.damping = float(damping)
        self.cg_max_iter = int(cg_max_iter)
        self.cg_tol = float(cg_tol)
        self.n_probe = int(n_probe)
        self.er_loss = er_loss
        self.preconditioner = preconditioner
        self.warm_start = bool(warm_start)

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
        if is_mf:
            # Influence on the model of D only: ERM rows are excluded ("n" of Eq. 4 = users of D).
            res = influence_vector(
                trainer.P[: train.n_users], trainer.Q, state.d_users, state.d_items, state.d_ratings, state.cache["probe"],
                solver=self.solver, damping=self.damping, max_iter=self.cg_max_iter, tol=self.cg_tol, er_loss=self.er_loss,
                preconditioner=self.preconditioner, x0=state.cache.get("w") if self.warm_start else None,
                structure=state.cache["structure"],
            )
        else:
            # Another victim (LightGCN, NeuMF): the same Eq. 4-5 by autograd HVPs on its own
            # loss over D (apt_core.influence_autograd); ERM users' edges are left out.
            res = victim_influence(
                trainer, state.d_users, state.d_items, state.d_ratings, train.n_users, state.cache["probe"],
                random_state=int(state.context.random_state) * 1000 + state.epoch,
                solver=self.solver, damping=self.damping, max_iter=self.cg_max_iter, tol=self.cg_tol,
                x0=state.cache.get("w") if self.warm_start else None,
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
            "influence_seconds": influence_seconds,
            "probe_users": res.probe_users.astype(np.int32),
        }
        return ERMBatch(users, items, ratings, extra)


def target_influence_ranks(diagnostics: dict, targets) -> list[list[int]]:
    """Per round, the rank of each target in the influence ordering (0 = most negative)."""
    targets = np.asarray(targets, dtype=np.int64)
    return [[int(r["influence_rank"][t]) for t in targets] for r in diagnostics.get("rounds", []) if "influence_rank" in r]
