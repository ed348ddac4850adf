"""Command line: ``python -m apt_core {run,poison,params,sweep,reproduce,grid,history,cache,bench,data}`` (docs/cli.md).

Errors that a user can fix (bad file, unknown name, out-of-range size) are printed as one
``error: ...`` line on stderr with exit status 2; no traceback.  This module builds the parser
and runs a command; the flags' helpers live in :mod:`apt_core.cli_args`, the subcommands in
:mod:`apt_core.cli_commands` (both importable from here as before).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from apt_core.errors import AptError, AptWarning, CancelledError
from apt_core.cli_args import (  # noqa: F401 -- the argument helpers, importable from here as before
    DETECT_DEFAULT_ATTACK,
    DefaultsHelpFormatter,
    default_targets_note,
    MAX_SEED,
    StderrProgress,
    TARGET_WORDS,
    _bounded_int,
    _defense_list,
    _seed_arg,
    _targets_arg,
    _victim_choices,
    add_cache_arguments,
    add_engine_arguments,
    add_scale_argument,
    add_scenario_arguments,
    cache_from_args,
    engine_from_args,
    format_rows,
    record_run,
    scenario_from_args,
    settings_line,
    store_from_args,
    victim_arg,
)
from apt_core.cli_commands import (  # noqa: F401 -- the subcommands (build_parser wires them; tests patch them here)
    cmd_bench,
    cmd_cache,
    cmd_data,
    cmd_detect,
    cmd_grid,
    cmd_history,
    cmd_params,
    cmd_poison,
    cmd_reproduce,
    cmd_run,
    cmd_sweep,
)


def add_poison_parser(subparsers, build: bool = True) -> argparse.ArgumentParser:
    """Register ``poison`` on the CLI's subparsers (``python -m apt_core poison ...``); ``build``
    False: only its one-line help (see :func:`build_parser`)."""
    p = subparsers.add_parser("poison", help="generate an attack's fake profiles and export them (CSV or the authors' .npy)")
    if not build:
        return p
    add_scenario_arguments(p)
    p.add_argument("--out", required=True, help="output file: .csv (user,item_id,rating; the data set's own item ids) "
                                                "or .npy (the authors' dense normalised matrix; columns are dense item indices)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_poison)
    return p


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser.  ``argv`` given: only the subcommand it names gets its arguments (the
    others keep their one-line help), so ``--help``, ``history``, ``cache`` and ``data`` never
    build the registries' name lists, which import torch (start-up); None: every subcommand."""
    from apt_core import __version__

    wanted = None if argv is None else _command_named(argv)

    def builds(name: str) -> bool:
        return wanted is None or wanted == name

    parser = argparse.ArgumentParser(prog="apt-lab", description="APT Lab: poisoning attacks and defenses for MF recommenders")
    parser.add_argument("--version", action="version", version=f"apt-lab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error (also: APT_LAB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one scenario (clean fit, attack, defenses) and report metrics",
                         formatter_class=DefaultsHelpFormatter)
    if builds("run"):
        add_scenario_arguments(run)
        run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        add_cache_arguments(run)
        run.set_defaults(func=cmd_run)

    det = sub.add_parser("detect", help="run the shilling detectors on a poisoned data set and report AUC, precision, recall")
    if builds("detect"):
        add_scenario_arguments(det)
        det.add_argument("--detectors", type=_defense_list, default=None,
                         help="comma list (default: every registered detector); --param DETECTOR.PARAM=VALUE sets a detector's parameters")
        det.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        add_cache_arguments(det, history=False)
        det.set_defaults(func=cmd_detect, attack=None)  # None: DETECT_DEFAULT_ATTACK, or none with --poison-file

    add_poison_parser(sub, build=builds("poison"))

    prm = sub.add_parser("params", help="list an attack's, defense's or detector's hyper-parameters (type, default, range, help, the paper's value)")
    if builds("params"):
        prm.add_argument("name", nargs="?", default=None, help="attack, defense or detector name (default: all)")
        prm.add_argument("--json", action="store_true", help="print the declarations as JSON")
        prm.set_defaults(func=cmd_params)

    rep = sub.add_parser("reproduce", help="the paper's Tables 2-3 and Figs. 1-3 (ours beside the paper's) into a folder")
    if builds("reproduce"):
        rep.add_argument("--dataset", default=None, help="ml-100k (default), filmtrust, ...; --quick defaults to sample")
        rep.add_argument("--data-dir", default=None, help="local folder with data sets (default: $APT_DATA_DIR, the cache, a download)")
        rep.add_argument("--seeds", type=int, default=None, help="repetitions (default 5; --quick: 1)")
        rep.add_argument("--seed", type=_seed_arg, default=None, help="split/target seed and first model seed (default 0)")
        rep.add_argument("--out", default="reproduce-out", help="output folder (created)")
        rep.add_argument("--quick", action="store_true", help="tiny CI settings: sample data, 1 seed, 5 epochs, 2 attacks")
        rep.add_argument("--attacks", type=_defense_list, default=None, help="comma list (default: average,random,aush,pga,tna)")
        rep.add_argument("--targets", type=_defense_list, default=None, help="comma list of target sets (default: random,unpopular)")
        rep.add_argument("--defense", type=_defense_list, default=None, help="comma list (default: pcmf,at,apt-rand,apt)")
        rep.add_argument("--epochs", type=int, default=None, help="training epochs of every model (default: 25; --quick: 5)")
        rep.add_argument("--k", type=int, default=None, help="top-K cut-off of the hit ratios (default: 50, the paper's; 1000 on Yelp)")
        rep.add_argument("--attack-size", type=float, default=None, help="fake users as a share of real users (default: 0.03, the paper's; 0.05 on Yelp)")
        rep.add_argument("--erm-fraction", type=float, default=None, help="APT's ERM users as a share of the real users (default: the preset's count)")
        rep.add_argument("--erm-stats", choices=["observed", "clean", "robust"], default=None, help="default clean: the authors' setting behind the paper's numbers")
        rep.add_argument("--fig-seeds", type=int, default=None, help="seeds for the figure sweeps (default min(seeds, 3))")
        rep.add_argument("--jobs", type=int, default=None, help="with --engine ray: CPUs of the local Ray instance (default: every core)")
        add_engine_arguments(rep)
        rep.add_argument("--victim", default=None, type=victim_arg, metavar="VICTIM",
                         help="the recommender attacked (default mf, the paper's)")
        rep.add_argument("--no-figures", action="store_true", help="skip the figure sweeps (Figs. 2-3) and their plots")
        rep.add_argument("--no-detection", action="store_true", help="skip the shilling-detection table (detection.csv/.md)")
        rep.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        rep.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="auto (default): CUDA when available, else the CPU")
        add_cache_arguments(rep)
        rep.set_defaults(func=cmd_reproduce)

    sw = sub.add_parser("sweep", help="one scenario per value of one parameter (the paper's Figs. 2-3): a tidy table; "
                                      "e.g. --param apt.r_plus --values 0,0.1,0.2 or --param attack_size --values 0.01 0.03")
    if builds("sweep"):
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

    grid = sub.add_parser("grid", help="precompute a data set's classroom grid (every position of the dashboard's live controls) "
                                       "into the cache: run it before class")
    if builds("grid"):
        grid.add_argument("--dataset", default="sample", help="sample (default), ml-100k, filmtrust, ... or a rating file")
        grid.add_argument("--data-dir", default=None, help="folder of the real data sets (default: $APT_DATA_DIR or the download cache)")
        grid.add_argument("--seed", type=_seed_arg, default=0, help="the dashboard's seed (default 0)")
        grid.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="the dashboard's device (default auto)")
        grid.add_argument("--limit", type=_bounded_int(1, 1_000_000), default=None,
                          help="only the first N positions (the dashboard's first view comes first): a quick check")
        grid.add_argument("--cache-dir", default=None, help="artifact cache folder (default: $APT_CACHE_DIR/artifacts or "
                                                            "~/.cache/apt_lab/artifacts: the dashboard's)")
        grid.add_argument("--keep-models", action="store_true", help="also keep every fitted model's tensors (not needed by the pages)")
        grid.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        grid.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        grid.set_defaults(func=cmd_grid)

    hist = sub.add_parser("history", help="list, show, delete or export recorded runs")
    if builds("history"):
        hist.add_argument("--history-db", default=None, help="run history file (default: $APT_HISTORY_DB or <cache root>/history.sqlite)")
        hist.add_argument("--dataset", default=None, help="only the runs on this data set")
        hist.add_argument("--limit", type=_bounded_int(1, 1_000_000), default=20, help="the newest N runs (1 to 1000000)")
        hist.add_argument("--show", metavar="RUN_ID", default=None, help="print one run's JSON")
        hist.add_argument("--delete", metavar="RUN_ID", nargs="+", default=None, help="delete these runs")
        hist.add_argument("--export", metavar="PATH", default=None, help="write all runs (csv: one row per run x phase x seed)")
        hist.add_argument("--format", choices=["csv", "json"], default="csv", help="the format of --export")
        hist.add_argument("--json", action="store_true", help="print the run list as JSON")
        hist.set_defaults(func=cmd_history)

    cache = sub.add_parser("cache", help="show the artifact cache's size, or clear it")
    if builds("cache"):
        cache.add_argument("--cache-dir", default=None, help="artifact cache folder (default: $APT_CACHE_DIR/artifacts or ~/.cache/apt_lab/artifacts)")
        cache.add_argument("--clear", action="store_true", help="delete every cached artifact")
        cache.set_defaults(func=cmd_cache)

    bench = sub.add_parser("bench", help="time each stage and print a table")
    if builds("bench"):
        bench.add_argument("--dataset", default="ml-100k", help="the data set timed (default: ml-100k)")
        bench.add_argument("--data-dir", default=None, help="local folder with data sets (default: $APT_DATA_DIR, the cache, a download)")
        bench.add_argument("--repeats", type=int, default=None, help="runs per stage (default 5; 1 with --shape)")
        bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto (default): CUDA when available, else the CPU")
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
    if builds("data"):
        data.add_argument("--dataset", default="sample", help="a named data set or a path to a rating file (default: sample)")
        data.add_argument("--data-dir", default=None, help="local folder with data sets (default: $APT_DATA_DIR, the cache, a download)")
        add_scale_argument(data)
        data.set_defaults(func=cmd_data)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """APT Lab's own warnings as one ``warning: ...`` line; others as Python prints them."""
    if issubclass(category, AptWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


#: subcommands that read files and print: they never import torch (start-up time); ``params``
#: reads the declarations kept for this source (:mod:`apt_core.experiments.declared`)
COMMANDS_WITHOUT_TORCH = frozenset({"history", "cache", "data", "params"})


def _command_named(argv: list[str]) -> str:
    """The subcommand ``argv`` names: its first word that is not an option ("" when it names none)."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command not in COMMANDS_WITHOUT_TORCH | {"reproduce"}:  # they train nothing (reproduce configures on its full path)
        from apt_core.runtime.devices import configure_threads

        configure_threads()
    from apt_core.runtime.procs import terminate_on_sigterm

    debug = getattr(args, "debug", False) or os.environ.get("APT_LAB_DEBUG", "") not in ("", "0")
    warnings.showwarning = _show_warning
    try:
        with terminate_on_sigterm():  # SIGTERM unwinds like Ctrl-C: worker pools are stopped, temp files removed
            code = args.func(args)
        note = default_targets_note(args)
        if note and not code:  # stderr, after the output: --json on stdout stays one object, an error stays one line
            print(note, file=sys.stderr)
        return code
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
