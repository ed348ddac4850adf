"""AT: adversarial training of MF in the style of APR.

Paper: Xiangnan He, Zhankui He, Xiaoyu Du, Tat-Seng Chua, "Adversarial Personalized Ranking
for Recommendation", SIGIR 2018 (APR), used as the "AT" baseline by Wu et al., SIGIR 2021.

Threat model: worst-case perturbations of the model parameters stand in for (unknown) data
poisoning; the defender does not look at, or remove, any profile.  Budget: a perturbation of
norm ε per embedding row.  After ``warmup_epochs`` of plain MF, each minibatch computes the
loss gradient g, sets Δ = ε·g/||g|| for every user and item row (the fast-gradient
approximation of the worst Δ, APR Eq. 6), and descends on L(Θ) + λ_adv·L(Θ + Δ), with Δ held
constant.  ε = 0.03 as in the APT paper; λ_adv = 1.

Other victims (LightGCN, NeuMF; :mod:`apt_core.models.victims`): the same perturbation of
the victim's own embedding tables (LightGCN's E⁰; NeuMF's GMF and MLP embeddings), on the
victim's own loss, with the same ε and λ_adv.
"""
from __future__ import annotations

from typing import Sequence

import torch

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult, Param
from apt_core.errors import CancelledError
from apt_core.models.mf import MFTrainer, mf_batch_gradients
from apt_core.models.mf_batch import batchable, batched_gradients, pretrain_forks
from apt_core.models.victims import make_trainer


def _row_normalised(g: torch.Tensor) -> torch.Tensor:
    norm = g.norm(dim=1, keepdim=True)
    # Rows outside the batch have zero gradient and get no perturbation.
    return torch.where(norm > 0, g / norm.clamp_min(1e-30), torch.zeros_like(g))


