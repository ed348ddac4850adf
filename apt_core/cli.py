"""Command line: ``python -m apt_core {run,bench,data,...}`` (DESIGN section 8).

Errors that a user can fix (bad file, unknown name, out-of-range size) are printed as one
``error: ...`` line on stderr with exit status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys

from apt_core.errors import AptError, CancelledError


def _targets_arg(value: str):
    value = value.strip()
    if value in ("random", "unpopular"):
        return value
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError("--targets needs 'random', 'unpopular' or item ids")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--targets: {value!r} is neither 'random', 'unpopular' nor a comma list of item ids") from None


def _defense_list(value: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    if not names:
        raise argparse.ArgumentTypeError("--defense needs at least one name")
    return names


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="sample", help="sample, ml-100k, ml-1m, filmtrust, yelp, or a path to a rating file / NCF split prefix")
    p.add_argument("--data-dir", default=None, help="local folder with data sets (else $APT_DATA_DIR, the cache, a download)")
    p.add_argument("--attack", default="none", type=str.lower)
    p.add_argument("--attack-size", type=float, default=0.03, help="fake users as a share of real users, in (0, 1]")
    p.add_argument("--filler", type=int, default=None, help="filler items per fake user (default: ratings per user)")
    p.add_argument("--poison-file", default=None, help="inject these fake profiles (CSV user,item,rating or the authors' .npy) instead of running an attack")
    p.add_argument("--targets", type=_targets_arg, default="random", help="random, unpopular, or comma-separated item ids (the data set's own ids)")
    p.add_argument("--n-targets", type=int, default=5)
    p.add_argument("--defense", type=_defense_list, default=("none",), help="comma list of defenses")
    p.add_argument("--erm-fraction", type=float, default=0.05)
    p.add_argument("--erm-stats", choices=["observed", "clean"], default="observed")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def scenario_from_args(args: argparse.Namespace):
    from apt_core.experiment import Scenario

    return Scenario(
        dataset=args.dataset, data_dir=args.data_dir, attack=args.attack, attack_size=args.attack_size,
        filler=args.filler, poison_file=args.poison_file, targets=args.targets, n_targets=args.n_targets,
        defenses=tuple(args.defense), erm_fraction=args.erm_fraction, erm_stats=args.erm_stats, k=args.k,
        epochs=args.epochs, seeds=args.seeds, seed=args.seed, device=args.device,
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
    header = f"{'phase':<10} {'target HR':>10} {'± sd':>7} {'test HR':>8} {'± sd':>7} {'RI':>7} {'rank shift':>10} {'seconds':>8}"
    lines = [header, "-" * len(header)]

    def f(v, w, p=4):
        return f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"

    for r in rows:
        lines.append(
            f"{r['phase']:<10} {f(r['target_hr'], 10)} {f(r['target_hr_sd'], 7)} {f(r['test_hr'], 8)} {f(r['test_hr_sd'], 7)} "
            f"{f(r['ri'], 7, 3)} {f(r['rank_shift_median'], 10, 1)} {f(r['seconds'], 8, 2)}"
        )
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from apt_core.experiment import run_scenario

    scenario = scenario_from_args(args)
    result = run_scenario(scenario, progress=StderrProgress(not args.json))
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        out = result.to_json()
        print(f"{out['dataset']['name']}: {out['dataset']['n_users']} users, {out['dataset']['n_items']} items, {out['dataset']['n_ratings']} ratings; device {out['device']}")
        print(f"targets: {', '.join(result.data.title(t) for t in result.targets)}")
        print(format_rows(out["rows"]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from apt_core.bench import run_bench

    run_bench(args.dataset, args.data_dir, args.repeats, args.device, include_ml1m=not args.skip_ml1m)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from apt_core.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir)
    print(json.dumps(data.summary(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from apt_core import __version__

    parser = argparse.ArgumentParser(prog="apt-lab", description="APT Lab: poisoning attacks and defenses for MF recommenders")
    parser.add_argument("--version", action="version", version=f"apt-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one scenario (clean fit, attack, defenses) and report metrics")
    add_scenario_arguments(run)
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="time each stage and print a table")
    bench.add_argument("--dataset", default="ml-100k")
    bench.add_argument("--data-dir", default=None)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    bench.add_argument("--skip-ml1m", action="store_true", help="skip the ML-1M-shaped memory check")
    bench.set_defaults(func=cmd_bench)

    data = sub.add_parser("data", help="load a data set and print its statistics")
    data.add_argument("--dataset", default="sample")
    data.add_argument("--data-dir", default=None)
    data.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from apt_core.runtime import configure_threads

    configure_threads()
    try:
        return args.func(args)
    except CancelledError as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except AptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
