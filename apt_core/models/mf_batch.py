"""Batched MF: B independent MF fits in one set of tensor operations (issue 22).

Every member of a batch is exactly the fit :class:`apt_core.models.mf.MFTrainer` makes with
its own seed on its own data: its own initial factors (drawn from its own generator, P before
Q), its own shuffle each epoch, its own minibatches, its own Adagrad state.  The factors of
all members are stacked (``P``: members x users x d, ``Q``: members x items x d) and every
minibatch step is one gather, one scatter and one fused Adagrad step over the stack:

- member ``b``'s ratings are read at flat row ``b * rows + u`` of the stacked factors;
- members whose data are shorter than the longest get padding entries whose gradient
  coefficient is 0 (a mask): Adagrad with a zero gradient changes neither the accumulator
  nor the factor, so a padded step is no step for that member;
- a member that has finished its epochs, or stopped early, is left out of later epochs (no
  shuffle drawn, all its entries masked), so its generator and factors stay where its own
  one-by-one fit would have left them;
- each member's loss is the mean over its own minibatch, as in the one-by-one fit.

The arithmetic per rating is the one of :func:`apt_core.models.mf.mf_batch_gradients`; the
flattened ``index_add`` adds a row's contributions in the same order, and the fused Adagrad
kernel is elementwise, so a member agrees with its one-by-one fit to float rounding (in
practice bit for bit; ``tests/test_mf_batch.py`` checks the factors and the hit ratios).

What a batch saves is the per-operation overhead of many small fits (Python, dispatch,
one pass per op), and on a GPU it fills the device.  Identical members (same seed, same data,
same state) are trained once and forked (:meth:`BatchedMFTrainer.select`): APT's pre-training,
AT's warm-up and the attack's MF on one poisoned data set are the same fit.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Sequence

import torch

from apt_core.errors import ConfigError, DivergedError
from apt_core.models.mf import GradientWorkspace, MFConfig, MFModel, MFTrainer, glorot_uniform, mf_batch_gradients
from apt_core.runtime.devices import resolve_device


@dataclass
class MemberData:
    """One member's training triples (on the batch's device; normalised ratings)."""

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor


class BatchedMFTrainer:
    """Stacked MF trainers with per-member seeds, data, epochs and early stops.

    ``rows`` is the number of user rows each member may use (the largest member's, ERM users
    included); member ``b`` uses its first ``n_users[b]`` rows, the rest stay untouched.
    """

    def __init__(self, P: torch.Tensor, Q: torch.Tensor, acc_P: torch.Tensor, acc_Q: torch.Tensor, generators: list[torch.Generator],
                 n_users: list[int], config: MFConfig, device: torch.device, epochs_done: list[int] | None = None):
        self.config, self.device = config, device
        self.P, self.Q, self.acc_P, self.acc_Q = P, Q, acc_P, acc_Q
        self.generators = generators
        self.n_users = list(n_users)
        self.n_items = int(Q.shape[1])
        self.data: list[MemberData | None] = [None] * len(generators)
        self.epochs_done = list(epochs_done) if epochs_done is not None else [0] * len(generators)
        self.last_loss = [float("nan")] * len(generators)
        self._steps = [torch.zeros(()), torch.zeros(())]
        self._workspace = GradientWorkspace()  # one member steps at a time: one set of buffers

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], n_users: Sequence[int], n_items: int, config: MFConfig = MFConfig(),
                   device: str | torch.device = "cpu", rows: int | None = None) -> "BatchedMFTrainer":
        """Fresh members, each initialised exactly as ``MFTrainer(n_users[b], n_items, config, device, seeds[b])``."""
        device = resolve_device(device)
        rows = max(n_users) if rows is None else rows
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        P = torch.zeros(len(seeds), rows, config.dim, device=device)
        Q = torch.zeros(len(seeds), n_items, config.dim, device=device)
        for b, g in enumerate(gens):  # P before Q from each member's own generator, as MFTrainer draws them
            P[b, : n_users[b]] = glorot_uniform(n_users[b], config.dim, g, device)
            Q[b] = glorot_uniform(n_items, config.dim, g, device)
        acc_P = torch.full_like(P, config.init_accumulator)
        acc_Q = torch.full_like(Q, config.init_accumulator)
        return cls(P, Q, acc_P, acc_Q, gens, list(n_users), config, device)

    @property
    def size(self) -> int:
        return len(self.generators)

    @property
    def rows(self) -> int:
        return int(self.P.shape[1])

    def select(self, members: Sequence[int], rows: int | None = None) -> "BatchedMFTrainer":
        """A new batch whose member ``j`` is a copy of this batch's member ``members[j]`` (factors,
        accumulators, generator state, epochs): identical fits forked where they start to differ.
        ``rows``: room for that many user rows per member (for ERM users added later)."""
        rows = self.rows if rows is None else max(rows, self.rows)
        index = torch.as_tensor(list(members), dtype=torch.long, device=self.device)

        def take(t: torch.Tensor, fill: float, n_rows: int) -> torch.Tensor:
            out = t.index_select(0, index)
            if n_rows > t.shape[1]:
                pad = torch.full((len(members), n_rows - t.shape[1], t.shape[2]), fill, device=self.device)
                out = torch.cat([out, pad], 1)
            return out.contiguous()

        gens = []
        for m in members:
            g = torch.Generator()
            g.set_state(self.generators[m].get_state())
            gens.append(g)
        out = BatchedMFTrainer(take(self.P, 0.0, rows), take(self.Q, 0.0, self.n_items), take(self.acc_P, self.config.init_accumulator, rows),
                               take(self.acc_Q, self.config.init_accumulator, self.n_items), gens, [self.n_users[m] for m in members],
                               self.config, self.device, [self.epochs_done[m] for m in members])
        out.data = [self.data[m] for m in members]
        out.last_loss = [self.last_loss[m] for m in members]
        return out

    def set_data(self, member: int, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        if users.numel() and int(users.max()) >= self.n_users[member]:
            raise ConfigError("training data has more users than the model; call grow_users first")
        self.data[member] = MemberData(users.to(self.device), items.to(self.device), ratings.to(self.device))

    def grow_users(self, member: int, n_total: int) -> None:
        """``MFTrainer.grow_users`` for one member: fresh rows from its own generator."""
        extra = n_total - self.n_users[member]
        if extra <= 0:
            return
        if n_total > self.rows:
            raise ConfigError(f"batch has room for {self.rows} user rows, member {member} needs {n_total}")
        new = glorot_uniform(n_total, self.config.dim, self.generators[member], self.device)[-extra:]
        self.P[member, self.n_users[member]: n_total] = new
        self.acc_P[member, self.n_users[member]: n_total] = self.config.init_accumulator
        self.n_users[member] = n_total

    def member_trainer(self, member: int) -> MFTrainer:
        """A read-only :class:`MFTrainer` view of one member (what APT's influence reads: P, Q)."""
        view = MFTrainer.__new__(MFTrainer)
        view.config, view.device = self.config, self.device
        view.P, view.Q = self.P[member, : self.n_users[member]], self.Q[member]
        view.acc_P, view.acc_Q = self.acc_P[member, : self.n_users[member]], self.acc_Q[member]
        view.generator = self.generators[member]
        view.epochs_done, view.last_loss = self.epochs_done[member], self.last_loss[member]
        return view

    def model(self, member: int) -> MFModel:
        return MFModel(self.P[member, : self.n_users[member]].clone(), self.Q[member].clone())

    def chunk_size(self) -> int:
        """Members per stacked step: all of them on a GPU (they fill the device); on a CPU one, since
        a stack beyond the caches streams through memory and is slower than the members one after
        the other (measured: 8 stacked ML-100K-sized members took 1.5x the CPU time)."""
        return self.size if self.device.type != "cpu" else self.cpu_chunk

    #: members per stacked step on a CPU (see :meth:`chunk_size`)
    cpu_chunk: int = 1

    def train_epoch(self, active: Sequence[int], gradient_hook=None) -> None:
        """One epoch of every member in ``active`` (each on its own data and shuffle).

        ``gradient_hook(P, Q, users, items, ratings, coef_scale, members) -> (gP, gQ, sq_err)``
        replaces :func:`batched_gradients` on the flattened factors of the members
        ``members`` (a range of member indices: the rows of the flattened factors; AT)."""
        active = [b for b in active if self.data[b] is not None]
        if not active:
            return
        # contiguous runs of active members, at most chunk_size() long: each run is one stack
        runs, size = [], self.chunk_size()
        for b in active:
            if runs and runs[-1][-1] == b - 1 and len(runs[-1]) < size:
                runs[-1].append(b)
            else:
                runs.append([b])
        losses = {}
        for run in runs:
            losses.update(self._train_run(run, gradient_hook))
        for b in active:
            self.last_loss[b] = losses[b]
            self.epochs_done[b] += 1
            if not math.isfinite(losses[b]):
                raise DivergedError(f"its training loss became {losses[b]} at epoch {self.epochs_done[b]} (learning rate {self.config.lr:g})")
            if not (bool(torch.isfinite(self.P[b]).all()) and bool(torch.isfinite(self.Q[b]).all())):
                raise DivergedError(f"its factors became NaN/inf at epoch {self.epochs_done[b]} (learning rate {self.config.lr:g})")

    def _train_run(self, run: list[int], gradient_hook) -> dict[int, float]:
        """One epoch of the contiguous members ``run`` stacked; their losses (mean over their ratings)."""
        if len(run) == 1:
            return {run[0]: self._train_member(run[0], gradient_hook)}
        cfg, dev = self.config, self.device
        bs, rows, n_items = cfg.batch_size, self.rows, self.n_items
        first = run[0]
        lengths = [len(self.data[b].ratings) for b in run]
        steps = max(math.ceil(n / bs) for n in lengths) if max(lengths) else 0
        width = steps * bs
        U = torch.zeros(len(run), width, dtype=torch.long, device=dev)
        I = torch.zeros(len(run), width, dtype=torch.long, device=dev)
        R = torch.zeros(len(run), width, device=dev)
        W = torch.zeros(len(run), width, device=dev)
        for j, b in enumerate(run):
            d, n = self.data[b], lengths[j]
            perm = torch.randperm(n, generator=self.generators[b]).to(dev)  # the member's own shuffle
            U[j, :n] = d.users.index_select(0, perm)
            I[j, :n] = d.items.index_select(0, perm)
            R[j, :n] = d.ratings.index_select(0, perm)
            W[j, :n] = 1.0
            U[j] += j * rows  # flat row of the member's user in the run's stack (padding: its row 0, weight 0)
            I[j] += j * n_items
        members = slice(first, first + len(run))
        P_flat, Q_flat = self.P[members].view(-1, cfg.dim), self.Q[members].view(-1, cfg.dim)
        acc_P, acc_Q = self.acc_P[members].view(-1, cfg.dim), self.acc_Q[members].view(-1, cfg.dim)
        total = torch.zeros(len(run), dtype=torch.float64, device=dev)
        for s in range(steps):
            sl = slice(s * bs, (s + 1) * bs)
            w = W[:, sl]
            count = w.sum(1)
            # 2 / (the member's own minibatch length), as a float32 like the one-by-one scale
            scale = torch.where(count > 0, 2.0 / count.clamp_min(1.0), torch.zeros_like(count))
            coef_scale = (w * scale.unsqueeze(1)).reshape(-1)
            u, i, r = U[:, sl].reshape(-1), I[:, sl].reshape(-1), R[:, sl].reshape(-1)
            if gradient_hook is None:
                gP, gQ, sq = batched_gradients(P_flat, Q_flat, u, i, r, coef_scale, cfg.reg)
            else:
                gP, gQ, sq = gradient_hook(P_flat, Q_flat, u, i, r, coef_scale, members)
            self._adagrad(P_flat, Q_flat, acc_P, acc_Q, gP, gQ)
            # the member's loss summed over its ratings (the one-by-one fit: mean x length)
            total += (sq * w.reshape(-1)).view(len(run), -1).sum(1).double()
        return {b: float(total[j]) / max(1, lengths[j]) for j, b in enumerate(run)}

    def _train_member(self, b: int, gradient_hook) -> float:
        """One epoch of member ``b`` alone: the steps of ``MFTrainer.train_epochs`` on its own rows.

        A stack of one needs no padding, masks or flat row offsets: on the sample data those
        per-step bookkeeping ops cost as much as the gradient itself (an MF epoch took 46 ms
        stacked-of-one, 15-20 ms here).  Without a hook the gradient is
        :func:`apt_core.models.mf.mf_batch_gradients` on the member's factors and the loss is
        summed as the one-by-one fit sums it, so the member is its one-by-one fit bit for bit
        (``tests/test_mf_batch.py``).  A hook gets the member's rows as flattened factors
        (member ``b``'s flat rows are its own rows) and 2 / (minibatch length) per entry."""
        cfg, d = self.config, self.data[b]
        n = len(d.ratings)
        perm = torch.randperm(n, generator=self.generators[b]).to(self.device)  # the member's own shuffle
        su, si, sr = d.users.index_select(0, perm), d.items.index_select(0, perm), d.ratings.index_select(0, perm)
        P, Q, acc_P, acc_Q = self.P[b], self.Q[b], self.acc_P[b], self.acc_Q[b]
        workspace = self._workspace
        total, sq_sums = 0.0, []
        for start in range(0, n, cfg.batch_size):
            u, i, r = su[start: start + cfg.batch_size], si[start: start + cfg.batch_size], sr[start: start + cfg.batch_size]
            if gradient_hook is None:
                gP, gQ, loss = mf_batch_gradients(P, Q, u, i, r, cfg.reg, workspace)
                total += float(loss) * len(r)
            else:
                # 2 / (minibatch length) as a float32, as _train_run's masked scale computes it
                count = torch.tensor(float(len(r)), device=self.device)
                coef_scale = (2.0 / count).expand(len(r))
                gP, gQ, sq = gradient_hook(P, Q, u, i, r, coef_scale, slice(b, b + 1))
                sq_sums.append(sq.sum().double())
            self._adagrad(P, Q, acc_P, acc_Q, gP, gQ)
        if sq_sums:
            total = float(torch.stack(sq_sums).sum())
        return total / max(1, n)

    def _adagrad(self, P, Q, acc_P, acc_Q, gP, gQ) -> None:
        """The update of ``MFTrainer._adagrad_update`` on the stacked factors (elementwise)."""
        if self.device.type == "cpu" and hasattr(torch, "_fused_adagrad_"):
            torch._fused_adagrad_([P, Q], [gP, gQ], [acc_P, acc_Q], self._steps, lr=self.config.lr, lr_decay=0.0,
                                  weight_decay=0.0, eps=0.0, maximize=False)
            return
        acc_P.addcmul_(gP, gP)
        acc_Q.addcmul_(gQ, gQ)
        P.addcdiv_(gP, acc_P.sqrt(), value=-self.config.lr)
        Q.addcdiv_(gQ, acc_Q.sqrt(), value=-self.config.lr)


def batched_gradients(P: torch.Tensor, Q: torch.Tensor, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor,
                      coef_scale: torch.Tensor, reg: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`apt_core.models.mf.mf_batch_gradients` on flattened stacked factors.

    ``coef_scale`` is, per entry, 2 / (its member's minibatch length), 0 on padding.  Returns
    ``(grad_P, grad_Q, squared_error)`` (per entry, padding included: mask it to sum)."""
    pu = P.index_select(0, users)
    qi = Q.index_select(0, items)
    err = (pu * qi).sum(1) - ratings
    coef = (err * coef_scale).unsqueeze(1)
    if reg > 0:
        # weight of the reg term: the member's scale (0 on padding), as in mf_batch_gradients
        sr = (coef_scale * reg).unsqueeze(1)
        gP = torch.zeros_like(P).index_add_(0, users, coef * qi + sr * pu)
        gQ = torch.zeros_like(Q).index_add_(0, items, coef * pu + sr * qi)
    else:
        gP = torch.zeros_like(P).index_add_(0, users, coef * qi)
        gQ = torch.zeros_like(Q).index_add_(0, items, coef * pu)
    return gP, gQ, err * err


def fit_mf_batch(datasets: Sequence, seeds: Sequence[int], config: MFConfig = MFConfig(), device: str | torch.device = "cpu",
                 epochs: Sequence[int] | None = None) -> list[MFModel]:
    """``[fit_mf(datasets[b], config, device, seeds[b]) for b]`` in one batch (``epochs[b]``: each member's own count).

    Members with the same data object, seed and epochs are fitted once (they are the same fit)."""
    epochs = [config.epochs] * len(seeds) if epochs is None else list(epochs)
    key_of = [(id(d), int(s), int(e)) for d, s, e in zip(datasets, seeds, epochs)]
    unique: dict[tuple, int] = {}
    for k in key_of:
        unique.setdefault(k, len(unique))
    firsts = {j: key_of.index(k) for k, j in unique.items()}
    members = [firsts[j] for j in range(len(unique))]
    trainer = BatchedMFTrainer.from_seeds([seeds[m] for m in members], [datasets[m].n_users for m in members], datasets[members[0]].n_items,
                                          config, device)
    for j, m in enumerate(members):
        d = datasets[m]
        trainer.set_data(j, torch.from_numpy(d.users), torch.from_numpy(d.items), torch.from_numpy(d.normalised_ratings))
    own_epochs = [epochs[m] for m in members]
    for e in range(max(own_epochs, default=0)):
        trainer.train_epoch([j for j in range(len(members)) if own_epochs[j] > e])
    return [trainer.model(unique[k]) for k in key_of]


def gather(picks: Sequence[tuple[BatchedMFTrainer, int]], rows: int | None = None) -> BatchedMFTrainer:
    """One batch of copies of ``(trainer, member)`` picks (same config, device and items), with
    room for ``rows`` user rows per member: forks of a shared pre-training, stacked again."""
    parts = [t.select([m], rows) for t, m in picks]
    rows = max(p.rows for p in parts)
    parts = [p.select([0], rows) if p.rows < rows else p for p in parts]
    first = parts[0]
    out = BatchedMFTrainer(torch.cat([p.P for p in parts]), torch.cat([p.Q for p in parts]), torch.cat([p.acc_P for p in parts]),
                           torch.cat([p.acc_Q for p in parts]), [p.generators[0] for p in parts], [p.n_users[0] for p in parts],
                           first.config, first.device, [p.epochs_done[0] for p in parts])
    out.data = [p.data[0] for p in parts]
    out.last_loss = [p.last_loss[0] for p in parts]
    return out


class PretrainStore:
    """Plain-MF states of (data, seed) pairs at the epochs jobs forked from, shared by the batches
    of one batched fill (thread-safe): AT forks at its warm-up (10 epochs), APT and APT-rand at
    T_pre (15), plain MF runs all 25, and on one poisoned data set with one seed those are the
    same fit -- the later batch resumes from the earlier one's state instead of epoch 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple, tuple[object, dict[int, BatchedMFTrainer]]] = {}

    @staticmethod
    def _key(data, seed: int, config: MFConfig, device) -> tuple:
        return (id(data), int(seed), config, str(device))

    def latest(self, data, seed: int, config: MFConfig, device, at_most: int) -> BatchedMFTrainer | None:
        """A copy of the stored state with the most epochs, at most ``at_most`` (None: none stored)."""
        with self._lock:
            owner, states = self._states.get(self._key(data, seed, config, device), (None, {}))
            if owner is not data:  # an id reused by another object: not this data
                return None
            epochs = [e for e in states if e <= at_most]
            return states[max(epochs)].select([0]) if epochs else None

    def put(self, data, seed: int, config: MFConfig, device, state: BatchedMFTrainer) -> None:
        """Keep a copy of ``state`` (one member) at its epoch."""
        with self._lock:
            owner, states = self._states.setdefault(self._key(data, seed, config, device), (data, {}))
            if owner is data and state.epochs_done[0] not in states:
                states[state.epochs_done[0]] = state.select([0])


def pretrain_forks(datasets: Sequence, seeds: Sequence[int], prefix_epochs: Sequence[int], config: MFConfig, device,
                   rows: Sequence[int] | None = None, progress=None, store: PretrainStore | None = None) -> BatchedMFTrainer:
    """Member ``b`` after ``prefix_epochs[b]`` epochs of plain MF on ``datasets[b]`` with seed ``seeds[b]``.

    Members with the same data object and seed are the same fit until they differ (APT's
    pre-training, AT's warm-up): that fit is trained once, in one batch with the other
    distinct ones, and each member forks from it at its own epoch (factors, Adagrad state and
    generator copied, so it continues exactly as its one-by-one fit).  ``store``: states of
    earlier batches to resume from, and where this one's forks are kept.  ``rows[b]``: user
    rows member ``b`` will need later (ERM users).  ``progress(fraction)`` returning False cancels.
    """
    from apt_core.errors import CancelledError

    device = resolve_device(device)
    keys = [(id(d), int(s)) for d, s in zip(datasets, seeds)]
    unique: dict[tuple, int] = {}
    for b, k in enumerate(keys):
        unique.setdefault(k, b)
    firsts = list(unique.values())
    slot = {k: j for j, k in enumerate(unique)}
    wanted = [sorted({prefix_epochs[b] for b in range(len(keys)) if keys[b] == k}) for k in unique]
    starts = []
    for j, b in enumerate(firsts):
        d = datasets[b]
        state = store.latest(d, seeds[b], config, device, wanted[j][0]) if store is not None else None
        if state is None:
            state = BatchedMFTrainer.from_seeds([seeds[b]], [d.n_users], d.n_items, config, device)
            state.set_data(0, torch.from_numpy(d.users), torch.from_numpy(d.items), torch.from_numpy(d.normalised_ratings))
        starts.append(state)
    base = gather([(t, 0) for t in starts])
    start = list(base.epochs_done)
    snapshots: dict[int, BatchedMFTrainer] = {}
    total = max((w[-1] - s0 for w, s0 in zip(wanted, start)), default=0)
    step = 0
    while True:
        for j, b in enumerate(firsts):
            if start[j] + step in wanted[j]:
                fork = base.select([j])
                if store is not None:
                    store.put(datasets[b], seeds[b], config, device, fork)
                for m, k in enumerate(keys):
                    if slot[k] == j and prefix_epochs[m] == start[j] + step:
                        snapshots[m] = fork
        active = [j for j in range(len(firsts)) if start[j] + step < wanted[j][-1]]
        if not active:
            break
        base.train_epoch(active)
        step += 1
        if progress is not None and progress(step / max(1, total)) is False:
            raise CancelledError("training cancelled")
    need = max(rows) if rows is not None else None
    return gather([(snapshots[b], 0) for b in range(len(keys))], need)


def batchable(contexts: Sequence) -> bool:
    """Whether fits with these defense contexts can share one MF batch: MF victims (no neural
    victim), one device, one MF recipe."""
    if not contexts:
        return False
    first = contexts[0]
    return all(getattr(c, "victim", None) is None and str(resolve_device(c.device)) == str(resolve_device(first.device))
               and c.mf_config == first.mf_config for c in contexts)
