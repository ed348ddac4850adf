"""What every fitted recommender offers: scores for a block of users over all items."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Recommender(Protocol):
    """A fitted model.  Scores are on the normalised scale (ratings / scale maximum)."""

    n_users: int
    n_items: int

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of shape ``(len(users), n_items)`` on the model's device."""
        ...
