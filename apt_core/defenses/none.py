"""No defense: plain MF trained on whatever data it is given (the victim of docs/protocol.md)."""
from __future__ import annotations

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult
from apt_core.models.mf import MFTrainer


class NoDefense(Defense):
    """Plain MF (Adagrad, MSE on observed ratings).  Threat model: none; budget: none."""

    name = "none"
    summary = "plain MF, no defense"
    paper = "Koren, Bell, Volinsky 2009 (MF)"
    threat_model = "none"
    params = ()

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        cfg = context.mf_config
        trainer = MFTrainer(train.n_users, train.n_items, cfg, context.device, context.random_state)
        tensors = trainer.tensors(train)
        for epoch in range(cfg.epochs):
            trainer.train_epochs(*tensors, 1)
            if context.progress is not None and context.progress((epoch + 1) / max(1, cfg.epochs), "training MF") is False:
                from apt_core.errors import CancelledError

                raise CancelledError("training cancelled")
        return DefenseResult(trainer.model(), {"final_loss": trainer.last_loss})
