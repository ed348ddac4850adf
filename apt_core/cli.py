"""Command line: ``python -m apt_core {run,poison,params,sweep,reproduce,history,cache,bench,data}`` (docs/cli.md).

Errors that a user can fix (bad file, unknown name, out-of-range size) are printed as one
``error: ...`` line on stderr with exit status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from apt_core.errors import AptError, AptWarning, CancelledError, ConfigError

#: largest accepted seed: numpy's and torch's generators take seeds below 2**32
MAX_SEED = 2**32 - 1


def _seed_arg(value: str) -> int:
    """An integer in 0..2**32-1; the message names the flag (argparse adds ``argument --seed:``)."""
    try:
        seed = int(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number in 0..{MAX_SEED}, got {value!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in 0..{MAX_SEED}, got {value}")
    return seed


TARGET_WORDS = ("random", "unpopular", "paper", "paper-unpopular", "paper-random")
#: the attack ``detect`` runs when neither --attack nor --poison-file is given
DETECT_DEFAULT_ATTACK = "average"


def _targets_arg(value: str):
    value = value.strip()
    if value.lower() in TARGET_WORDS:
        return value.lower()
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"--targets needs one of {', '.join(TARGET_WORDS)} or item ids")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--targets: {value!r} is neither one of {', '.join(TARGET_WORDS)} nor a comma list of item ids") from None


def _defense_list(value: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    if not names:
        raise argparse.ArgumentTypeError("--defense needs at least one name")
    return names


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    from apt_core.data.loaders import DATASETS

    p.add_argument("--dataset", default="sample", help=f"{', '.join(DATASETS)}, or a path to a rating file / NCF split prefix")
    p.add_argument("--data-dir", default=None, help="local folder with data sets (else $APT_DATA_DIR, the cache, a download)")
    from apt_core.attacks import attack_names
    from apt_core.defenses import defense_names

    p.add_argument("--attack", default="none", type=str.lower, help="one of: " + ", ".join(attack_names()))
    p.add_argument("--attack-size", type=float, default=0.03, help="fake users as a share of real users, in (0, 1]")
    p.add_argument("--filler", type=int, default=None, help="filler items per fake user (default: the data set's ratings per user)%(default).0s")
    p.add_argument("--poison-file", default=None,
                   help="inject these fake profiles instead of running an attack: CSV user,item_id,rating (the data set's own "
                        "item ids) or the authors' .npy; the run's attack is then 'file' (--attack must stay none)")
    p.add_argument("--targets", type=_targets_arg, default="random",
                   help="random, unpopular, paper (= paper-unpopular), paper-random (the APT authors' fixed targets; "
                        "only on their split files), or comma-separated item ids (the data set's own ids)")
    p.add_argument("--n-targets", type=int, default=5, help="number of target items")
    p.add_argument("--defense", type=_defense_list, default=("none",), help="comma list of defenses, from: " + ", ".join(defense_names()) + " (default: none)%(default).0s")
    p.add_argument("--erm-fraction", type=float, default=None,
                   help="APT/APT-rand ERM users as a share of the real users: n* = round(X x real users); default: the preset's count%(default).0s")
    p.add_argument("--erm-users", type=int, default=None, help="APT/APT-rand ERM users as a count (instead of --erm-fraction)")
    p.add_argument("--apt-preset", default="paper",
                   help="APT/APT-rand defaults: paper (the authors' code: LiSSA, 50 ERM users on ML-100K/FilmTrust, "
                        "T_pre 4 on FilmTrust) or lab-v1 (gradient as influence, 5%% of the users, T_pre 5)")
    p.add_argument("--apt-solver", default=None,
                   help="APT's influence solver: lissa-lanczos, lissa (the authors' stochastic recursion, slow), "
                        "lissa-full, identity or cg (default: the preset's; paper: lissa-lanczos)")
    p.add_argument("--erm-stats", choices=["observed", "clean", "robust", "trusted", "global"], default="observed",
                   help="item statistics of APT's ERM users: observed (honest), clean (the authors' oracle), robust (median/MAD), "
                        "trusted (without the users the cogroup detector flags), global (the observed global mean/std for every item)")
    p.add_argument("--k", type=int, default=50, help="top-K cut-off of the hit ratios")
    p.add_argument("--epochs", type=int, default=25, help="training epochs of every model")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--seed", type=_seed_arg, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--param", action="append", default=[], metavar="NAME.PARAM=VALUE",
                   help="set a hyper-parameter of the attack or a defense, e.g. --param apt.r_plus=0.0 --param pga.iterations=5 "
                        "(repeatable; `python -m apt_core params NAME` lists NAME's parameters, types, defaults, ranges and "
                        "the paper's values; none = the default for optional ones).  --erm-fraction, --erm-users, --erm-stats, "
                        "--apt-preset and --apt-solver are shorthands for the parameters of that name; --param wins")
    # The victims registry is read when the parser is built: a registered plug-in victim is a choice.
    p.add_argument("--victim", default="mf", type=str.lower, choices=_victim_choices(),
                   help="the recommender attacked and defended: mf (the paper's) or a registered victim (" + ", ".join(_victim_choices()[1:]) + ")")
    p.add_argument("--victim-feedback", default="implicit", choices=["implicit", "explicit"],
                   help="lightgcn/neumf: implicit (ratings are interactions; BPR / log loss, their papers' default) or explicit (MSE on ratings)")


def scenario_from_args(args: argparse.Namespace):
    from apt_core.experiments.pipeline import Scenario
    from apt_core.experiments.scenario import parse_param_assignments

    attack = args.attack
    if attack is None:  # detect's default: an attack, unless a poison file brings the fake users
        attack = "none" if args.poison_file is not None else DETECT_DEFAULT_ATTACK
    return Scenario(
        dataset=args.dataset, data_dir=args.data_dir, attack=attack, attack_size=args.attack_size,
        filler=args.filler, poison_file=args.poison_file, targets=args.targets, n_targets=args.n_targets,
        defenses=tuple(args.defense), erm_fraction=args.erm_fraction, erm_stats=args.erm_stats, k=args.k,
        epochs=args.epochs, seeds=args.seeds, seed=args.seed, device=args.device,
        erm_users=args.erm_users, apt_preset=args.apt_preset, apt_solver=args.apt_solver,
        params=parse_param_assignments(getattr(args, "param", None) or []),
        victim=getattr(args, "victim", "mf"), victim_feedback=getattr(args, "victim_feedback", "implicit"),
    )


class StderrProgress:
    """A one-line progress bar on stderr (stdout stays clean for ``--json``)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.last = ""

    def __call__(self, fraction: float, stage: str) -> bool:
        if self.enabled:
            bar = "#" * int(30 * fraction)
            line = f"\r[{bar:<30}] {fraction * 100:5.1f}% {stage[:60]:<60}"
            if line != self.last:
                sys.stderr.write(line)
                sys.stderr.flush()
                self.last = line
            if fraction >= 1.0:
                sys.stderr.write("\n")
        return True


