"""APT and APT-rand fitted in batches (issue 22): Algorithm 1 for B jobs in one MF batch.

Each job keeps its own fit's semantics (:meth:`apt_core.defenses.erm.ERMTraining._train`): its
seed, its data, its ERM statistics, its own random stream for the ERM users, its schedule
(T_pre, T_inter) and its number of ERM users.  What the jobs share is the arithmetic:

- the pre-training (T_pre epochs of plain MF) is one fit per (data, seed): the classroom
  grid's 24 APT / APT-rand settings on one poisoned data set pre-train once
  (:func:`apt_core.models.mf_batch.pretrain_forks`);
- after it every epoch of every job is one stacked MF epoch (each job on its own data: D
  plus its own ERM users, padded and masked where the lengths differ).

What does not batch: APT's influence vector (Eq. 4-5) is a solve per job and round on that
job's own factors (a Lanczos or LiSSA run whose iterations depend on the job), and the ERM
users are drawn per job from its own random stream.  Those stay one by one, between the
batched epochs, exactly as in the one-by-one fit.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import DefenseContext, DefenseResult
from apt_core.defenses.erm import ERMTraining, FitStatistics, RoundState, fit_diagnostics
from apt_core.errors import CancelledError
from apt_core.influence.mf import RatingStructure, probe_users
from apt_core.models.mf import MFModel
from apt_core.models.mf_batch import batchable, pretrain_forks


def fit_erm_batch(jobs: Sequence[tuple[ERMTraining, Interactions, DefenseContext]]) -> list[DefenseResult]:
    """``[defense.fit(train, context) for defense, train, context in jobs]`` in one MF batch."""
    contexts = [c for _, _, c in jobs]
    if not batchable(contexts):
        return [d.fit(t, c) for d, t, c in jobs]
    t_start = time.perf_counter()
    stats = [d._statistics(t, c) for d, t, c in jobs]
    settings = [d.resolved_settings(c.dataset, t.n_items) for d, t, c in jobs]
    n_erm = [d.n_erm_users(c.real_user_count(t), c.dataset) for d, t, c in jobs]
    # Jobs that differ only in where their statistics came from, and got equal ones (on the sample
    # data a detector that flags exactly the fake users makes "trusted" equal "clean"), are one
    # fit: the same inputs to the same deterministic computation.  It is trained once; each job
    # reports it with its own settings' names and detection (fit_diagnostics).
    slots: dict[tuple, int] = {}
    fit_of = [slots.setdefault(same_fit_key(*job, stats[b], settings[b], n_erm[b]), len(slots)) for b, job in enumerate(jobs)]
    distinct = [fit_of.index(j) for j in range(len(slots))]
    fits = _fit_distinct([jobs[b] for b in distinct], [stats[b] for b in distinct], [settings[b] for b in distinct],
                         [n_erm[b] for b in distinct])
    share = (time.perf_counter() - t_start) / len(jobs)
    out = []
    for b, (defense, _, _) in enumerate(jobs):
        model, rounds, state, regen_seconds, final_loss = fits[fit_of[b]]
        if b != distinct[fit_of[b]]:
            model, rounds = MFModel(model.P.clone(), model.Q.clone()), [dict(r) for r in rounds]  # its own copies
        out.append(_result(defense, contexts[0].mf_config.epochs, settings[b], n_erm[b], rounds, state, stats[b], regen_seconds, share,
                           model, final_loss, len(jobs)))
    return out


def same_fit_key(defense: ERMTraining, train: Interactions, context: DefenseContext, stats: FitStatistics, settings, n_erm: int) -> tuple:
    """What an ERM fit's model depends on: the defense's class and parameters except where its
    statistics come from (``erm_stats``, ``detector``: they act through ``stats`` alone), the
    data, the seed, the resolved schedule, n* and the statistics themselves, bit for bit."""
    params = tuple(sorted((k, repr(v)) for k, v in defense.get_params().items() if k not in ("erm_stats", "detector")))
    arrays = tuple((a.dtype.str, a.shape, a.tobytes()) for a in (np.asarray(stats.means), np.asarray(stats.stds)))
    return (type(defense), params, id(train), int(context.random_state), repr(settings), int(n_erm), arrays)


def _fit_distinct(jobs: Sequence[tuple[ERMTraining, Interactions, DefenseContext]], stats: list[FitStatistics], settings: list,
                  n_erm: list[int]) -> list[tuple]:
    """Algorithm 1 for distinct jobs in one MF batch: per job (model, rounds, last state, seconds of its
    regenerations, final loss)."""
    contexts = [c for _, _, c in jobs]
    cfg, first = contexts[0].mf_config, contexts[0]
    # plain MF until the first regeneration (all epochs when there is none)
    regenerates = [n > 0 and s.t_pre < cfg.epochs for n, s in zip(n_erm, settings)]
    prefix = [s.t_pre if r else cfg.epochs for s, r in zip(settings, regenerates)]

    def report(fraction: float) -> None:
        if first.progress is not None and first.progress(min(1.0, fraction), f"{jobs[0][0].name}: {len(jobs)} fits batched") is False:
            raise CancelledError("training cancelled")

    shortest = min(prefix)
    trainer = pretrain_forks([t for _, t, _ in jobs], [c.random_state for c in contexts], prefix, cfg, first.device,
                             rows=[t.n_users + n for (_, t, _), n in zip(jobs, n_erm)],
                             progress=lambda f: report(f * shortest / max(1, cfg.epochs)) or True, store=first.pretrained)
    states, rounds, regen_seconds = [], [[] for _ in jobs], [0.0] * len(jobs)
    shared: dict[tuple, object] = {}  # per data set: its tensors, APT's probe users and rating structure
    for b, (defense, train, context) in enumerate(jobs):
        tensors = shared.setdefault(("d", id(train)), tuple(torch.from_numpy(a).to(trainer.device)
                                                              for a in (train.users, train.items, train.normalised_ratings)))
        rng = np.random.default_rng([int(context.random_state), 7411])
        state = RoundState(defense, train, context, settings[b], None, *tensors, stats[b].means, stats[b].stds, rng, n_erm[b])
        if hasattr(defense, "n_probe"):  # APT: what its _generate would build per job, built once per data set
            if ("probe", id(train), defense.n_probe) not in shared:
                shared[("probe", id(train), defense.n_probe)] = probe_users(train.users, train.normalised_ratings, train.n_users, defense.n_probe)
            if ("structure", id(train)) not in shared:
                shared[("structure", id(train))] = RatingStructure.build(tensors[0], tensors[1], train.n_users, train.n_items)
            # jobs with the same data, seed and T_pre reach their first round with equal models
            state.cache = {"probe": shared[("probe", id(train), defense.n_probe)], "structure": shared[("structure", id(train))],
                           "first_round": shared.setdefault(("first", id(train), int(context.random_state), settings[b].t_pre), {})}
        states.append(state)
    for step in range(cfg.epochs - shortest):
        active = []
        for b, (defense, train, context) in enumerate(jobs):
            epoch = prefix[b] + step
            if epoch >= cfg.epochs:
                continue
            active.append(b)
            s, state = settings[b], states[b]
            if regenerates[b] and epoch >= s.t_pre and (epoch - s.t_pre) % s.t_inter == 0:
                t0 = time.perf_counter()
                trainer.grow_users(b, train.n_users + n_erm[b])
                state.trainer, state.epoch = trainer.member_trainer(b), epoch
                batch = defense._generate(state)
                users = torch.cat([state.d_users, torch.from_numpy(batch.users + train.n_users).to(trainer.device)])
                items = torch.cat([state.d_items, torch.from_numpy(batch.items).to(trainer.device)])
                ratings = torch.cat([state.d_ratings, torch.from_numpy(train.scale.normalise(batch.ratings)).to(trainer.device)])
                trainer.set_data(b, users, items, ratings)
                seconds = time.perf_counter() - t0
                regen_seconds[b] += seconds
                rounds[b].append({
                    "epoch": epoch,
                    "erm_items": batch.items.reshape(n_erm[b], -1).astype(np.int32),
                    "erm_ratings_mean": float(batch.ratings.mean()) if len(batch.ratings) else float("nan"),
                    "seconds": seconds,
                    **batch.extra,
                })
                state.last_batch = batch
        trainer.train_epoch(active)
        report((shortest + step + 1) / max(1, cfg.epochs))
    return [(trainer.model(b), rounds[b], states[b], regen_seconds[b], trainer.last_loss[b]) for b in range(len(jobs))]


def _result(defense: ERMTraining, epochs: int, settings, n_erm: int, rounds: list, state: RoundState, stats: FitStatistics,
            seconds_regen: float, seconds_share: float, model, final_loss: float, batch_size: int) -> DefenseResult:
    """The diagnostics of :meth:`ERMTraining._train`, plus the batch's size (``seconds_total``: the job's share of the batch)."""
    diagnostics = fit_diagnostics(defense, epochs, settings, n_erm, rounds, state, stats, seconds_regen, seconds_share, final_loss)
    diagnostics["batched"] = batch_size
    return DefenseResult(model, diagnostics)
