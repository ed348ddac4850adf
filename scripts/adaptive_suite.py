"""Issue 21's must-show suite: the 10 standard settings and the adaptive attacks, one table.

Runs ``python -m apt_core run --json`` once per setting (all defenses of the row in one run, so
they share the origin, the attack and the detections) and prints, per setting and defense, the
attack's and the defense's target HR, RI, test HR, the users dropped (of them real) and
whether the targets were pushed below half their clean HR.  Then the means per defense.

    python scripts/adaptive_suite.py --data-dir /work/shared/data --dataset ml-100k \\
        --defenses apt-robust,apt-trusted --suite adaptive,standard --seeds 3

A repetition is what ``run --seed S --seeds N`` calls one: the split and the targets come from
``--seed`` (the same for every repetition), repetition ``r`` uses seed ``S + r`` for the model
initialisation, the attack's and the defenses' randomness.  Every repetition's values are kept
(``per_seed`` of the JSON; the users dropped per repetition by differencing the row's mean over
repetitions, see :func:`repetition_rows`) and printed, then mean ± sd over repetitions per
setting and per defense.  ``--by-repetition`` runs repetition 0 of every setting first, then
repetition 1, and so on (``--seeds 1``, then ``--seeds 2`` reading repetition 0 from the cache,
...), so that a suite stopped early is still a complete table of fewer repetitions; ``--out`` is
rewritten after every run.

``--suite clean`` runs ``--attack none`` over ``--clean-seeds`` split seeds and reports the
users each defense dropped.  ``--only`` keeps the settings whose label contains one of the
comma-separated words.  Results are printed (and with ``--out`` written as JSON); nothing
derived from the licensed data is written into the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from dataclasses import dataclass, field

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD_ATTACKS = ("average", "random", "aush", "pga", "tna")


@dataclass(frozen=True)
class Setting:
    label: str
    attack: str
    targets: str = "unpopular"
    size: float = 0.03
    params: tuple[str, ...] = field(default_factory=tuple)


def standard_settings() -> list[Setting]:
    return [Setting(f"{a}/{t}", a, t) for t in ("unpopular", "random") for a in STANDARD_ATTACKS]


def adaptive_settings() -> list[Setting]:
    return [
        Setting("subset k=3", "subset", params=("subset.k=3",)),
        Setting("subset k=4", "subset", params=("subset.k=4",)),
        Setting("subset k=2 (5%)", "subset", size=0.05, params=("subset.k=2",)),
        Setting("subset k=4+decoys 0.4 (5%)", "subset", size=0.05, params=("subset.k=4", "subset.decoys=0.4")),
        Setting("subset k=3+framing 0.33 (4.5%)", "subset", size=0.045, params=("subset.k=3", "subset.framing=0.33")),
        Setting("subset k=3/random", "subset", "random", params=("subset.k=3",)),
        Setting("subset k=4/random", "subset", "random", params=("subset.k=4",)),
        Setting("adaptive", "adaptive"),
    ]


def shaded_settings() -> list[Setting]:
    """An attacker who knows ``apt-robust`` (issue 21): ``subset.shade`` rates each account's
    other targets one step below the maximum, which lifts a bursting target's "ratings below
    the maximum" centre to the global cap; clique framing gives real fans two surprising pairs,
    enough for the rank-2 detector, so that its removals cost real users."""
    return [
        Setting("subset k=4 shade", "subset", params=("subset.k=4", "subset.shade=true")),
        Setting("subset k=3 shade", "subset", params=("subset.k=3", "subset.shade=true")),
        Setting("subset k=2 shade (5%)", "subset", size=0.05, params=("subset.k=2", "subset.shade=true")),
        Setting("subset k=4 shade/random", "subset", "random", params=("subset.k=4", "subset.shade=true")),
        Setting("subset k=3+framing clique 0.5 (6%)", "subset", size=0.06,
                params=("subset.k=3", "subset.framing=0.5", "subset.framing_rule=clique")),
        Setting("subset k=3+framing clique 0.9 (5%)", "subset", size=0.05,
                params=("subset.k=3", "subset.framing=0.9", "subset.framing_rule=clique")),
    ]


def run_setting(s: Setting, args: argparse.Namespace, cache_dir: str, seed: int | None = None, seeds: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "apt_core", "run", "--dataset", args.dataset, "--data-dir", args.data_dir,
           "--attack", s.attack, "--targets", s.targets, "--attack-size", str(s.size), "--defense", args.defenses,
           "--epochs", str(args.epochs), "--seed", str(args.seed if seed is None else seed),
           "--seeds", str(args.seeds if seeds is None else seeds), "--json", "--no-history", "--cache-dir", cache_dir]
    for p in s.params + tuple(args.param or ()):
        cmd += ["--param", p]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", APT_NUM_THREADS=os.environ.get("APT_NUM_THREADS", "1"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{s.label}: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def repetition_rows(s: Setting, res: dict, n_real: int, rep: int, earlier: dict[tuple[str, str], list[dict]] | None = None) -> list[dict]:
    """One record per defense for repetition ``rep`` of a ``run --json`` result (``per_seed``).

    Target HR, test HR and RI are the repetition's own (RI from that repetition's hit ratios).
    The JSON gives detection counts only as means over the run's repetitions, so with
    ``earlier`` (this setting's records of repetitions ``0 .. rep-1``, keyed by (setting,
    defense)) the repetition's own count is ``(rep + 1) · mean - sum(earlier)``; without it the
    mean over the run's repetitions is kept and ``dropped_is_mean`` says so."""
    seed = int(res["config"].get("seed", 0)) + rep
    by_phase = {(p["phase"], p["seed"]): p for p in res["per_seed"]}
    rows = {r["phase"]: r for r in res["rows"]}
    origin = by_phase[("origin", seed)]
    attack = by_phase.get(("attack", seed), origin)
    popularity = rows.get("popularity", {}).get("test_hr")
    out = []
    for name, r in rows.items():
        if name in ("origin", "attack", "popularity"):
            continue
        mine = by_phase[(name, seed)]
        det = r.get("detection") or {}
        dropped, real = det.get("n_flagged"), det.get("real_flagged")
        before = None if earlier is None else earlier.get((s.label, name), [])
        exact = before is not None and len(before) == rep and dropped is not None
        if exact and rep > 0:
            dropped = round((rep + 1) * dropped - sum(b["dropped"] for b in before), 6)
            real = round((rep + 1) * (real or 0.0) - sum(b["real_dropped"] or 0.0 for b in before), 6)
        clean = origin["target_hr"]
        out.append({"setting": s.label, "defense": name, "rep": rep, "seed": seed, "origin_hr": clean,
                    "attack_hr": attack["target_hr"], "target_hr": mine["target_hr"], "ri": mine["ri"],
                    "test_hr": mine["test_hr"], "origin_test_hr": origin["test_hr"], "popularity_test_hr": popularity,
                    "dropped": dropped, "real_dropped": real, "dropped_is_mean": not exact and dropped is not None,
                    "real_dropped_share": (real or 0.0) / n_real, "seconds": mine["seconds"],
                    "below_half": bool(clean > 0.01 and mine["target_hr"] < clean / 2), "auc": det.get("auc")})
    return out


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def pm(values: list[float], d: int = 3) -> str:
    m, sd = mean_sd(values)
    return "-" if m is None else f"{m:.{d}f}" + ("" if sd is None else f" ± {sd:.{d}f}")