def format_rows(rows: list[dict]) -> str:
    from apt_core.evaluation.metrics import RI_RULE, ri_note

    header = (f"{'phase':<10} {'target HR':>10} {'± sd':>7} {'test HR':>8} {'± sd':>7} {'RI':>7} {'below clean':>11} "
              f"{'rank shift':>10} {'seconds':>8}  note")
    lines = [header, "-" * len(header)]

    def f(v, w, p=4):
        return f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"

    notes = []
    for r in rows:
        note = ri_note(r["ri"], r.get("ri_undefined_reason"))
        notes.append(note)
        if note == "over-correction" and isinstance(r.get("below_clean_share"), (int, float)):
            note += f": {r['below_clean_share']:.0%} below the clean HR"
        lines.append(
            f"{r['phase']:<10} {f(r['target_hr'], 10)} {f(r['target_hr_sd'], 7)} {f(r['test_hr'], 8)} {f(r['test_hr_sd'], 7)} "
            f"{f(r['ri'], 7, 3)} {f(r.get('below_clean'), 11)} {f(r['rank_shift_median'], 10, 1)} {f(r['seconds'], 8, 2)}"
            + (f"  {note}" if note else "")
        )
    if any(not isinstance(r["test_hr"], (int, float)) for r in rows):
        lines.append("test HR -: not measurable (no user of the split has a held-out test rating)")
    if any(r["ri"] is None and r.get("ri_undefined_reason") != "not-a-defense" for r in rows if r["phase"] not in ("origin", "attack")):
        lines.append("RI -: undefined, the note says why.")
        lines.append(RI_RULE)
    if any(isinstance(r.get("below_clean"), (int, float)) for r in rows):
        lines.append("below clean: how far a defended row pushed target HR below the clean (origin) level, max(0, origin - row)")
    if "over-correction" in notes:
        lines.append("over-correction: RI above 1 means the defense pushed the targets below their clean level (not better than perfect)")
    return "\n".join(lines)


