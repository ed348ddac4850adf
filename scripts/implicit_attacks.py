"""Reproduce docs/victims.md's tables: implicit-feedback attacks on LightGCN / NeuMF, and defenses on them.

    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl plateau --victims lightgcn,neumf
    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl attacks --victims lightgcn,neumf \
        --attacks popular-filler,bpr-surrogate:surrogate=lightgcn:epochs=25 --sizes 0.05 --seeds 3 --tier unpopular
    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl defenses --victims lightgcn \
        --attacks bpr-surrogate:surrogate=lightgcn:epochs=25 --sizes 0.05 --seeds 3 --defenses at,apt,apt-trusted,tcd
    python scripts/implicit_attacks.py --data-dir DIR --out tune.jsonl attacks --split-seed 7 --epochs 25 ...  # tuning
    python scripts/implicit_attacks.py --out rows.jsonl table

An attack may carry settings: ``bpr-surrogate:fillers=clone:filler_share=0.5``.  Fits whose phase,
victim, epochs, tier, attack, size and seed are already in ``--out`` are skipped (the clean fit
of a seed is redone when a later row of that seed needs its ranks; ``--clean-seeds`` limits it).

ML-100K, leave-one-out split seed 0, 5 targets of the tier drawn with seed 0 (``--split-seed`` sets
both: attack settings were chosen on split seed 7, never reported); the seeds are model
seeds (victim initialisation and negatives, the attack's own draws), the split and targets fixed.
Every fit uses the victim's recipe (docs/victims.md) with the epoch count chosen by its early stop
(``plateau``).  Every row goes to ``--out`` as one JSON line as soon as it is measured, and a run
skips the rows already there (a long run can be resumed).  Scoring: ``real-masked`` (real users
only, rated items masked: the project's) and ``all-unmasked`` (fake users counted, no masking:
the literature's code) side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch


def load(data_dir: str, split_seed: int = 0):
    from apt_core.data.loaders import load_dataset
    from apt_core.data.split import leave_one_out

    return leave_one_out(load_dataset("ml-100k", data_dir), split_seed)


def measure(model, split, targets, n_users: int, clean=None) -> dict:
    from apt_core.evaluation.metrics import evaluate, hit_ratio, rank_shift, unmasked_target_hr

    ev = evaluate(model, split, targets, 50)
    row = {"hr10": hit_ratio(ev.target_ranks, 10), "hr50": ev.target_hr, "test_hr50": ev.test_hr,
           "test_hr10": hit_ratio(ev.test_ranks[:, None], 10),
           "median_rank": float(np.median(ev.target_ranks[ev.target_ranks >= 0])),
           "hr50_all_unmasked": unmasked_target_hr(model, n_users, targets, 50)}
    if clean is not None:
        row["median_rank_shift"] = float(np.median(rank_shift(clean, ev)))
    return row, ev


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system): what a fit costs, whatever the load."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def attack_profiles(out: Path, attack: str, split, targets: np.ndarray, size: float, seed: int, split_seed: int):
    """The fake profiles of ``attack`` at ``size`` and ``seed``, generated once and kept beside ``out``.

    An attack is deterministic given the split, targets, budget and seed, so the profiles are
    saved (``.npz``) and reused by the other victim's rows and by later commands: the
    LightGCN-surrogate attack's 25-epoch surrogate fit is then paid once per (size, seed), not
    once per victim.  Returns the profiles, the budget and the CPU seconds spent generating
    (0 when read back).
    """
    from apt_core.attacks import make_attack
    from apt_core.attacks.base import FakeProfiles
    from apt_core.data.split import attack_budget

    budget = attack_budget(split.train, size, None)
    tag = "".join(c if c.isalnum() or c in ".-" else "-" for c in f"{attack}-{size}-{seed}-split{split_seed}-t{'.'.join(map(str, targets))}")
    path = out.with_name(f"{out.stem}.profiles-{tag}.npz")
    if path.exists():
        z = np.load(path)
        return FakeProfiles(z["users"], z["items"], z["ratings"], int(z["n_fake_users"]), int(z["n_items"])), budget, 0.0
    name, *settings = attack.split(":")
    params = {k: _value(v) for k, v in (x.split("=") for x in settings)}
    c0 = cpu_seconds()
    fake = make_attack(name, **params).run(split.train, targets, budget.n_fake_users, budget.n_filler, seed).profiles
    np.savez(path, users=fake.users, items=fake.items, ratings=fake.ratings, n_fake_users=fake.n_fake_users, n_items=fake.n_items)
    return fake, budget, cpu_seconds() - c0


def done_keys(out: Path) -> set:
    if not out.exists():
        return set()
    return {json.loads(line)["key"] for line in out.read_text().splitlines() if line.strip()}


def emit(out: Path, row: dict) -> None:
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def cmd_plateau(args, split) -> None:
    from apt_core.models.victims import default_victim_config, plateau_epochs

    for victim in args.victims:
        t0 = time.perf_counter()
        p = plateau_epochs(split.train, default_victim_config(victim), k=50, check_every=args.check_every,
                           patience=args.patience, max_epochs=args.max_epochs, random_state=0)
        emit(args.out, {"key": f"plateau|{victim}", "kind": "plateau", "victim": victim, "epochs": p.epochs,
                        "history": p.history, "seconds": time.perf_counter() - t0})


def epochs_for(args, victim: str) -> int:
    """``--epochs``: ``plateau`` (the default: the count the victim's early stop chose, read from
    the ``plateau`` row in ``--out`` or ``--plateau-from``), ``N``, or ``victim=N,victim=N``."""
    if args.epochs == "plateau":
        source = args.plateau_from or args.out
        rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()] if source.exists() else []
        found = [r["epochs"] for r in rows if r.get("kind") == "plateau" and r["victim"] == victim]
        if not found:
            raise SystemExit(f"no plateau row for {victim} in {source}: run the 'plateau' command first, or pass --epochs N")
        return int(found[-1])
    return int(dict(e.split("=") for e in args.epochs.split(","))[victim]) if "=" in args.epochs else int(args.epochs)


def cmd_attacks(args, split, with_defenses: bool) -> None:
    from apt_core.data.split import select_targets
    from apt_core.defenses import DefenseContext, make_defense
    from apt_core.models.mf import MFConfig
    from apt_core.models.victims import default_victim_config, victim_trainer

    done = done_keys(args.out)
    targets = select_targets(split, args.tier, 5, seed=args.split_seed)
    for victim in args.victims:
        epochs = epochs_for(args, victim)
        cfg = default_victim_config(victim, epochs)
        for seed in range(args.first_seed, args.seeds):
            base = {"victim": victim, "epochs": epochs, "tier": args.tier, "targets": targets.tolist(), "seed": seed,
                    "split_seed": args.split_seed}

            def fit(train):
                trainer = victim_trainer(train.n_users, train.n_items, cfg, "cpu", seed)
                trainer.train_epochs(*trainer.tensors(train), epochs)
                return trainer.model()

            clean_ev = None
            key = f"origin|{victim}|{epochs}|{args.tier}|{seed}"
            ranks_file = args.out.with_name(args.out.stem + "." + key.replace("|", "-") + ".npy")
            if ranks_file.exists():  # the clean target ranks, kept for the rank shifts of later runs
                from apt_core.evaluation.metrics import Evaluation

                clean_ev = Evaluation(50, np.load(ranks_file), np.zeros(0), np.zeros(0))
            elif seed < args.clean_seeds:  # the clean fit (origin HR, and the rank shifts' reference)
                t0, c0, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
                clean_row, clean_ev = measure(fit(split.train), split, targets, split.train.n_users)
                np.save(ranks_file, clean_ev.target_ranks)
                if key not in done:
                    emit(args.out, {"key": key, "phase": "origin", **base, **clean_row, "seconds": time.perf_counter() - t0,
                                    "cpu_seconds": cpu_seconds() - c0, "load1_at_start": load})
            for attack in args.attacks:
                for size in args.sizes:
                    phases = ["attack"] + (list(args.defenses) if with_defenses else [])
                    if all(f"{phase}|{victim}|{epochs}|{args.tier}|{attack}|{size}|{seed}" in done for phase in phases):
                        continue
                    fake, budget, attack_cpu = attack_profiles(args.out, attack, split, targets, size, seed, args.split_seed)
                    poisoned = fake.inject(split.train)
                    for phase in phases:
                        key = f"{phase}|{victim}|{epochs}|{args.tier}|{attack}|{size}|{seed}"
                        if key in done:
                            continue
                        t0, c0, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
                        if phase == "attack":
                            model = fit(poisoned)
                        else:
                            defense_params = {"preset": "lab-v1"} if phase == "apt" else {}
                            ctx = DefenseContext(MFConfig(epochs=epochs), "cpu", seed, "ml-100k", split.train, victim=cfg)
                            model = make_defense(phase, **defense_params).fit(poisoned, ctx).model
                        row, _ = measure(model, split, targets, poisoned.n_users, clean_ev)
                        emit(args.out, {"key": key, "phase": phase, **base, "attack": attack, "size": size,
                                        "n_fake": budget.n_fake_users, "n_filler": budget.n_filler, **row,
                                        "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                                        "attack_cpu_seconds": attack_cpu, "load1_at_start": load})
                        attack_cpu = 0.0  # paid once, by the first phase measured


def _value(text: str):
    """``name:key=value`` attack settings: numbers as numbers, anything else as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def cmd_table(args) -> None:
    import pandas as pd

    rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame([r for r in rows if r.get("phase")])
    cols = ["hr10", "hr50", "median_rank", "median_rank_shift", "hr50_all_unmasked", "test_hr50"]
    origin = frame[frame.phase == "origin"].groupby(["victim", "epochs", "tier"])[[c for c in cols if c != "median_rank_shift"]].mean()
    print("origin (clean) means over seeds\n", origin.round(4).to_string())
    rest = frame[frame.phase != "origin"]
    summary = rest.groupby(["victim", "epochs", "tier", "attack", "size", "phase"]).agg(
        seeds=("seed", "nunique"), **{c: (c, "mean") for c in cols}, hr50_sd=("hr50", "std"))
    print(summary.round(4).to_string())
    print("\n| victim | tier | attack | size | phase | seeds | HR@10 | HR@50 (per seed) | median rank | median rank shift (seed 0) "
          "| HR@50 all-unmasked | test HR@50 |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (victim, tier, attack, size, phase), g in rest.groupby(["victim", "tier", "attack", "size", "phase"]):
        g = g.sort_values("seed")
        per_seed = ", ".join(f"{v:.4f}" for v in g.hr50)
        shift = g.loc[g.seed == 0, "median_rank_shift"].dropna()
        unmasked = g.hr50_all_unmasked.dropna()
        print(f"| {victim} | {tier} | `{attack.split(':')[0]}` | {size:.0%} | {phase} | {len(g)} | {g.hr10.mean():.4f} | "
              f"{g.hr50.mean():.4f} ({per_seed}) | {g.median_rank.mean():.0f} | {shift.iloc[0] if len(shift) else float('nan'):.0f} | "
              f"{unmasked.mean() if len(unmasked) else float('nan'):.4f} | {g.test_hr50.mean():.4f} |")
    attacked = rest[rest.phase == "attack"].set_index(["victim", "epochs", "tier", "attack", "size", "seed"])["hr50"]
    clean = frame[frame.phase == "origin"].set_index(["victim", "epochs", "tier", "seed"])["hr50"]
    ri = []
    for _, r in rest[rest.phase != "attack"].iterrows():
        a = attacked.get((r.victim, r.epochs, r.tier, r.attack, r["size"], r.seed))
        o = clean.get((r.victim, r.epochs, r.tier, r.seed))
        if a is not None and o is not None:
            ri.append({"victim": r.victim, "attack": r.attack, "size": r["size"], "defense": r.phase, "seed": r.seed,
                       "hr50_origin": o, "hr50_attack": a, "hr50_defense": r.hr50, "test_hr50": r.test_hr50})
    if ri:
        d = pd.DataFrame(ri).groupby(["victim", "attack", "size", "defense"]).mean(numeric_only=True)
        d["RI (of the means)"] = 1 - (d.hr50_defense - d.hr50_origin) / (d.hr50_attack - d.hr50_origin)
        print(d.drop(columns="seed").round(4).to_string())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("plateau", "attacks", "defenses", "table"):
        s = sub.add_parser(name)
        s.add_argument("--victims", type=lambda v: v.split(","), default=["lightgcn", "neumf"])
        s.add_argument("--epochs", default="plateau", help="plateau (the early stop's count, from the plateau rows), N, or victim=N,victim=N")
        s.add_argument("--plateau-from", type=Path, default=None, help="the rows file holding the plateau rows (default: --out)")
        s.add_argument("--split-seed", type=int, default=0, help="the leave-one-out split's seed, also the targets' (tune on one not reported)")
        s.add_argument("--attacks", type=lambda v: v.split(","), default=["popular-filler", "bpr-surrogate"])
        s.add_argument("--sizes", type=lambda v: [float(x) for x in v.split(",")], default=[0.01, 0.03, 0.05, 0.1])
        s.add_argument("--seeds", type=int, default=3, help="model seeds 0..N-1 (from --first-seed)")
        s.add_argument("--first-seed", type=int, default=0)
        s.add_argument("--clean-seeds", type=int, default=3, help="fit the clean model for seeds below this only")
        s.add_argument("--tier", default="unpopular", choices=["unpopular", "tail", "random"])
        s.add_argument("--defenses", type=lambda v: v.split(","), default=["at", "apt", "apt-trusted", "tcd"])
        s.add_argument("--check-every", type=int, default=5)
        s.add_argument("--patience", type=int, default=2)
        s.add_argument("--max-epochs", type=int, default=150)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "table":
        return cmd_table(args)
    split = load(args.data_dir, args.split_seed)
    if args.cmd == "plateau":
        return cmd_plateau(args, split)
    cmd_attacks(args, split, with_defenses=args.cmd == "defenses")


if __name__ == "__main__":
    main()