class AdversarialTraining(Defense):
    """APR-style adversarial training of MF (He et al., SIGIR 2018)."""

    name = "at"
    summary = "adversarial training (APR): loss at worst-case embedding perturbations of norm ε"
    divergence_hint = "lower epsilon or the MF learning rate"
    paper = "He, He, Du, Chua, SIGIR 2018 (APR)"
    threat_model = "none beyond the data: worst-case parameter perturbations stand in for poisoning"
    params = (
        Param("epsilon", float, 0.03, "norm of the worst-case perturbation per embedding row", low=0.0, high=100.0, paper=0.03),
        Param("adv_weight", float, 1.0, "λ_adv, weight of the loss at the perturbed parameters", low=0.0, high=1000.0, paper=1.0),
        Param("warmup_epochs", int, None, "plain-MF epochs before adversarial training (None: 40% of the epochs)", low=0, high=1000, optional=True),
    )

    def __init__(self, epsilon: float = 0.03, adv_weight: float = 1.0, warmup_epochs: int | None = None):
        self._set_declared(locals())
        # None: the same warm-up as APT's pre-training would be arbitrary; APR pre-trains a
        # converged MF, so default to 40% of the epochs (10 of 25).

    def _hook(self, reg: float):
        eps, lam = self.epsilon, self.adv_weight

        def hook(P, Q, users, items, ratings):
            gP, gQ, loss = mf_batch_gradients(P, Q, users, items, ratings, reg)
            dP = _row_normalised(gP).mul_(eps)
            dQ = _row_normalised(gQ).mul_(eps)
            aP, aQ, adv_loss = mf_batch_gradients(P + dP, Q + dQ, users, items, ratings, reg)
            return gP.add_(aP, alpha=lam), gQ.add_(aQ, alpha=lam), loss + lam * adv_loss

        return hook

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        cfg = context.mf_config
        warmup = self._warmup(cfg.epochs)
        trainer = make_trainer(train.n_users, train.n_items, context)
        tensors = trainer.tensors(train)
        is_mf = isinstance(trainer, MFTrainer)  # MF: hand-written gradients (fast path)
        hook = self._hook(cfg.reg)
        for epoch in range(cfg.epochs):
            if is_mf:
                trainer.train_epochs(*tensors, 1, gradient_hook=None if epoch < warmup else hook)
            else:
                trainer.train_epochs(*tensors, 1, adversarial=None if epoch < warmup else (self.epsilon, self.adv_weight))
            if context.progress is not None and context.progress((epoch + 1) / max(1, cfg.epochs), f"at: epoch {epoch + 1}/{cfg.epochs}") is False:
                raise CancelledError("training cancelled")
        return DefenseResult(trainer.model(), {"defense": self.name, "epsilon": self.epsilon, "adv_weight": self.adv_weight, "warmup_epochs": warmup, "final_loss": trainer.last_loss})

    def _warmup(self, epochs: int) -> int:
        return int(round(0.4 * epochs)) if self.warmup_epochs is None else min(int(self.warmup_epochs), epochs)

    batched = True

    @classmethod
    def fit_many(cls, jobs: Sequence[tuple[Defense, Interactions, DefenseContext]]) -> list[DefenseResult]:
        """Every job's AT in one MF batch: the plain-MF warm-up is one fit per (data, seed)
        (:func:`apt_core.models.mf_batch.pretrain_forks`), then the adversarial epochs of all jobs
        stacked, each with its own ε and λ_adv.  Neural victims: one by one."""
        contexts = [c for _, _, c in jobs]
        if not batchable(contexts):
            return super().fit_many(jobs)
        cfg, first = contexts[0].mf_config, contexts[0]
        warmups = [d._warmup(cfg.epochs) for d, _, _ in jobs]

        def report(fraction: float) -> None:
            if first.progress is not None and first.progress(fraction, "at: batched epochs") is False:
                raise CancelledError("training cancelled")

        trainer = pretrain_forks([t for _, t, _ in jobs], [c.random_state for c in contexts], warmups, cfg, first.device,
                                 progress=lambda f: report(f * min(warmups) / max(1, cfg.epochs)) or True, store=first.pretrained)
        rows = trainer.rows
        # each member's ε and λ_adv on its own rows of the flattened factors
        eps_P = torch.tensor([d.epsilon for d, _, _ in jobs]).repeat_interleave(rows).unsqueeze(1).to(trainer.device)
        eps_Q = torch.tensor([d.epsilon for d, _, _ in jobs]).repeat_interleave(trainer.n_items).unsqueeze(1).to(trainer.device)
        lam_P = torch.tensor([d.adv_weight for d, _, _ in jobs]).repeat_interleave(rows).unsqueeze(1).to(trainer.device)
        lam_Q = torch.tensor([d.adv_weight for d, _, _ in jobs]).repeat_interleave(trainer.n_items).unsqueeze(1).to(trainer.device)

        def hook(P, Q, users, items, ratings, coef_scale, members: slice):
            # the rows of the members being stepped (P, Q: their flattened factors)
            e_P, l_P = eps_P[members.start * rows: members.stop * rows], lam_P[members.start * rows: members.stop * rows]
            n_items = trainer.n_items
            e_Q, l_Q = eps_Q[members.start * n_items: members.stop * n_items], lam_Q[members.start * n_items: members.stop * n_items]
            gP, gQ, sq = batched_gradients(P, Q, users, items, ratings, coef_scale, cfg.reg)
            dP = _row_normalised(gP).mul_(e_P)
            dQ = _row_normalised(gQ).mul_(e_Q)
            aP, aQ, adv_sq = batched_gradients(P + dP, Q + dQ, users, items, ratings, coef_scale, cfg.reg)
            # the loss of AT's fit: loss + λ_adv x the loss at the perturbed factors (per entry here)
            return gP.add_(aP.mul_(l_P)), gQ.add_(aQ.mul_(l_Q)), sq + adv_sq * l_P.squeeze(1).index_select(0, users)

        for step in range(cfg.epochs - min(warmups)):
            trainer.train_epoch([b for b in range(len(jobs)) if warmups[b] + step < cfg.epochs], gradient_hook=hook)
            report((min(warmups) + step + 1) / max(1, cfg.epochs))
        return [DefenseResult(trainer.model(b), {"defense": d.name, "epsilon": d.epsilon, "adv_weight": d.adv_weight, "warmup_epochs": warmups[b],
                                                 "final_loss": trainer.last_loss[b], "batched": len(jobs)})
                for b, (d, _, _) in enumerate(jobs)]