def summary(records: list[dict]) -> dict[str, dict]:
    """Per defense: mean RI over the settings, per repetition, then mean ± sd of those over the
    repetitions that have every setting; the lowest setting (its RI's mean over repetitions);
    test HR the same way; the most real users dropped in any setting and repetition."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["defense"] for r in records):
        mine = [r for r in records if r["defense"] == name]
        settings = list(dict.fromkeys(r["setting"] for r in mine))
        reps = sorted({r["rep"] for r in mine})
        complete = [k for k in reps if {r["setting"] for r in mine if r["rep"] == k} == set(settings)]
        per_rep_ri, per_rep_test = [], []
        for k in complete:
            ris = [r["ri"] for r in mine if r["rep"] == k and r["ri"] is not None]
            if ris:
                per_rep_ri.append(sum(ris) / len(ris))
            per_rep_test.append(sum(r["test_hr"] for r in mine if r["rep"] == k) / len(settings))
        per_setting = {s: mean_sd([r["ri"] for r in mine if r["setting"] == s and r["ri"] is not None]) for s in settings}
        lowest = min((s for s in settings if per_setting[s][0] is not None), key=lambda s: per_setting[s][0], default=None)
        out[name] = {
            "settings": len(settings), "repetitions_complete": complete,
            "repetitions_per_setting": {s: sorted(r["rep"] for r in mine if r["setting"] == s) for s in settings},
            "mean_ri_per_rep": per_rep_ri, "mean_ri": mean_sd(per_rep_ri), "lowest_setting": lowest,
            "lowest_ri": per_setting.get(lowest, (None, None)), "test_hr_per_rep": per_rep_test,
            "test_hr": mean_sd(per_rep_test), "test_hr_range": (min(r["test_hr"] for r in mine), max(r["test_hr"] for r in mine)),
            "origin_test_hr": mean_sd([r["origin_test_hr"] for r in mine if r["setting"] == settings[0]]),
            "popularity_test_hr": mine[0]["popularity_test_hr"],
            "max_real_dropped": max((r["real_dropped"] or 0.0) for r in mine),
            "max_real_dropped_share": max(r["real_dropped_share"] for r in mine),
            "worst_test_hr_minus_origin": min(r["test_hr"] - r["origin_test_hr"] for r in mine),
            "below_half": sum(r["below_half"] for r in mine), "ri_undefined": sum(r["ri"] is None for r in mine),
        }
    return out


def write_out(path: str, table: list[dict]) -> None:
    """Every record so far and the per-defense summary (rewritten after each run)."""
    with open(path, "w") as f:
        json.dump({"records": table, "summary": summary([r for r in table if "rep" in r])}, f, indent=1)


def fmt(x, d=3) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--defenses", default="apt-robust,apt-trusted,remove-cogroup")
    ap.add_argument("--suite", default="adaptive,standard", help="comma list of adaptive, standard, shade, clean")
    ap.add_argument("--only", default="", help="keep settings whose label contains one of these words")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean-seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--param", action="append", help="extra --param for every run (e.g. apt-robust.max_removed=0.01)")
    ap.add_argument("--cache-dir", default=os.environ.get("APT_CACHE_DIR") or tempfile.mkdtemp(prefix="apt-suite-"))
    ap.add_argument("--out", default="", help="JSON of every repetition's record and the summary (outside the repository)")
    ap.add_argument("--resume", default="", help="an earlier --out JSON: its records are kept, and settings whose repetitions "
                    "it holds for every defense asked for are not run again")
    ap.add_argument("--stop-after", default="", help="UTC time HH:MM after which no further run starts (a shared machine's time limit)")
    ap.add_argument("--by-repetition", action="store_true",
                    help="repetition 0 of every setting first, then 1, ... (a stopped suite is a complete table of fewer repetitions)")
    args = ap.parse_args(argv)
    suites = args.suite.split(",")
    settings = (adaptive_settings() if "adaptive" in suites else []) + (standard_settings() if "standard" in suites else [])
    settings += shaded_settings() if "shade" in suites else []
    if args.only:
        words = args.only.split(",")
        settings = [s for s in settings if any(w in s.label for w in words)]
    if args.out and os.path.abspath(args.out).startswith(REPO_ROOT + os.sep):
        ap.error("--out must lie outside the repository: the results derive from licensed data")
    table: list[dict] = []
    earlier: dict[tuple[str, str], list[dict]] = {}
    if args.resume:
        with open(args.resume) as f:
            table = [r for r in json.load(f)["records"] if "rep" in r]
        for r in sorted(table, key=lambda r: r["rep"]):
            earlier.setdefault((r["setting"], r["defense"]), []).append(r)
    done = {(r["setting"], r["defense"], r["rep"]) for r in table}
    wanted = args.defenses.split(",")
    print("| setting | defense | rep (seed) | clean HR | attack HR | defended HR | RI | test HR (origin) | dropped (real) | below half |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    # --by-repetition: pass n runs every setting with --seeds n; repetitions 0 .. n-2 come from the cache.
    passes = [(n, [n - 1]) for n in range(1, args.seeds + 1)] if args.by_repetition else [(args.seeds, list(range(args.seeds)))]
    for n, reps in passes:
        for s in settings:
            if args.stop_after and datetime.now(timezone.utc).strftime("%H:%M") >= args.stop_after:
                print(f"stopped: it is past {args.stop_after} UTC; {s.label} and later settings of pass {n} not run", flush=True)
                break
            if all((s.label, d, rep) in done for d in wanted for rep in reps):
                continue  # --resume: this setting's repetitions are in the earlier file
            res = run_setting(s, args, args.cache_dir, seeds=n)
            n_real = int(res["dataset"]["n_users"])
            for rep in reps:
                for row in repetition_rows(s, res, n_real, rep, earlier if args.by_repetition else None):
                    if (s.label, row["defense"], rep) in done:
                        continue
                    done.add((s.label, row["defense"], rep))
                    table.append(row)
                    earlier.setdefault((s.label, row["defense"]), []).append(row)
                    print(f"| {s.label} | {row['defense']} | {rep} ({row['seed']}) | {fmt(row['origin_hr'])} | {fmt(row['attack_hr'])} | "
                          f"{fmt(row['target_hr'])} | {fmt(row['ri'], 2)} | {fmt(row['test_hr'])} ({fmt(row['origin_test_hr'])}) | "
                          f"{fmt(row['dropped'], 1)} ({fmt(row['real_dropped'], 1)}) | {'yes' if row['below_half'] else 'no'} |", flush=True)
            if args.out:
                write_out(args.out, table)
    if "clean" in suites:
        for seed in range(args.clean_seeds):
            res = run_setting(Setting(f"clean seed {seed}", "none", "random"), args, args.cache_dir, seed=seed, seeds=1)
            for name, r in {r["phase"]: r for r in res["rows"]}.items():
                det = r.get("detection")
                if det is not None:
                    print(f"clean split seed {seed}: {name} dropped {det.get('n_flagged')} users", flush=True)
                    table.append({"setting": f"clean {seed}", "defense": name, "dropped": det.get("n_flagged")})
    attacked = [r for r in table if "rep" in r]
    if attacked:
        print("\n| setting | defense | repetitions | RI, mean ± sd | target HR | test HR | dropped (real), per repetition |")
        print("|---|---|---|---|---|---|---|")
        for (label, name), rows in earlier.items():
            ris = [r["ri"] for r in rows if r["ri"] is not None]
            drops = ", ".join(f"{fmt(r['dropped'], 1)} ({fmt(r['real_dropped'], 1)})" for r in rows)
            print(f"| {label} | {name} | {len(rows)} | {pm(ris, 2)} | {pm([r['target_hr'] for r in rows])} | "
                  f"{pm([r['test_hr'] for r in rows])} | {drops} |")
    for name, sm in summary(attacked).items():
        low = sm["lowest_ri"]
        print(f"{name}: mean RI {fmt(sm['mean_ri'][0])} ± {fmt(sm['mean_ri'][1])} over repetitions {sm['repetitions_complete']} "
              f"of {sm['settings']} settings (per repetition {', '.join(fmt(v) for v in sm['mean_ri_per_rep'])}); lowest "
              f"{sm['lowest_setting']} {fmt(low[0], 2)} ± {fmt(low[1], 2)}; test HR {fmt(sm['test_hr'][0])} ± {fmt(sm['test_hr'][1])} "
              f"(origin {fmt(sm['origin_test_hr'][0])}, popularity {fmt(sm['popularity_test_hr'])}); most real users dropped "
              f"{fmt(sm['max_real_dropped'], 1)} ({sm['max_real_dropped_share']:.3f}); worst test HR - origin "
              f"{sm['worst_test_hr_minus_origin']:+.3f}; below half: {sm['below_half']}; RI undefined: {sm['ri_undefined']}")
    if args.out:
        write_out(args.out, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
