"""The subcommands of ``python -m apt_core`` (docs/cli.md): each takes the parsed arguments, calls
the library once and prints; :mod:`apt_core.cli` wires them to their parsers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apt_core.errors import ConfigError
from apt_core.cli_args import (
    StderrProgress,
    cache_from_args,
    check_run_id,
    dump_json,
    engine_from_args,
    format_rows,
    record_run,
    scenario_from_args,
    settings_line,
    store_from_args,
)


def cmd_run(args: argparse.Namespace) -> int:
    from apt_core.experiments.pipeline import run_scenario

    scenario = scenario_from_args(args)
    scenario.validate()
    cache = cache_from_args(args)
    result = run_scenario(scenario, progress=StderrProgress(not args.json), cache=cache)
    # The result goes out first: nothing that happens to the history may lose it.
    if args.json:
        print(dump_json(result.to_json()))
    else:
        out = result.to_json()
        print(f"{out['dataset']['name']}: {out['dataset']['n_users']} users, {out['dataset']['n_items']} items, {out['dataset']['n_ratings']} ratings; device {out['device']}")
        print("targets (the data set's item ids): " + ", ".join(
            f"{i} {result.data.title(t)}" if result.data.item_titles else str(i)
            for i, t in zip(result.data.original_item_ids(result.targets), result.targets)))
        print(settings_line(scenario))
        print(format_rows(out["rows"], scenario.seeds))
        sig = out.get("significance")
        if sig and sig.get("baseline") and int(sig.get("n") or 0) < 2:
            print(f"APT vs {sig['baseline']}: one seed, no significance test (it needs --seeds 2 or more)")
        elif sig and sig.get("baseline"):
            p = sig["p_value"]
            note = f" ({sig['note']})" if sig.get("note") else ""
            print(f"APT vs {sig['baseline']}: {sig.get('test') or 'no test'} over {sig['n']} seeds, p = {'-' if p is None else f'{p:.3g}'} {sig['stars']}{note}")
        if cache is not None:
            print(f"cache: {result.cache_hits} hits, {result.cache_misses} misses; wall time {result.wall_seconds:.1f} s")
    sys.stdout.flush()
    record_run(store_from_args(args), result)
    return 0


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
        print(dump_json(report.to_json()))
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
    print(dump_json(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()), file=sys.stdout)
    return 0


def _replay_store(args: argparse.Namespace):
    """The remembered ``reproduce`` runs (:mod:`apt_core.reporting.replay`) of this command's artifact
    cache, or None where a run is never remembered: without a cache, or with Ray or --jobs."""
    if getattr(args, "no_cache", False) or args.engine != "local" or args.jobs is not None or args.ray_address is not None:
        return None
    from apt_core.reporting.replay import ReplayStore
    from apt_core.storage.paths import default_cache_root

    # ArtifactCache's root, without importing the cache module (numpy) on the quick path
    return ReplayStore(Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_root() / "artifacts")


def _reproduce_summary(dataset: str, seeds: int, wall_seconds: float, hits: int, misses: int, n_files: int, out: Path) -> str:
    """``reproduce``'s summary line: one format for a run and for its replay, which must print the same line."""
    return f"reproduce: {dataset}, {seeds} seed(s): {wall_seconds:.1f} s wall, cache {hits} hits / {misses} misses; {n_files} files in {out}"


