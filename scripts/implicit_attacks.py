"""Reproduce docs/victims.md's tables: implicit-feedback attacks on LightGCN / NeuMF, and defenses on them.

    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl plateau --victims lightgcn,neumf
    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl attacks --victims lightgcn,neumf \
        --attacks popular-filler,bpr-surrogate:surrogate=lightgcn:epochs=25 --sizes 0.05 --seeds 3 --tier unpopular
    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl defenses --victims lightgcn \
        --attacks bpr-surrogate:surrogate=lightgcn:epochs=25 --sizes 0.05 --seeds 3 --defenses at,apt,apt-trusted,tcd
    python scripts/implicit_attacks.py --data-dir DIR --out tune.jsonl attacks --split-seed 7 --epochs 25 ...  # tuning
    python scripts/implicit_attacks.py --data-dir DIR --out rows.jsonl tcd-labels --victims lightgcn \
        --attacks bpr-surrogate:surrogate=lightgcn:epochs=25 --sizes 0.05 --seeds 1   # TCD's labels, why
    python scripts/implicit_attacks.py --out rows.jsonl table
    python scripts/implicit_attacks.py --out rows.jsonl table --plateau --write docs/victims.md --write README.md

An attack may carry settings: ``bpr-surrogate:fillers=clone:filler_share=0.5``.  Fits whose phase,
victim, epochs, tier, attack, size and seed are already in ``--out`` are skipped when that row was
measured by the same code: each row records ``code``, a fingerprint of what it ran (the victim's
trainer, the attack, the defense with this script's settings, the evaluation: their statically
read import closures), so an edit to any of them measures the row again, and the tables read the
last row of each key.  Rows written before rows carried ``code`` count as measured by the current
code.  Kept attack profiles and clean ranks are named by their code too (the clean fit of a seed
is redone when a later row of that seed needs its ranks; ``--clean-seeds`` limits it).

ML-100K, leave-one-out split seed 0, 5 targets of the tier drawn with seed 0 (``--split-seed`` sets
both: attack settings were chosen on split seed 7, never reported); the seeds are model
seeds (victim initialisation and negatives, the attack's own draws), the split and targets fixed.
Every fit uses the victim's recipe (docs/victims.md) with the epoch count chosen by its early stop
(``plateau``).  Every row goes to ``--out`` as one JSON line as soon as it is measured, and a run
skips the rows already there (a long run can be resumed).  Scoring: ``real-masked`` (real users
only, rated items masked: the project's) and ``all-unmasked`` (fake users counted, no masking:
the literature's code) side by side.  Each row records its wall seconds, its CPU seconds (this
process, user + system) and the 1-minute load average when it started.  ``table --plateau``
prints the plateau tables (clean fits, attacks with per-seed values, defenses with RI over the
same seeds) and ``--write FILE`` puts them between their ``<!-- issue25-plateau...:begin -->``
markers.
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
    # named by the attack's code too: profiles kept from an earlier version of the attack are not reused
    tag = "".join(c if c.isalnum() or c in ".-" else "-" for c in f"{attack}-{size}-{seed}-split{split_seed}-t{'.'.join(map(str, targets))}"
                  f"-c{code_version(attack=attack)[:10]}")
    path = out.with_name(f"{out.stem}.profiles-{tag}.npz")
    if path.exists():
        z = np.load(path)
        return FakeProfiles(z["users"], z["items"], z["ratings"], int(z["n_fake_users"]), int(z["n_items"])), budget, 0.0
    name, params = attack_spec(attack)
    c0 = cpu_seconds()
    fake = make_attack(name, **params).run(split.train, targets, budget.n_fake_users, budget.n_filler, seed).profiles
    np.savez(path, users=fake.users, items=fake.items, ratings=fake.ratings, n_fake_users=fake.n_fake_users, n_items=fake.n_items)
    return fake, budget, cpu_seconds() - c0


def done_keys(out: Path) -> dict[str, str | None]:
    """Key -> the ``code`` of the last row written under it (None: a row from before ``code``)."""
    if not out.exists():
        return {}
    rows = (json.loads(line) for line in out.read_text().splitlines() if line.strip())
    return {r["key"]: r.get("code") for r in rows if "key" in r}


def is_done(done: dict[str, str | None], key: str, code: str) -> bool:
    """Measured already, by this code (a row without a fingerprint counts as this code's)."""
    return key in done and done[key] in (None, code)


def latest_rows(rows: list[dict]) -> list[dict]:
    """One row per key, the last written (a row measured again after a code edit supersedes the
    earlier one); rows without a key are kept as they are."""
    last = {r["key"]: i for i, r in enumerate(rows) if "key" in r}
    return [r for i, r in enumerate(rows) if "key" not in r or last[r["key"]] == i]


def attack_spec(attack: str) -> tuple[str, dict]:
    """``name:key=value:...`` -> (name, settings)."""
    name, *settings = attack.split(":")
    return name, {k: _value(v) for k, v in (x.split("=") for x in settings)}


def code_version(victim: str | None = None, attack: str | None = None, defense: str | None = None) -> str:
    """A short fingerprint of the code a row runs (:func:`apt_core.storage.cache.code_fingerprint`
    over the victim's trainer, the attack, the defense with :data:`DEFENSE_SETTINGS`, and the
    evaluation, each with the registry entries it names)."""
    from apt_core.attacks import make_attack
    from apt_core.defenses import make_defense
    from apt_core.evaluation.metrics import evaluate
    from apt_core.models.victims import victim_class
    from apt_core.storage.cache import code_fingerprint, entries_named_by

    objects: list = [evaluate] if victim else []
    if victim:
        objects.append(victim_class(victim))
    methods = []
    if attack:
        name, params = attack_spec(attack)
        methods.append(make_attack(name, **params))
    if defense:
        methods.append(make_defense(defense, **DEFENSE_SETTINGS.get(defense, {})))
    for method in methods:
        objects += [type(method), *entries_named_by(method)]
    return code_fingerprint(*objects)[:16]


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
    from apt_core.models.victims import default_victim_config, fit_victim

    done = done_keys(args.out)
    targets = select_targets(split, args.tier, 5, seed=args.split_seed)
    for victim in args.victims:
        epochs = epochs_for(args, victim)
        cfg = default_victim_config(victim, epochs)
        origin_code = code_version(victim)
        codes = {attack: {phase: code_version(victim, attack, None if phase == "attack" else phase)
                          for phase in ["attack"] + (list(args.defenses) if with_defenses else [])} for attack in args.attacks}
        for seed in range(args.first_seed, args.seeds):
            base = {"victim": victim, "epochs": epochs, "tier": args.tier, "targets": targets.tolist(), "seed": seed,
                    "split_seed": args.split_seed}
            clean_ev = None
            key = f"origin|{victim}|{epochs}|{args.tier}|{seed}"
            ranks_file = args.out.with_name(f"{args.out.stem}.{key.replace('|', '-')}-c{origin_code[:10]}.npy")
            if ranks_file.exists():  # the clean target ranks, kept for the rank shifts of later runs
                from apt_core.evaluation.metrics import Evaluation

                clean_ev = Evaluation(50, np.load(ranks_file), np.zeros(0), np.zeros(0))
            elif seed < args.clean_seeds:  # the clean fit (origin HR, and the rank shifts' reference)
                t0, c0, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
                clean_row, clean_ev = measure(fit_victim(split.train, cfg, "cpu", seed), split, targets, split.train.n_users)
                np.save(ranks_file, clean_ev.target_ranks)
                if not is_done(done, key, origin_code):
                    emit(args.out, {"key": key, "phase": "origin", **base, **clean_row, "seconds": time.perf_counter() - t0,
                                    "cpu_seconds": cpu_seconds() - c0, "load1_at_start": load, "code": origin_code})
            for attack in args.attacks:
                for size in args.sizes:
                    if all(is_done(done, f"{phase}|{victim}|{epochs}|{args.tier}|{attack}|{size}|{seed}", code)
                           for phase, code in codes[attack].items()):
                        continue
                    fake, budget, attack_cpu = attack_profiles(args.out, attack, split, targets, size, seed, args.split_seed)
                    poisoned = fake.inject(split.train)
                    for phase, code in codes[attack].items():
                        key = f"{phase}|{victim}|{epochs}|{args.tier}|{attack}|{size}|{seed}"
                        if is_done(done, key, code):
                            continue
                        t0, c0, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
                        if phase == "attack":
                            model = fit_victim(poisoned, cfg, "cpu", seed)
                        else:
                            defense_params = DEFENSE_SETTINGS.get(phase, {})
                            ctx = DefenseContext(MFConfig(epochs=epochs), "cpu", seed, "ml-100k", split.train, victim=cfg)
                            model = make_defense(phase, **defense_params).fit(poisoned, ctx).model
                        row, _ = measure(model, split, targets, poisoned.n_users, clean_ev)
                        emit(args.out, {"key": key, "phase": phase, **base, "attack": attack, "size": size,
                                        "n_fake": budget.n_fake_users, "n_filler": budget.n_filler, **row,
                                        "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                                        "attack_cpu_seconds": attack_cpu, "load1_at_start": load, "code": code})
                        attack_cpu = 0.0  # paid once, by the first phase measured


def _value(text: str):
    """``name:key=value`` attack settings: numbers as numbers, anything else as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: victims and attacks in the order the docs list them
_VICTIM_ORDER = {"lightgcn": 0, "neumf": 1}
_LABEL = {"lightgcn": "LightGCN", "neumf": "NeuMF"}

#: what each defense row runs (beside the defaults), and how the tables name it: the statistics
#: APT used, and which pseudo-label rule TCD used, are part of the row's meaning
DEFENSE_SETTINGS: dict[str, dict] = {"apt": {"preset": "lab-v1"}, "tcd": {"top_k": 10}}
DEFENSE_LABEL = {
    "apt": "`apt` (lab-v1, autograd influence; observed statistics)",
    "apt-trusted": "`apt-trusted` (`cogroup`-trusted statistics, flagged users dropped)",
    "at": "`at` (ε = 0.03; no statistics)",
    "tcd": f"`tcd` (implicit mode: top-{DEFENSE_SETTINGS['tcd']['top_k']} agreement; no statistics)",
}


def _attack_label(attack: str) -> str:
    return "`bpr-surrogate` (BPR-MF surrogate)" if attack == "bpr-surrogate" else f"`{attack}`"


def _attack_order(attack: str) -> int:
    return 0 if attack == "popular-filler" else 1 if attack == "bpr-surrogate" else 2


def _per_seed(values) -> str:
    return ", ".join(f"{v:.4f}" for v in values)


def plateau_tables(rows: list[dict], split_seed: int = 0) -> dict[str, str]:
    """docs/victims.md's plateau tables from the rows (markdown, by marker name).

    ``issue25-plateau-clean``: the clean fits (target HR, median rank, test HR, CPU per fit);
    ``issue25-plateau``: every attack and size, per-seed HR@50 and the median rank shift against
    the clean fit of the same seed (where one was run); ``issue25-plateau-defenses``: each
    defense with the attack's HR@50 over the same seeds and RI = 1 - (HR_def - HR_clean) /
    (HR_attack - HR_clean) of the means (HR_clean from the same seeds' clean fits, 0 where none).
    """
    import pandas as pd

    frame = pd.DataFrame([r for r in latest_rows(rows) if r.get("phase") and r.get("split_seed", 0) == split_seed])
    out: dict[str, str] = {}
    clean = frame[frame.phase == "origin"]
    lines = ["| victim (epochs) | seeds | target HR@50 (per seed) | median target rank | test HR@10 | test HR@50 (per seed) | CPU s per fit |",
             "|---|---|---|---|---|---|---|"]
    for (victim, epochs), g in sorted(clean.groupby(["victim", "epochs"]), key=lambda kv: _VICTIM_ORDER.get(kv[0][0], 9)):
        g = g.sort_values("seed")
        cpu = g.cpu_seconds.dropna() if "cpu_seconds" in g else pd.Series(dtype=float)
        lines.append(f"| {_LABEL.get(victim, victim)} ({epochs}) | {len(g)} | {g.hr50.mean():.4f} ({_per_seed(g.hr50)}) | "
                     f"{g.median_rank.mean():.0f} | {g.test_hr10.mean():.4f} | {g.test_hr50.mean():.4f} ({_per_seed(g.test_hr50)}) | "
                     f"{f'{cpu.mean():.0f}' if len(cpu) else 'not recorded'} |")
    out["issue25-plateau-clean"] = "\n".join(lines)
    attacked = frame[frame.phase == "attack"]
    lines = ["| victim (epochs) | attack | size | seeds | HR@10 | HR@50 (per seed) | median rank | median rank shift (seeds with a clean fit) "
             "| HR@50 all-unmasked | test HR@50 |", "|---|---|---|---|---|---|---|---|---|---|"]
    groups = sorted(attacked.groupby(["victim", "epochs", "attack", "size"]),
                    key=lambda kv: (_VICTIM_ORDER.get(kv[0][0], 9), _attack_order(kv[0][2]), kv[0][2], kv[0][3]))
    for (victim, epochs, attack, size), g in groups:
        g = g.sort_values("seed")
        shift = g.median_rank_shift.dropna() if "median_rank_shift" in g else pd.Series(dtype=float)
        shift_text = f"{shift.mean():+.0f} ({len(shift)})" if len(shift) else "not recorded"
        best = "**" if g.hr50.mean() >= 0.02 else ""
        lines.append(f"| {_LABEL.get(victim, victim)} ({epochs}) | {_attack_label(attack)} | {size:.0%} | {len(g)} | {g.hr10.mean():.4f} | "
                     f"{best}{g.hr50.mean():.4f}{best} ({_per_seed(g.hr50)}) | {g.median_rank.mean():.0f} | {shift_text} | "
                     f"{g.hr50_all_unmasked.mean():.4f} | {g.test_hr50.mean():.4f} |")
    out["issue25-plateau"] = "\n".join(lines)
    lines = ["| victim (epochs) | attack | size | defense | seeds | HR@50 (per seed) | attack HR@50, same seeds | clean HR@50, same seeds (0 if not fitted) "
             "| RI of the means | test HR@50 (attacked, same seeds) |", "|---|---|---|---|---|---|---|---|---|---|"]
    defended = frame[~frame.phase.isin(["origin", "attack"])]
    a_hr = attacked.set_index(["victim", "epochs", "attack", "size", "seed"])
    c_hr = clean.set_index(["victim", "epochs", "seed"])
    groups = sorted(defended.groupby(["victim", "epochs", "attack", "size", "phase"]),
                    key=lambda kv: (_VICTIM_ORDER.get(kv[0][0], 9), kv[0][2], kv[0][3], kv[0][4]))
    for (victim, epochs, attack, size, phase), g in groups:
        g = g.sort_values("seed")
        keys = [(victim, epochs, attack, size, s) for s in g.seed]
        have = [k for k in keys if k in a_hr.index]
        if len(have) != len(keys):
            continue  # a defense row without its attack row cannot have an RI
        att = a_hr.loc[have]
        origin = [float(c_hr.loc[(victim, epochs, s)].hr50) if (victim, epochs, s) in c_hr.index else 0.0 for s in g.seed]
        n_clean = sum((victim, epochs, s) in c_hr.index for s in g.seed)
        o = sum(origin) / len(origin)
        lift = att.hr50.mean() - o
        ri = f"{1 - (g.hr50.mean() - o) / lift:.2f}" if lift > 0 else "undefined (no lift)"
        lines.append(f"| {_LABEL.get(victim, victim)} ({epochs}) | {_attack_label(attack)} | {size:.0%} | {DEFENSE_LABEL.get(phase, '`' + phase + '`')} | {len(g)} | "
                     f"{g.hr50.mean():.4f} ({_per_seed(g.hr50)}) | {att.hr50.mean():.4f} | {o:.4f} ({n_clean} of {len(g)} fitted) | {ri} | {g.test_hr50.mean():.4f} ({att.test_hr50.mean():.4f}) |")
    out["issue25-plateau-defenses"] = "\n".join(lines)
    out["issue25-readme-plateau"] = _size_summary(attacked, clean)
    return out


def _size_summary(attacked, clean) -> str:
    """README's compact view: HR@50 by attack size, ``mean (seeds)``, and the clean fit beside it."""
    sizes = sorted(attacked["size"].unique()) if len(attacked) else []
    lines = ["| victim (epochs) | attack | " + " | ".join(f"HR@50 at {x:.0%} (seeds)" for x in sizes)
             + " | clean HR@50 (seeds) | test HR@50 attacked (mean of its rows) / clean |", "|---|---|" + "---|" * (len(sizes) + 2)]
    groups = sorted(attacked.groupby(["victim", "epochs", "attack"]),
                    key=lambda kv: (_VICTIM_ORDER.get(kv[0][0], 9), _attack_order(kv[0][2]), kv[0][2]))
    for (victim, epochs, attack), g in groups:
        cells = []
        for size in sizes:
            h = g[g["size"] == size].hr50
            cells.append(f"{h.mean():.4f} ({len(h)})" if len(h) else "not run")
        c = clean[(clean.victim == victim) & (clean.epochs == epochs)]
        clean_text = f"{c.hr50.mean():.4f} ({len(c)})" if len(c) else "not run"
        test_clean = f"{c.test_hr50.mean():.4f}" if len(c) else "not run"
        lines.append(f"| {_LABEL.get(victim, victim)} ({epochs}) | {_attack_label(attack)} | " + " | ".join(cells)
                     + f" | {clean_text} | {g.test_hr50.mean():.4f} / {test_clean} |")
    return "\n".join(lines)


def write_between_markers(path: Path, blocks: dict[str, str]) -> list[str]:
    """Replace the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` for each block
    present in ``path``; returns the names replaced."""
    import re

    text, done = path.read_text(), []
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {re.escape(name)}:begin[^>]*-->\n)(?:.*?\n)?(<!-- {re.escape(name)}:end -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)
            done.append(name)
    path.write_text(text)
    return done


def cmd_table(args) -> None:
    import pandas as pd

    rows = latest_rows([json.loads(line) for line in args.out.read_text().splitlines() if line.strip()])
    if args.plateau or args.write:
        blocks = plateau_tables(rows, args.split_seed)
        for name, body in blocks.items():
            print(f"<!-- {name} -->\n{body}\n")
        for path in args.write:
            print(f"{path}: replaced {', '.join(write_between_markers(path, blocks)) or 'nothing (no markers)'}")
        return
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


def cmd_tcd_labels(args, split) -> None:
    """What implicit-mode TCD would add on the attacked data: two victims fitted to the plateau
    with TCD's seeds for models 1 and 2 (no co-training), their top-k agreement, and how many of
    those pseudo-interactions are a target for a real user (docs/victims.md, "why")."""
    from apt_core.data.split import select_targets
    from apt_core.defenses.tcd import TCD, _model_seed
    from apt_core.models.victims import default_victim_config, fit_victim

    targets = select_targets(split, args.tier, 5, seed=args.split_seed)
    tcd = TCD(**DEFENSE_SETTINGS["tcd"])
    for victim in args.victims:
        epochs = epochs_for(args, victim)
        cfg = default_victim_config(victim, epochs)
        for attack in args.attacks:
            for size in args.sizes:
                for seed in range(args.first_seed, args.seeds):
                    fake, _, _ = attack_profiles(args.out, attack, split, targets, size, seed, args.split_seed)
                    poisoned = fake.inject(split.train)
                    models = [fit_victim(poisoned, cfg, "cpu", _model_seed(seed, j)) for j in (1, 2)]
                    u, i, _ = tcd.pseudo_interactions(*models, poisoned, np.random.default_rng(seed))
                    real, on_target = u < split.train.n_users, np.isin(i, targets)
                    share = on_target.mean() / (len(targets) / poisoned.n_items) if len(u) else 0.0
                    print(json.dumps({"victim": victim, "epochs": epochs, "attack": attack, "size": size, "seed": seed,
                                      "top_k": tcd.top_k, "pairs": int(len(u)), "real_user_pairs": int(real.sum()),
                                      "target_pairs_real_users": int((on_target & real).sum()),
                                      "target_pairs_fake_users": int((on_target & ~real).sum()),
                                      "real_users_with_a_target_pair": int(len(np.unique(u[on_target & real]))),
                                      "targets_over_catalogue_share": round(float(share), 3)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("plateau", "attacks", "defenses", "table", "tcd-labels"):
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
        s.add_argument("--plateau", action="store_true", help="table: print the plateau tables (clean fits, attacks, defenses)")
        s.add_argument("--write", type=Path, action="append", default=[],
                       help="table: replace the plateau tables between their markers in this file (repeatable)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "table":
        return cmd_table(args)
    split = load(args.data_dir, args.split_seed)
    if args.cmd == "plateau":
        return cmd_plateau(args, split)
    if args.cmd == "tcd-labels":
        return cmd_tcd_labels(args, split)
    cmd_attacks(args, split, with_defenses=args.cmd == "defenses")


if __name__ == "__main__":
    main()
