"""Most-popular baseline: every user gets items ranked by their number of training ratings."""
from __future__ import annotations

import numpy as np
import torch

from apt_core.data.dataset import Interactions


class PopularityModel:
    def __init__(self, item_counts: np.ndarray, n_users: int, device: torch.device | str = "cpu"):
        self.counts = torch.as_tensor(item_counts, dtype=torch.float32, device=device)
        self.n_users = n_users
        self.n_items = len(item_counts)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(users), -1)


def fit_popularity(data: Interactions, device: torch.device | str = "cpu") -> PopularityModel:
    return PopularityModel(data.item_counts, data.n_users, device)