def cmd_reproduce(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    replays = _replay_store(args)
    key = None
    if replays is not None:
        from apt_core.reporting.replay import replay_key

        key = replay_key(vars(args))
        done = replays.replay(key, Path(args.out), args.history_db, args.no_history, t0)
        if done is not None:  # the same files and lines as the run it remembers (its own wall time)
            if not args.no_progress:
                print(f"[{'#' * 30}] 100.0% {done.wall_seconds:6.0f}s done (a remembered run: every input unchanged)", file=sys.stderr)
            for line in done.warnings + done.skipped:  # as the run printed them: its warnings, then the skipped
                print(f"warning: {line}", file=sys.stderr)
            print(_reproduce_summary(done.dataset, done.seeds, done.wall_seconds, done.hits, done.misses, done.n_files, Path(args.out)))
            print(done.table2_md)
            return 0
    from apt_core.runtime.devices import configure_threads

    configure_threads()  # here, not in cli.main: a remembered run imports no torch
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
    cache = cache_from_args(args)
    import warnings

    shown: list = []  # the warnings this run printed: a replay prints APT Lab's own again, any other forbids one
    printing = warnings.showwarning

    def noting(message, category, *rest, **kw):
        shown.append((message, category))
        return printing(message, category, *rest, **kw)

    warnings.showwarning = noting
    try:
        result = reproduce(cfg, progress=TextProgress(enabled=not args.no_progress), cache=cache, store=store_from_args(args))
    finally:
        warnings.showwarning = printing
    from apt_core.errors import AptWarning

    rememberable = key is not None and cache is not None and all(issubclass(category, AptWarning) for _, category in shown)
    if rememberable and not result.cache_misses:
        replays.remember(key, result, result.data_source, args.data_dir, cache.stats.hit_paths,
                         history=not args.no_history, warnings=[str(m) for m, _ in shown])
    for line in result.skipped:
        print(f"warning: {line}", file=sys.stderr)
    print(_reproduce_summary(cfg.dataset, cfg.seeds, result.wall_seconds, result.cache_hits, result.cache_misses, len(result.files),
                             result.out))
    print((result.out / "table2_target_hr.md").read_text())
    if rememberable and result.cache_misses:
        sys.stdout.flush()  # the output is complete; what follows only prepares the next identical command
        _remember_cached_pass(args, cfg, replays, key)
    return 0


def _remember_cached_pass(args: argparse.Namespace, cfg, replays, key: str) -> None:
    """Remember a run that computed (cache misses) as the cached run that would follow it, so that the
    next identical command is already a replay: the same command again in this process, reading
    everything from the artifact cache into a scratch folder, silently (no progress; its warnings
    collected, with the registries of already shown warnings reset as in a fresh process).  Its
    files, counts and warnings are what the next command would write and print: nothing between
    the two passes is kept in memory but the code fingerprints, so a fresh process reads the same
    entries.  Costs that cached pass without the imports (about 2 s on ``--quick``); a failure
    only leaves the run unremembered."""
    import dataclasses
    import tempfile
    import warnings

    from apt_core.errors import AptError, AptWarning
    from apt_core.reporting.reproduce import reproduce

    cache = cache_from_args(args)  # its own counts and entries read: those of the cached run
    try:
        with tempfile.TemporaryDirectory(prefix="apt-reproduce-remember-") as scratch:
            with warnings.catch_warnings(record=True) as caught:
                result = reproduce(dataclasses.replace(cfg, out=scratch), progress=None, cache=cache, store=store_from_args(args))
            if result.cache_misses or not all(issubclass(w.category, AptWarning) for w in caught):
                return
            replays.remember(key, result, result.data_source, args.data_dir, cache.stats.hit_paths,
                             history=not args.no_history, warnings=[str(w.message) for w in caught])
    except (AptError, OSError, ValueError) as exc:
        print(f"warning: this run is not remembered for a quick rerun ({exc})", file=sys.stderr)


def cmd_history(args: argparse.Namespace) -> int:
    from apt_core.storage.history import RunStore

    for run_id in [args.show] * bool(args.show) + list(args.delete or []):
        check_run_id(run_id)  # before the history is opened: a stray byte or a huge argument is one short line
    store = RunStore(args.history_db)
    if args.delete:
        for rid in args.delete:
            store.delete(rid)
            print(f"deleted {rid}")
        return 0
    if args.show:
        print(dump_json(store.get(args.show), indent=1))
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


def cmd_grid(args: argparse.Namespace) -> int:
    """Precompute the classroom grid of one data set (what the dashboard builds in the background)."""
    import time

    from apt_core.data import load_dataset
    from apt_core.experiments.grid import GridSpec, build_grid, classroom_base, grid_scenarios

    base = classroom_base(args.dataset, args.data_dir, args.seed, args.device)
    base.validate()
    data = load_dataset(args.dataset, args.data_dir)
    cache = cache_from_args(args)
    scenarios = grid_scenarios(base, GridSpec().available())
    if args.limit is not None:
        scenarios = scenarios[: args.limit]
    bar = StderrProgress(not args.no_progress and not args.json, width=90)
    t0 = time.perf_counter()

    def progress(fraction: float, text: str) -> bool:
        return bar(fraction, f"{_minutes(time.perf_counter() - t0)} {text}")

    report = build_grid(scenarios, cache, progress, data=data)
    summary = {"dataset": data.name, "positions": report.n_points, "already_cached": report.n_cached,
               "computed": report.n_points - report.n_cached, "seconds": round(report.seconds, 1),
               "cache_dir": str(cache.root), "cache_mb": round(cache.size_bytes() / 1e6, 1), "keep_models": cache.store_models}
    if args.json:
        print(dump_json(summary))
    else:
        print(f"{data.name}: {summary['positions']} positions of the classroom grid ready in {_minutes(report.seconds)} "
              f"({summary['computed']} computed, {summary['already_cached']} already cached); "
              f"cache {cache.root}: {summary['cache_mb']:.1f} MB")
    return 0


def _minutes(seconds: float) -> str:
    """``42 s`` or ``6 min 05 s``."""
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def cmd_cache(args: argparse.Namespace) -> int:
    from apt_core.storage.cache import ArtifactCache

    cache = ArtifactCache(args.cache_dir)
    if args.clear:
        print(f"removed {cache.clear()} entries from {cache.root}")
        return 0
    entries = cache.entries()
    kinds: dict[str, list[int]] = {}  # kind -> [entries, bytes]
    for p in entries:
        count = kinds.setdefault(p.parent.parent.name, [0, 0])
        count[0] += 1
        count[1] += p.stat().st_size
    total = sum(size for _, size in kinds.values())
    print(f"{cache.root}: {len(entries)} entries, {total / 1e6:.1f} MB"
          + ("" if not kinds else " (" + ", ".join(f"{k} {n}: {b / 1e6:.1f} MB" for k, (n, b) in sorted(kinds.items())) + ")"))
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
    """List the declared hyper-parameters of one method (or of all); imports no model code once
    the declarations of this source are kept (:mod:`apt_core.experiments.declared`)."""
    from apt_core.experiments.declared import declared_methods

    methods = declared_methods()
    names = list(methods) if args.name is None else [args.name.strip().lower()]
    for name in names:
        if name not in methods:
            raise ConfigError(f"unknown attack or defense {name!r}: choose one of {', '.join(methods)}")
    if args.json:
        print(dump_json({n: methods[n] for n in names}, default=str))
        return 0
    for name in names:
        kind, summary = methods[name]["kind"], methods[name]["summary"]
        print(f"{name} ({kind}): {summary}")
        rows = methods[name]["params"]
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
        from apt_core.storage.outputs import write_output

        write_output(Path(args.out), frame.to_csv(index=False).encode())
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

    data = load_dataset(args.dataset, args.data_dir, scale=args.scale)
    print(dump_json(data.summary(), indent=2))
    return 0
