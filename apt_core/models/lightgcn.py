"""LightGCN as a poisoning victim.

Paper: Xiangnan He, Kuan Deng, Xiang Wang, Yan Li, Yongdong Zhang, Meng Wang, "LightGCN:
Simplifying and Powering Graph Convolution Network for Recommendation", SIGIR 2020.

Recipe (the paper's): embeddings E⁰ (d = 64, initialised N(0, 0.1²) as in the authors'
code); propagation E^{k+1} = D^{-1/2} A D^{-1/2} E^k over the user-item bipartite graph A
built from the training interactions (fake and ERM users are nodes like any other); final
embedding the mean of layers 0..K (K = 3); score = dot product of the final user and item
embeddings.  Loss (implicit feedback, the default): BPR with one negative per positive,
drawn uniformly among the user's unrated items, plus 1e-4 x L2 of the batch's E⁰ rows
(halved and divided by the batch size, as the authors' code does); Adam lr 1e-3, batch 2048.
With ``feedback="explicit"`` the score regresses the normalised rating (MSE, observed
ratings only).  See :mod:`apt_core.models.victims` for how ratings are used.

CPU cost: every batch propagates the whole graph (as the reference code does) with a sparse
CSR x dense product, K forward and K backward products per batch.
"""
from __future__ import annotations

import torch

from apt_core.models.mf import MFModel
from apt_core.models.neural import TorchVictimTrainer, VictimConfig, seeded_normal


class LightGCNModel(MFModel):
    """A fitted LightGCN: the final (layer-mean) user and item embeddings; score = dot product."""


def normalised_adjacency(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """D^{-1/2} A D^{-1/2} of the bipartite graph (users first, then items) as a sparse CSR matrix.

    Duplicate (user, item) pairs count once; isolated nodes (no interaction) get an empty row.
    On the CPU the index arrays are int32 where they fit: the kernel (MKL) takes 32-bit indices
    and would otherwise convert both index arrays on every product (the same sums, slower).
    Other devices keep torch's default int64 (untested there without a GPU at hand).
    """
    n = n_users + n_items
    key = torch.unique(users * n_items + items)
    u, i = key // n_items, key % n_items
    rows = torch.cat([u, i + n_users])
    cols = torch.cat([i + n_users, u])
    deg = torch.bincount(rows, minlength=n).to(torch.float32)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1).rsqrt(), torch.zeros_like(deg))
    values = inv_sqrt[rows] * inv_sqrt[cols]
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()
    csr = coo.to_sparse_csr()
    if csr.device.type != "cpu" or max(n, len(values)) >= 2**31:
        return csr
    return torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32), csr.values(), (n, n),
                                   check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """``G @ E`` for a symmetric sparse G, whose backward is ``G @ grad`` again.

    torch's own backward of a CSR x dense product converts G to COO, transposes and sorts
    it on every call (two thirds of a CPU epoch); G = D^-1/2 A D^-1/2 is symmetric, so the
    gradient needs the same product and nothing else.
    """

    @staticmethod
    def forward(ctx, graph: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        if graph.device.type != "cpu":
            return graph @ e
        # out= a fresh buffer: the same kernel and sums as ``graph @ e`` without zero-filling a
        # result and copying it over (10-15% of the product on a CPU; every row is written,
        # empty rows included: tests/test_victims.py checks it against a NaN-filled buffer).
        return torch.mm(graph, e, out=e.new_empty((graph.shape[0], e.shape[1])))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, _SymmetricSpMM.apply(ctx.graph, grad)


def propagate(graph: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    return _SymmetricSpMM.apply(graph, e)


class LightGCNTrainer(TorchVictimTrainer):
    """Resumable LightGCN training with MF's trainer interface (see :mod:`apt_core.models.victims`)."""

    name = "lightgcn"
    label = "LightGCN"
    paper = "He, Deng, Wang, Li, Zhang, Wang, SIGIR 2020"
    implicit_loss = "bpr"
    user_tables = (0,)
    embedding_tables = (0, 1)

    @classmethod
    def default_config(cls, feedback: str = "implicit") -> VictimConfig:
        """The paper's recipe: 64-d embeddings, 3 layers, Adam 1e-3, batch 2048, L2 1e-4, BPR with one negative."""
        return VictimConfig(cls.name, dim=64, lr=1e-3, batch_size=2048, reg=1e-4, n_negatives=1, layers=(3,), feedback=feedback)

    def _init_params(self) -> list[torch.Tensor]:
        d = self.config.dim
        return [seeded_normal(self.n_users, d, 0.1, self.generator, self.device).requires_grad_(True),
                seeded_normal(self.n_items, d, 0.1, self.generator, self.device).requires_grad_(True)]

    @property
    def n_layers(self) -> int:
        return int(self.config.layers[0])

    def prepare_data(self, users: torch.Tensor, items: torch.Tensor) -> None:
        self.graph = normalised_adjacency(users, items, self.n_users, self.n_items)

    graph: torch.Tensor | None = None

    def encode(self, params: list[torch.Tensor]):
        if self.graph is None:  # nothing trained yet (0 epochs): an empty graph
            self.graph = normalised_adjacency(torch.zeros(0, dtype=torch.long, device=self.device),
                                              torch.zeros(0, dtype=torch.long, device=self.device), self.n_users, self.n_items)
        e = torch.cat([params[0], params[1]])
        acc = e
        for _ in range(self.n_layers):
            e = propagate(self.graph, e)
            acc = acc + e
        final = acc / (self.n_layers + 1)
        return final[: self.n_users], final[self.n_users:]

    def pair_scores(self, enc, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        eu, ei = enc
        return (eu.index_select(0, users) * ei.index_select(0, items)).sum(-1)

    def user_scores(self, enc, users: torch.Tensor) -> torch.Tensor:
        eu, ei = enc
        return eu.index_select(0, users) @ ei.T

    def regulariser(self, params: list[torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # The authors' reg loss: 0.5 * (|e_u|^2 + |e_i|^2 + |e_j|^2) / batch, over E⁰ rows.
        pu = params[0].index_select(0, users)
        qi = params[1].index_select(0, items)
        return 0.5 * (pu.pow(2).sum() + qi.pow(2).sum()) / max(1, len(users))

    def _model(self) -> LightGCNModel:
        with torch.no_grad():
            eu, ei = self.encode(self.params)
        return LightGCNModel(eu.detach().clone(), ei.detach().clone())
