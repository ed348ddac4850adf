"""No defense: the victim (plain MF by default, docs/protocol.md) trained on whatever data it is given."""
from __future__ import annotations

from typing import Sequence

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult
from apt_core.models.mf_batch import batchable, pretrain_forks
from apt_core.models.victims import make_trainer


class NoDefense(Defense):
    """Plain MF (Adagrad, MSE on observed ratings).  Threat model: none; budget: none."""

    name = "none"
    summary = "plain MF, no defense"
    paper = "Koren, Bell, Volinsky 2009 (MF)"
    threat_model = "none"
    params = ()

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        cfg = context.mf_config
        # The victim of the context: MF, or LightGCN / NeuMF (their own epochs = cfg.epochs).
        trainer = make_trainer(train.n_users, train.n_items, context)
        tensors = trainer.tensors(train)
        for epoch in range(cfg.epochs):
            trainer.train_epochs(*tensors, 1)
            if context.progress is not None and context.progress((epoch + 1) / max(1, cfg.epochs), "training the victim") is False:
                from apt_core.errors import CancelledError

                raise CancelledError("training cancelled")
        return DefenseResult(trainer.model(), {"final_loss": trainer.last_loss})

    batched = True

    @classmethod
    def fit_many(cls, jobs: Sequence[tuple[Defense, Interactions, DefenseContext]]) -> list[DefenseResult]:
        """Every job's MF in one batch (:mod:`apt_core.models.mf_batch`); jobs with the same data
        and seed are one fit.  Neural victims: one by one."""
        contexts = [c for _, _, c in jobs]
        if not batchable(contexts):
            return super().fit_many(jobs)
        cfg, first = contexts[0].mf_config, contexts[0]
        progress = None
        if first.progress is not None:
            def progress(fraction: float) -> object:
                return first.progress(fraction, "training the victims (batched)")
        trainer = pretrain_forks([t for _, t, _ in jobs], [c.random_state for c in contexts], [cfg.epochs] * len(jobs), cfg,
                                 first.device, progress=progress, store=first.pretrained)
        return [DefenseResult(trainer.model(b), {"final_loss": trainer.last_loss[b], "batched": len(jobs)}) for b in range(len(jobs))]