def add_cache_arguments(p: argparse.ArgumentParser, history: bool = True) -> None:
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the artifact cache (train everything)")
    p.add_argument("--cache-dir", default=None, help="artifact cache folder (default: $APT_CACHE_DIR/artifacts or ~/.cache/apt_lab/artifacts)")
    if history:
        p.add_argument("--no-history", action="store_true", help="do not record this run in the run history")
        p.add_argument("--history-db", default=None, help="run history file (default: $APT_HISTORY_DB or <cache root>/history.sqlite)")


def cache_from_args(args: argparse.Namespace):
    from apt_core.storage.cache import ArtifactCache

    if getattr(args, "no_cache", False):
        return None
    return ArtifactCache(args.cache_dir)


def store_from_args(args: argparse.Namespace):
    from apt_core.storage.history import RunStore

    if getattr(args, "no_history", False):
        return None
    return RunStore(getattr(args, "history_db", None))


def settings_line(scenario) -> str:
    """Every setting that changes the numbers, in one line (the text output echoes them)."""
    attack = "no attack" if scenario.attack == "none" else (
        f"attack {scenario.attack} ({scenario.attack_size:g} of the users, filler {scenario.filler if scenario.filler is not None else 'auto'})")
    if scenario.poison_file:
        attack = f"poison file {scenario.poison_file}"
    targets = scenario.targets if isinstance(scenario.targets, str) else "ids " + ",".join(map(str, scenario.targets))
    parts = [attack, f"targets {targets} (n={scenario.n_targets})", f"defenses {','.join(scenario.defenses)}"]
    if any(d in ("apt", "apt-rand") for d in scenario.defenses):
        parts.append(f"{scenario.erm_description()}, erm-stats {scenario.erm_stats}, apt-preset {scenario.apt_preset}, "
                     f"apt-solver {scenario.apt_solver or 'preset default'}")
    parts.append(f"K {scenario.k}, epochs {scenario.epochs}, seeds {scenario.seeds} from seed {scenario.seed}")
    return "settings: " + "; ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    from apt_core.experiments.pipeline import run_scenario

    scenario = scenario_from_args(args)
    scenario.validate()
    cache = cache_from_args(args)
    result = run_scenario(scenario, progress=StderrProgress(not args.json), cache=cache)
    # The result goes out first: nothing that happens to the history may lose it.
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        out = result.to_json()
        print(f"{out['dataset']['name']}: {out['dataset']['n_users']} users, {out['dataset']['n_items']} items, {out['dataset']['n_ratings']} ratings; device {out['device']}")
        print("targets (the data set's item ids): " + ", ".join(
            f"{i} {result.data.title(t)}" if result.data.item_titles else str(i)
            for i, t in zip(result.data.original_item_ids(result.targets), result.targets)))
        print(settings_line(scenario))
        print(format_rows(out["rows"]))
        sig = out.get("significance")
        if sig and sig.get("baseline"):
            p = sig["p_value"]
            note = f" ({sig['note']})" if sig.get("note") else ""
            print(f"APT vs {sig['baseline']}: {sig.get('test') or 'no test'} over {sig['n']} seeds, p = {'-' if p is None else f'{p:.3g}'} {sig['stars']}{note}")
        if cache is not None:
            print(f"cache: {result.cache_hits} hits, {result.cache_misses} misses; wall time {result.wall_seconds:.1f} s")
    sys.stdout.flush()
    record_run(store_from_args(args), result)
    return 0


def record_run(store, result, **kwargs) -> str | None:
    """Record ``result`` in ``store``; a failure is one warning line on stderr, never an error."""
    from apt_core.storage.history import HistoryError

    if store is None:
        return None
    try:
        return store.record(result, **kwargs)
    except HistoryError as exc:
        print(f"warning: the result above was not recorded in the history: {exc}", file=sys.stderr)
        return None


