"""Benchmark rows of the victims beyond MF (LightGCN, NeuMF), for ``python -m apt_core bench``.

Measured here, nothing estimated: a full fit of each victim on the benchmark's split (its
default epochs), training epochs on an ML-1M-shaped synthetic set (an epoch count is stated
in the row: a 25-epoch LightGCN fit on 1M ratings is minutes on a CPU), and one APT
regeneration's influence computation on LightGCN (autograd HVPs; identity and CG solvers).
"""
from __future__ import annotations

import torch

from apt_core.data.split import Split


def bench_victims(split: Split, dev: torch.device, time_it, repeats: int = 1, ml1m_data=None, ml1m_epochs: int = 1,
                  victims: tuple[str, ...] = ("lightgcn", "neumf")) -> list[tuple[str, float, float, int, str]]:
    """Rows ``(stage, median s, min s, repeats, note)``; ``time_it(fn, repeats)`` is bench's timer,
    ``ml1m_data`` bench's ML-1M-shaped synthetic set (None: no ML-1M rows)."""
    from apt_core.influence.mf import probe_users
    from apt_core.influence.autograd import victim_influence
    from apt_core.models.victims import default_victim_config, victim_trainer

    rows = []
    reps = max(1, min(2, repeats))  # a neural fit is tens of seconds on a CPU
    train = split.train
    for name in victims:
        cfg = default_victim_config(name)

        def fit(cfg=cfg, data=train):
            trainer = victim_trainer(data.n_users, data.n_items, cfg, dev)
            trainer.train_epochs(*trainer.tensors(data), cfg.epochs)
            return trainer

        med, mn = time_it(fit, reps)
        rows.append((f"{name} fit, {cfg.epochs} epochs ({dev.type})", med, mn, reps, f"{len(train)} interactions, {cfg.feedback}"))

    # APT's influence per regeneration round on LightGCN (after 2 epochs; the cost of one
    # round does not depend on how far training went, except for CG's iteration count).
    cfg = default_victim_config("lightgcn")
    trainer = victim_trainer(train.n_users, train.n_items, cfg, dev)
    u, i, r = trainer.tensors(train)
    trainer.train_epochs(u, i, r, 2)
    probe = probe_users(train.users, train.normalised_ratings, train.n_users, 10)
    for solver in ("identity", "cg"):
        info = {}

        def once(solver=solver):
            info["res"] = victim_influence(trainer, u, i, r, train.n_users, probe, solver=solver)

        med, mn = time_it(once, reps)
        cg = info["res"].cg
        note = "autograd HVPs" + (f", CG {cg.iterations} it, residual {cg.residual:.1e}" if cg else "")
        rows.append((f"APT influence round ({solver}), lightgcn ({dev.type})", med, mn, reps, note))

    if ml1m_data is not None:
        data = ml1m_data
        for name in victims:
            cfg = default_victim_config(name)
            trainer = victim_trainer(data.n_users, data.n_items, cfg, dev)
            tensors = trainer.tensors(data)
            med, mn = time_it(lambda: trainer.train_epochs(*tensors, ml1m_epochs), 1)
            rows.append((f"{name} {ml1m_epochs} epoch(s), ML-1M-shaped synthetic ({dev.type})", med, mn, 1,
                                 f"{len(data)} interactions; a {cfg.epochs}-epoch fit is {cfg.epochs // ml1m_epochs}x this"))
    return rows
