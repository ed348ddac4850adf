"""NeuMF (neural matrix factorisation) as a poisoning victim.

Paper: Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu, Tat-Seng Chua, "Neural
Collaborative Filtering", WWW 2017.

Recipe: a GMF branch (element-wise product of 8-d user and item embeddings) and an MLP tower
(two 32-d embeddings concatenated, 64 -> 32 -> 16 -> 8 with ReLU), their last layers
concatenated into one linear output ("predictive factors" 8, the paper's smallest setting:
cheap on a CPU, and its HR differs little from larger ones in the paper's Figure 4).
Embeddings N(0, 0.01²) as in the authors' code, dense layers Glorot-uniform.  Loss (implicit
feedback, the default): pointwise log loss, every observed rating a positive with 4 negatives
per positive drawn uniformly among the user's unrated items (resampled every epoch); Adam lr
1e-3.  Deviations, said plainly: no GMF/MLP pre-training (the paper pre-trains both towers
and reports NeuMF without it as slightly worse) and batch 2048 instead of 256 (8x fewer
optimiser steps per epoch on a CPU).  With ``feedback="explicit"`` the linear output regresses
the normalised rating (MSE, observed ratings only).
"""
from __future__ import annotations

import torch

from apt_core.models.neural import TorchVictimTrainer, VictimConfig, seeded_glorot, seeded_normal

# First-layer trick: W [p; q] = W_p p + W_q q, so scoring users x all items never builds the
# (users x items x 64) concatenation; chunks keep the (users x items x 32) hidden layer small.
_SCORE_CHUNK_PAIRS = 1 << 19


def _mlp_tail(h: torch.Tensor, params: list[torch.Tensor], n_layers: int) -> torch.Tensor:
    for k in range(1, n_layers):
        w, b = params[4 + 2 * k], params[5 + 2 * k]
        h = torch.relu(h @ w.T + b)
    return h


def neumf_pair_scores(params: list[torch.Tensor], n_layers: int, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    pg, qg, pm, qm = params[:4]
    gmf = pg.index_select(0, users) * qg.index_select(0, items)
    dm = pm.shape[1]
    w1, b1 = params[4], params[5]
    h = torch.relu(pm.index_select(0, users) @ w1[:, :dm].T + qm.index_select(0, items) @ w1[:, dm:].T + b1)
    h = _mlp_tail(h, params, n_layers)
    out_w, out_b = params[-2], params[-1]
    return torch.cat([gmf, h], 1) @ out_w + out_b


def neumf_user_scores(params: list[torch.Tensor], n_layers: int, users: torch.Tensor) -> torch.Tensor:
    pg, qg, pm, qm = params[:4]
    dm, dg = pm.shape[1], pg.shape[1]
    w1, b1 = params[4], params[5]
    out_w, out_b = params[-2], params[-1]
    item_part = qm @ w1[:, dm:].T + b1  # (n_items, h1)
    gmf_item = qg * out_w[:dg]  # (n_items, dg): the GMF term p_u . (q_i * h_gmf)
    user_part = pm.index_select(0, users) @ w1[:, :dm].T  # (B, h1)
    n_items = qg.shape[0]
    step = max(1, _SCORE_CHUNK_PAIRS // max(1, n_items))
    blocks = []
    for s in range(0, len(users), step):
        h = torch.relu(user_part[s:s + step, None, :] + item_part[None, :, :])
        h = _mlp_tail(h, params, n_layers)
        mlp = h @ out_w[dg:]
        gmf = pg.index_select(0, users[s:s + step]) @ gmf_item.T
        blocks.append(gmf + mlp + out_b)
    return torch.cat(blocks) if blocks else qg.new_zeros((0, n_items))


class NeuMFModel:
    """A fitted NeuMF: its parameter tensors; scores users over all items in bounded chunks."""

    def __init__(self, params: list[torch.Tensor], n_layers: int):
        self.params = [p.detach() for p in params]
        self.n_layers = int(n_layers)
        self.n_users, self.n_items = self.params[0].shape[0], self.params[1].shape[0]

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return neumf_user_scores(self.params, self.n_layers, users)

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return neumf_pair_scores(self.params, self.n_layers, users, items)

    def to(self, device: torch.device | str) -> "NeuMFModel":
        return NeuMFModel([p.to(device) for p in self.params], self.n_layers)

    def state_dict(self) -> dict:
        out = {f"p{k}": p.cpu() for k, p in enumerate(self.params)}
        out["n_layers"] = torch.tensor(self.n_layers)
        return out

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> "NeuMFModel":
        n = len([k for k in state if k.startswith("p")])
        return cls([state[f"p{k}"].to(device) for k in range(n)], int(state["n_layers"]))


class NeuMFTrainer(TorchVictimTrainer):
    """Resumable NeuMF training with MF's trainer interface (see :mod:`apt_core.models.victims`)."""

    name = "neumf"
    label = "NeuMF"
    paper = "He, Liao, Zhang, Nie, Hu, Chua, WWW 2017"
    implicit_loss = "logloss"
    user_tables = (0, 2)
    embedding_tables = (0, 1, 2, 3)

    @classmethod
    def default_config(cls, feedback: str = "implicit") -> VictimConfig:
        """The paper's recipe: GMF factors 8, MLP 64 -> 32 -> 16 -> 8 (input = two 32-d embeddings), 4 negatives."""
        return VictimConfig(cls.name, dim=8, lr=1e-3, batch_size=2048, reg=0.0, n_negatives=4, layers=(64, 32, 16, 8), feedback=feedback)

    @property
    def n_layers(self) -> int:
        return len(self.config.layers) - 1

    def _init_params(self) -> list[torch.Tensor]:
        cfg, g, dev = self.config, self.generator, self.device
        widths = list(cfg.layers)
        dm = widths[0] // 2
        params = [
            seeded_normal(self.n_users, cfg.dim, 0.01, g, dev),
            seeded_normal(self.n_items, cfg.dim, 0.01, g, dev),
            seeded_normal(self.n_users, dm, 0.01, g, dev),
            seeded_normal(self.n_items, dm, 0.01, g, dev),
        ]
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            params += [seeded_glorot(fan_out, fan_in, g, dev), torch.zeros(fan_out, device=dev)]
        params += [seeded_glorot(cfg.dim + widths[-1], 1, g, dev).view(-1), torch.zeros((), device=dev)]
        return [p.requires_grad_(True) for p in params]

    def pair_scores(self, enc, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return neumf_pair_scores(enc, self.n_layers, users, items)

    def user_scores(self, enc, users: torch.Tensor) -> torch.Tensor:
        return neumf_user_scores(enc, self.n_layers, users)

    def regulariser(self, params: list[torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return sum(params[k].index_select(0, users).pow(2).sum() for k in (0, 2)) / max(1, len(users)) + \
            sum(params[k].index_select(0, items).pow(2).sum() for k in (1, 3)) / max(1, len(items))

    def _model(self) -> NeuMFModel:
        return NeuMFModel([p.detach().clone() for p in self.params], self.n_layers)