def cmd_detect(args: argparse.Namespace) -> int:
    from apt_core.experiments.detection_run import format_detection, run_detection
    from apt_core.experiments.plan import fake_source_label

    from apt_core.detection import DETECTORS
    from apt_core.params import parse_assignment
    from apt_core.experiments.scenario import declared_param

    # --param DETECTOR.PARAM=VALUE goes to that detector; the others to the scenario (the attack)
    detector_params: dict = {}
    scenario_params = []
    for text in args.param:
        method, param, value = parse_assignment(text)
        if method in DETECTORS:
            detector_params.setdefault(method, {})[param] = declared_param(method, param).parse(value, method)
        else:
            scenario_params.append(text)
    args.param = scenario_params
    scenario = scenario_from_args(args)
    detectors = list(args.detectors) if args.detectors else None
    report = run_detection(scenario, detectors, cache=cache_from_args(args), progress=StderrProgress(not args.json),
                           detector_params=detector_params)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        d = report.dataset
        print(f"{d['name']}: {d['n_users']} users, {d['n_items']} items; {fake_source_label(scenario)} on {scenario.targets} targets "
              f"(item ids {', '.join(map(str, report.target_ids))}), {scenario.seeds} seed(s); "
              "each detector flags users by its own data-driven cut")
        print(format_detection(report))
    return 0


def cmd_poison(args: argparse.Namespace) -> int:
    """Generate an attack's fake profiles for a scenario and export them (the pipeline's first stages)."""
    from apt_core.attacks.io import profile_format, save_profiles
    from apt_core.experiments.pipeline import generate_profiles, prepare
    from apt_core.runtime.devices import resolve_device
    from apt_core.evaluation.stealth import stealth_statistics

    if args.attack == "none":
        raise ConfigError("poison needs an attack: --attack random|average|bandwagon|aush|pga|tna")
    out = Path(args.out)
    profile_format(out)  # a bad ending fails before the attack runs
    scenario = scenario_from_args(args)
    scenario.validate()
    prepared = prepare(scenario)
    fake, _, _ = generate_profiles(scenario, prepared, scenario.seed, resolve_device(scenario.device))
    split, targets = prepared.split, prepared.targets
    save_profiles(fake, out, split.train.scale, prepared.data.item_ids)
    summary = {
        "out": str(out),
        "attack": scenario.attack,
        "dataset": prepared.data.name,
        "targets": prepared.data.original_item_ids(targets),  # the data set's own ids, as in the CSV
        "target_indices": [int(t) for t in targets],
        "n_fake_users": fake.n_fake_users,
        "n_filler": prepared.budget.n_filler,
        "n_ratings": len(fake),
        "stealth": stealth_statistics(split.train, fake, targets).to_dict(),
    }
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()), file=sys.stdout)
    return 0


def add_poison_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``poison`` on the CLI's subparsers (``python -m apt_core poison ...``)."""
    p = subparsers.add_parser("poison", help="generate an attack's fake profiles and export them (CSV or the authors' .npy)")
    add_scenario_arguments(p)
    p.add_argument("--out", required=True, help="output file: .csv (user,item_id,rating; the data set's own item ids) "
                                                "or .npy (the authors' dense normalised matrix; columns are dense item indices)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_poison)
    return p


def cmd_reproduce(args: argparse.Namespace) -> int:
    from apt_core.reporting.reproduce import ReproduceConfig, TextProgress, reproduce

    options = dict(
        dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds, seed=args.seed, out=args.out,
        attacks=tuple(args.attacks) if args.attacks else None, target_sets=tuple(args.targets) if args.targets else None,
        defenses=tuple(args.defense) if args.defense else None, epochs=args.epochs, erm_stats=args.erm_stats,
        erm_fraction=args.erm_fraction, attack_size=args.attack_size, k=args.k, device=args.device,
        fig_seeds=args.fig_seeds, jobs=args.jobs, engine=args.engine, ray_address=args.ray_address, victim=args.victim,
    )
    engine_from_args(args)  # a bad --engine/--ray-address/--jobs fails before any data is read
    if args.quick:
        cfg = ReproduceConfig.quick_config(**options)
    else:
        cfg = ReproduceConfig(**{k: v for k, v in options.items() if v is not None})
    if args.no_figures:
        cfg.figures = False
    if args.no_detection:
        cfg.detection = False
    result = reproduce(cfg, progress=TextProgress(enabled=not args.no_progress), cache=cache_from_args(args), store=store_from_args(args))
    for line in result.skipped:
        print(f"warning: {line}", file=sys.stderr)
    print(f"reproduce: {cfg.dataset}, {cfg.seeds} seed(s): {result.wall_seconds:.1f} s wall, cache {result.cache_hits} hits / "
          f"{result.cache_misses} misses; {len(result.files)} files in {result.out}")
    print((result.out / "table2_target_hr.md").read_text())
    return 0


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: every unit in this process, one after the other; ray: each unit a Ray task (pip install 'apt-lab[ray]')")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: a Ray cluster's address, or 'auto' to join the running one (default: start a local instance)")


