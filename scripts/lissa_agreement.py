"""LiSSA solvers side by side at a real APT model state (issue 16 / issue 9).

Trains MF for T_pre epochs on a poisoned training set (an attack on fixed targets), then
computes APT's influence vector with every solver and compares each with the authors'
stochastic LiSSA: Spearman correlation over items, overlap of the 100 / 200 most negative
items, and seconds.  Two stochastic runs with different seeds give the noise floor.

    PYTHONPATH=. python scripts/lissa_agreement.py --dataset DATA/reference-splits/ml-100k \
        --targets 1485,1320,821,1562,1531 --attack average --t-pre 15

(DATA: a folder holding the APT authors' split files, NAME.train.rating / NAME.test.rating.)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from apt_core.attacks import make_attack
from apt_core.data import leave_one_out, load_dataset, select_targets
from apt_core.data.split import attack_budget
from apt_core.influence.mf import RatingStructure, influence_vector, probe_users
from apt_core.models.mf import MFConfig, MFTrainer


def overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    return len(set(np.argsort(a, kind="stable")[:k]) & set(np.argsort(b, kind="stable")[:k])) / k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--attack", default="average")
    ap.add_argument("--t-pre", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solvers", default="identity,cg,lissa-full,lissa-lanczos")
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_dataset(args.dataset)
    split = leave_one_out(data, 0)
    targets = select_targets(split, [int(t) for t in args.targets.split(",")])
    train = split.train
    if args.attack != "none":
        budget = attack_budget(train, 0.03)
        fake = make_attack(args.attack).generate(train, targets, budget.n_fake_users, budget.n_filler, args.seed, "cpu")
        train = fake.inject(train)
    trainer = MFTrainer(train.n_users, train.n_items, MFConfig(), "cpu", args.seed)
    u, i, r = trainer.tensors(train)
    trainer.train_epochs(u, i, r, args.t_pre)
    probe = probe_users(train.users, train.normalised_ratings, train.n_users, 10)
    st = RatingStructure.build(u, i, train.n_users, train.n_items)
    out = {}
    t0 = time.perf_counter()
    ref = influence_vector(trainer.P, trainer.Q, u, i, r, probe, solver="lissa", seed=1, structure=st)
    out["lissa (seed 1)"] = {"seconds": time.perf_counter() - t0}
    runs = {"lissa (seed 2)": dict(solver="lissa", seed=2)}
    runs.update({s: dict(solver=s) for s in args.solvers.split(",")})
    for name, kw in runs.items():
        t0 = time.perf_counter()
        res = influence_vector(trainer.P, trainer.Q, u, i, r, probe, structure=st, **kw)
        secs = time.perf_counter() - t0
        rho = spearmanr(ref.values, res.values).correlation
        row = {"spearman": round(float(rho), 4), "top100": overlap(ref.values, res.values, 100),
               "top200": overlap(ref.values, res.values, 200), "seconds": round(secs, 3)}
        if res.lanczos is not None:
            row["lanczos"] = {"iterations": res.lanczos.iterations, "ritz": [res.lanczos.ritz_min, res.lanczos.ritz_max],
                              "change": res.lanczos.change}
        row["target_ranks"] = [int(np.argsort(np.argsort(res.values, kind="stable"))[t]) for t in targets]
        out[name] = row
    out["lissa (seed 1)"]["target_ranks"] = [int(np.argsort(np.argsort(ref.values, kind="stable"))[t]) for t in targets]
    print(json.dumps({"dataset": args.dataset, "attack": args.attack, "t_pre": args.t_pre, "targets": targets.tolist(), "rows": out}, indent=1))


if __name__ == "__main__":
    main()