def engine_from_args(args: argparse.Namespace):
    from apt_core.experiments.engine import EngineConfig

    cfg = EngineConfig(engine=args.engine, address=args.ray_address, jobs=getattr(args, "jobs", None))
    cfg.validate()
    if cfg.engine == "local" and cfg.jobs not in (None, 1):
        raise ConfigError(f"--jobs {cfg.jobs} runs {cfg.jobs} Ray workers: add --engine ray (the local engine computes one unit after the other)")
    return cfg


def cmd_history(args: argparse.Namespace) -> int:
    from apt_core.storage.history import RunStore

    store = RunStore(args.history_db)
    if args.delete:
        for rid in args.delete:
            store.delete(rid)
            print(f"deleted {rid}")
        return 0
    if args.show:
        print(json.dumps(store.get(args.show), indent=1))
        return 0
    if args.export:
        path = store.export(args.export, format=args.format)
        print(f"wrote {len(store)} run(s) to {path}")
        return 0
    runs = store.runs(dataset=args.dataset, limit=args.limit)
    if args.json:
        print(runs.to_json(orient="records"))
        return 0
    if runs.empty:
        print(f"no runs recorded in {store.path}")
        return 0
    cols = ["run_id", "created_at", "dataset", "attack", "targets", "defenses", "seeds", "device", "wall_seconds", "cache_hits", "label"]
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(runs[cols].to_string(index=False))
    print(f"{len(runs)} run(s) shown from {store.path}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from apt_core.storage.cache import ArtifactCache

    cache = ArtifactCache(args.cache_dir)
    if args.clear:
        print(f"removed {cache.clear()} entries from {cache.root}")
        return 0
    entries = cache.entries()
    kinds: dict[str, int] = {}
    for p in entries:
        kinds[p.parent.parent.name] = kinds.get(p.parent.parent.name, 0) + 1
    print(f"{cache.root}: {len(entries)} entries, {cache.size_bytes() / 1e6:.1f} MB" + ("" if not kinds else " (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from apt_core.benchmarks.stages import bench_load, format_table, run_bench

    if getattr(args, "shape", None):
        from apt_core.benchmarks.scale import run_scale_bench

        # At ML-1M/Yelp size one run of each stage is minutes: --repeats applies only when given.
        run_scale_bench(args.shape, args.data_dir, args.repeats or 1, args.device,
                        stages=tuple(args.stages) if args.stages else None)
        return 0
    repeats = args.repeats or 5
    if args.load_rows is not None and args.load_rows < 1:
        raise ConfigError(f"--load-rows must be at least 1, got {args.load_rows}")
    if not args.load_only:
        run_bench(args.dataset, args.data_dir, repeats, args.device, include_ml1m=not args.skip_ml1m,
                  include_victims=not getattr(args, "skip_victims", False))
    if args.load_rows:
        print(format_table(bench_load(args.load_rows, max(1, min(3, repeats))), "cpu (loader, child process)"))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """List the declared hyper-parameters of one method (or of all)."""
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.params import describe_params

    from apt_core.detection import DETECTORS

    methods = {**{n: ("attack", c) for n, c in ATTACKS.items()}, **{n: ("defense", c) for n, c in DEFENSES.items()},
               **{n: ("detector", c) for n, c in DETECTORS.items()}}
    names = list(methods) if args.name is None else [args.name.strip().lower()]
    for name in names:
        if name not in methods:
            raise ConfigError(f"unknown attack or defense {name!r}: choose one of {', '.join(methods)}")
    if args.json:
        print(json.dumps({n: {"kind": methods[n][0], "summary": methods[n][1].summary, "params": describe_params(methods[n][1])}
                          for n in names}, default=str))
        return 0
    for name in names:
        kind, cls = methods[name]
        print(f"{name} ({kind}): {cls.summary}")
        rows = describe_params(cls)
        if not rows:
            print("  (no parameters)\n")
            continue
        header = ("parameter", "type", "default", "allowed", "paper", "help")
        table = [header] + [(r["name"], r["type"], repr(r["default"]), r["range"], "-" if r["paper"] is None else str(r["paper"]), r["help"])
                            for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            print("  " + "  ".join(row[i].ljust(widths[i]) for i in range(5)) + "  " + row[5])
        where = "detect" if kind == "detector" else "run, sweep, poison"
        print(f"  set with --param {name}.PARAM=VALUE ({where})\n")
    return 0


def _sweep_value(parameter: str, text: str):
    """One sweep value from text: typed by the declaration (``NAME.PARAM``), else as the Scenario field's default."""
    text = text.strip()
    if "." in parameter:
        from apt_core.experiments.scenario import declared_param

        method, _, param = parameter.rpartition(".")
        return declared_param(method, param).parse(text, method)
    from apt_core.experiments.pipeline import Scenario

    default = getattr(Scenario(), parameter)
    if isinstance(default, tuple):  # defenses: one comma list per value
        return tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if parameter in ("filler", "erm_fraction", "erm_users") and text.lower() in ("none", "null"):
        return None
    if parameter in ("filler", "erm_fraction", "erm_users") or (isinstance(default, (int, float)) and not isinstance(default, bool)):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                continue
        raise ConfigError(f"--values: {text!r} is not a number")
    return text


def cmd_sweep(args: argparse.Namespace) -> int:
    """One scenario per value of one parameter: a declared ``NAME.PARAM`` or a scenario field (the paper's Figs. 2-3)."""
    from apt_core.experiments.sweeps import sweep, sweepable_parameters

    swept = [p for p in args.param if "=" not in p]
    if len(swept) != 1:
        raise ConfigError("sweep needs exactly one --param without a value (the swept one), e.g. --param apt.r_plus "
                          "--values 0,0.1,0.2 or --param attack_size --values 0.01 0.03; other --param NAME.PARAM=VALUE stay fixed")
    parameter = swept[0].strip()
    if "." in parameter:
        method, _, param = parameter.rpartition(".")
        parameter = f"{method.strip().lower()}.{param.strip()}"
    if parameter not in sweepable_parameters():
        raise ConfigError(f"cannot sweep {parameter!r}: choose a scenario field ({', '.join(p for p in sweepable_parameters() if '.' not in p)}) "
                          "or a declared parameter NAME.PARAM (`python -m apt_core params NAME`)")
    args.param = [p for p in args.param if "=" in p]
    # --values 0 0.1 0.2, or one token split on --separator (--values 0,0.1,0.2); a defenses value is a comma list itself
    tokens = list(args.values)
    if len(tokens) == 1 and parameter != "defenses":
        tokens = tokens[0].split(args.separator)
    elif args.separator != ",":
        tokens = [t for tok in tokens for t in tok.split(args.separator)]
    values = [_sweep_value(parameter, v) for v in tokens if v.strip()]
    base = scenario_from_args(args)
    engine = engine_from_args(args)
    frame = sweep(base, parameter, values, progress=StderrProgress(not args.json), cache=cache_from_args(args), engine=engine)
    if args.out:
        from apt_core.storage.cache import atomic_write_bytes

        atomic_write_bytes(Path(args.out), frame.to_csv(index=False).encode())
    if args.json:
        print(frame.to_json(orient="records"))
        return 0
    summary = frame.groupby(["value", "phase"], sort=False)[["target_hr", "test_hr"]].mean().reset_index()
    summary["value"] = summary["value"].astype(str)
    print(f"sweep over {parameter}: {len(values)} value(s), {base.seeds} seed(s); mean over seeds")
    print(summary.to_string(index=False))
    if args.out:
        print(f"{len(frame)} rows (value x phase x seed) written to {args.out}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from apt_core.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir)
    print(json.dumps(data.summary(), indent=2))
    return 0


def _victim_choices() -> list[str]:
    """``mf`` and every victim registered now (apt_core.models.victims)."""
    from apt_core.models.victims import victim_names

    return victim_names()


def build_parser() -> argparse.ArgumentParser:
    from apt_core import __version__

    parser = argparse.ArgumentParser(prog="apt-lab", description="APT Lab: poisoning attacks and defenses for MF recommenders")
    parser.add_argument("--version", action="version", version=f"apt-lab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error (also: APT_LAB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one scenario (clean fit, attack, defenses) and report metrics",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_scenario_arguments(run)
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_cache_arguments(run)
    run.set_defaults(func=cmd_run)

    det = sub.add_parser("detect", help="run the shilling detectors on a poisoned data set and report AUC, precision, recall")
    add_scenario_arguments(det)
    det.add_argument("--detectors", type=_defense_list, default=None,
                     help="comma list (default: every registered detector); --param DETECTOR.PARAM=VALUE sets a detector's parameters")
    det.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_cache_arguments(det, history=False)
    det.set_defaults(func=cmd_detect, attack=None)  # None: DETECT_DEFAULT_ATTACK, or none with --poison-file

    add_poison_parser(sub)

    prm = sub.add_parser("params", help="list an attack's, defense's or detector's hyper-parameters (type, default, range, help, the paper's value)")
    prm.add_argument("name", nargs="?", default=None, help="attack, defense or detector name (default: all)")
    prm.add_argument("--json", action="store_true")
    prm.set_defaults(func=cmd_params)


    rep = sub.add_parser("reproduce", help="the paper's Tables 2-3 and Figs. 1-3 (ours beside the paper's) into a folder")
    rep.add_argument("--dataset", default=None, help="ml-100k (default), filmtrust, ...; --quick defaults to sample")
    rep.add_argument("--data-dir", default=None)
    rep.add_argument("--seeds", type=int, default=None, help="repetitions (default 5; --quick: 1)")
    rep.add_argument("--seed", type=_seed_arg, default=None, help="split/target seed and first model seed (default 0)")
    rep.add_argument("--out", default="reproduce-out", help="output folder (created)")
    rep.add_argument("--quick", action="store_true", help="tiny CI settings: sample data, 1 seed, 5 epochs, 2 attacks")
    rep.add_argument("--attacks", type=_defense_list, default=None, help="comma list (default: average,random,aush,pga,tna)")
    rep.add_argument("--targets", type=_defense_list, default=None, help="comma list of target sets (default: random,unpopular)")
    rep.add_argument("--defense", type=_defense_list, default=None, help="comma list (default: pcmf,at,apt-rand,apt)")
    rep.add_argument("--epochs", type=int, default=None)
    rep.add_argument("--k", type=int, default=None)
    rep.add_argument("--attack-size", type=float, default=None)
    rep.add_argument("--erm-fraction", type=float, default=None)
    rep.add_argument("--erm-stats", choices=["observed", "clean", "robust"], default=None, help="default clean: the authors' setting behind the paper's numbers")
    rep.add_argument("--fig-seeds", type=int, default=None, help="seeds for the figure sweeps (default min(seeds, 3))")
    rep.add_argument("--jobs", type=int, default=None, help="with --engine ray: CPUs of the local Ray instance (default: every core)")
    add_engine_arguments(rep)
    rep.add_argument("--victim", default=None, type=str.lower, choices=_victim_choices(),
                     help="the recommender attacked (default mf, the paper's)")
    rep.add_argument("--no-figures", action="store_true")
    rep.add_argument("--no-detection", action="store_true", help="skip the shilling-detection table (detection.csv/.md)")
    rep.add_argument("--no-progress", action="store_true")
    rep.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    add_cache_arguments(rep)
    rep.set_defaults(func=cmd_reproduce)

    sw = sub.add_parser("sweep", help="one scenario per value of one parameter (the paper's Figs. 2-3): a tidy table; "
                                      "e.g. --param apt.r_plus --values 0,0.1,0.2 or --param attack_size --values 0.01 0.03")
    add_scenario_arguments(sw)  # its --param: the swept one without a value (NAME.PARAM or a scenario field), others fixed
    sw.add_argument("--values", required=True, nargs="+",
                    help="its values: several arguments, or one split on --separator (defenses: one comma list per argument)")
    sw.add_argument("--separator", default=",", help="separator of a single --values argument (default ',')")
    sw.add_argument("--json", action="store_true", help="print the tidy table as JSON records")
    sw.add_argument("--out", default=None, help="write the tidy table (value x phase x seed) to this CSV file")
    sw.add_argument("--jobs", type=int, default=None, help="with --engine ray: CPUs of the local Ray instance (default: every core)")
    add_engine_arguments(sw)
    add_cache_arguments(sw, history=False)
    sw.set_defaults(func=cmd_sweep)

    hist = sub.add_parser("history", help="list, show, delete or export recorded runs")
    hist.add_argument("--history-db", default=None, help="run history file (default: $APT_HISTORY_DB or <cache root>/history.sqlite)")
    hist.add_argument("--dataset", default=None)
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--show", metavar="RUN_ID", default=None, help="print one run's JSON")
    hist.add_argument("--delete", metavar="RUN_ID", nargs="+", default=None)
    hist.add_argument("--export", metavar="PATH", default=None, help="write all runs (csv: one row per run x phase x seed)")
    hist.add_argument("--format", choices=["csv", "json"], default="csv")
    hist.add_argument("--json", action="store_true", help="print the run list as JSON")
    hist.set_defaults(func=cmd_history)

    cache = sub.add_parser("cache", help="show the artifact cache's size, or clear it")
    cache.add_argument("--cache-dir", default=None)
    cache.add_argument("--clear", action="store_true")
    cache.set_defaults(func=cmd_cache)

    bench = sub.add_parser("bench", help="time each stage and print a table")
    bench.add_argument("--dataset", default="ml-100k")
    bench.add_argument("--data-dir", default=None)
    bench.add_argument("--repeats", type=int, default=None, help="runs per stage (default 5; 1 with --shape)")
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    bench.add_argument("--skip-ml1m", action="store_true", help="skip the ML-1M-shaped memory check")
    bench.add_argument("--skip-victims", action="store_true", help="skip the LightGCN / NeuMF rows (tens of seconds each on a CPU)")
    bench.add_argument("--shape", choices=["ml-1m", "yelp"], default=None,
                       help="time and peak memory of every stage at this data set's size (the real files when present, else synthetic)")
    bench.add_argument("--stages", type=_defense_list, default=None, help="with --shape: only these stages (prefixes: rank,attack,defense,influence)")
    bench.add_argument("--load-rows", type=int, default=None, metavar="N",
                       help="also time loading a synthetic N-row CSV (written to a temporary folder, deleted after) and its peak memory")
    bench.add_argument("--load-only", action="store_true", help="with --load-rows: only the load benchmark")
    bench.set_defaults(func=cmd_bench)

    data = sub.add_parser("data", help="load a data set and print its statistics")
    data.add_argument("--dataset", default="sample")
    data.add_argument("--data-dir", default=None)
    data.set_defaults(func=cmd_data)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """APT Lab's own warnings as one ``warning: ...`` line; others as Python prints them."""
    if issubclass(category, AptWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from apt_core.runtime.devices import configure_threads

    configure_threads()
    from apt_core.runtime.procs import terminate_on_sigterm

    debug = getattr(args, "debug", False) or os.environ.get("APT_LAB_DEBUG", "") not in ("", "0")
    warnings.showwarning = _show_warning
    try:
        with terminate_on_sigterm():  # SIGTERM unwinds like Ctrl-C: worker pools are stopped, temp files removed
            return args.func(args)
    except CancelledError as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt as exc:
        from apt_core.runtime.procs import Terminated

        if isinstance(exc, Terminated):
            print("terminated", file=sys.stderr)
            return 143
        print("cancelled", file=sys.stderr)
        return 130
    except AptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print("error: out of memory (the input is larger than this machine can hold)", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 -- a command line shows one line, not a traceback
        if debug:
            raise
        detail = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
              "(run with --debug or APT_LAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = _python_show_warning
