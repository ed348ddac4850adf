"""The command line's arguments and output: flags to a Scenario, a cache, a history and an engine;
the progress bar and the result table a command prints (:mod:`apt_core.cli` builds the parser,
:mod:`apt_core.cli_commands` runs the subcommands).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from apt_core.errors import ConfigError

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


TARGET_WORDS = ("random", "unpopular", "tail", "paper", "paper-unpopular", "paper-random")


#: the attack ``detect`` runs when neither --attack nor --poison-file is given
DETECT_DEFAULT_ATTACK = "average"


def _targets_arg(value: str):
    value = value.strip()
    if value.lower() in TARGET_WORDS:
        return value.lower()
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"--targets needs one of {', '.join(TARGET_WORDS)} or item ids")
    bad = next((p for p in parts if not p.isprintable() or len(p) > 200), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"{echo(bad)} is not an item id (printable text of at most 200 characters)")
    # Numeric ids as numbers (ML-100K's 50); any other text is a data set's string id, looked up as it is.
    return tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)


#: the history's run ids: ``YYYYmmdd-HHMMSS-`` and 8 hex digits (apt_core/storage/history.py)
RUN_ID_PATTERN = r"\d{8}-\d{6}-[0-9a-f]{8}"
#: the most of a user's text an error message quotes back
ECHO_LIMIT = 60


def echo(value: str) -> str:
    """``value`` quoted for an error message: printable ASCII (any byte shows as an escape, never
    a codec error) and at most :data:`ECHO_LIMIT` characters of it."""
    shown = ascii(value[:ECHO_LIMIT])
    return shown if len(value) <= ECHO_LIMIT else f"{shown}... ({len(value)} characters)"


def check_run_id(value: str) -> str:
    """``value`` if it has the form of a run id, else a one-line :class:`ConfigError` quoting little of it."""
    import re

    if not re.fullmatch(RUN_ID_PATTERN, value):
        raise ConfigError(f"{echo(value)} is not a run id (they look like 20261201-093015-1a2b3c4d; `history` lists them)")
    return value


def _bounded_int(lo: int, hi: int):
    """An argparse type: an integer in ``lo..hi`` (a huge number is an error, not an OverflowError later)."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{echo(value)} is not a whole number") from None
        if not lo <= number <= hi:
            raise argparse.ArgumentTypeError(f"{echo(value)} is outside {lo}..{hi}")
        return number

    parse.__name__ = "integer"
    return parse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Names each flag's default once: a help text that already says its default in words gets no second
    "(default: None)", and a flag whose default is None or off gets none at all."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], ()) or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


#: the dashboard pages' target items (pages/_shared/widgets.attack_controls, the Lesson and the live grid)
DASHBOARD_TARGETS = "unpopular"
#: the command line's default target items (a behaviour kept since the first release; docs/cli.md)
CLI_DEFAULT_TARGETS = "random"


def _defense_list(value: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    if not names:
        raise argparse.ArgumentTypeError("--defense needs at least one name")
    return names


def add_scale_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default=None, metavar="LO..HI[:STEP]",
                   help="a rating file's scale, e.g. 1..10 or 0.5..4:0.5 (default: inferred from the file; a rare rating "
                        "more than 3x the next largest is refused unless declared here)")


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    from apt_core.data.loaders import DATASETS

    p.add_argument("--dataset", default="sample", help=f"{', '.join(DATASETS)}, or a path to a rating file / NCF split prefix")
    p.add_argument("--data-dir", default=None, help="local folder with data sets (else $APT_DATA_DIR, the cache, a download)")
    add_scale_argument(p)
    from apt_core.attacks import attack_names
    from apt_core.defenses import defense_names

    p.add_argument("--attack", default="none", type=str.lower, help="one of: " + ", ".join(attack_names()))
    p.add_argument("--attack-size", type=float, default=0.03, help="fake users as a share of real users, in (0, 1]")
    p.add_argument("--filler", type=int, default=None, help="filler items per fake user (default: the data set's ratings per user)%(default).0s")
    p.add_argument("--poison-file", default=None,
                   help="inject these fake profiles instead of running an attack: CSV user,item_id,rating (the data set's own "
                        "item ids) or the authors' .npy; the run's attack is then 'file' (--attack must stay none)")
    p.add_argument("--targets", type=_targets_arg, default=None,
                   help=f"(default: {CLI_DEFAULT_TARGETS}; the dashboard uses {DASHBOARD_TARGETS}, so add --targets {DASHBOARD_TARGETS} "
                        "for a class's numbers) random, unpopular (1-4 training ratings), tail (bottom 20%% by popularity), paper (= paper-unpopular), paper-random (the APT authors' fixed targets; "
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
    p.add_argument("--seeds", type=int, default=1, help="repetitions with seeds s, s+1, ...: mean ± sd and a significance test when above 1")
    p.add_argument("--seed", type=_seed_arg, default=0, help="the first seed (data split, attack, model initialisation)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when available, else the CPU")
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


def finite_json(obj):
    """``obj`` with every non-finite float (NaN, inf) as None: JSON has no NaN or Infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dump_json(obj, **kwargs) -> str:
    """``json.dumps`` for stdout: strict JSON (undefined numbers as null, never NaN/Infinity)."""
    return json.dumps(finite_json(obj), allow_nan=False, **kwargs)


def scenario_from_args(args: argparse.Namespace):
    from apt_core.experiments.pipeline import Scenario
    from apt_core.experiments.scenario import parse_param_assignments

    attack = args.attack
    if attack is None:  # detect's default: an attack, unless a poison file brings the fake users
        attack = "none" if args.poison_file is not None else DETECT_DEFAULT_ATTACK
    targets = args.targets
    if targets is None:
        targets = CLI_DEFAULT_TARGETS
        # said after a successful command (cli.main: default_targets_note), where the targets mattered
        args.targets_defaulted = attack != "none" or args.poison_file is not None
    return Scenario(
        dataset=args.dataset, data_dir=args.data_dir, attack=attack, attack_size=args.attack_size,
        filler=args.filler, poison_file=args.poison_file, targets=targets, n_targets=args.n_targets,
        defenses=tuple(args.defense), erm_fraction=args.erm_fraction, erm_stats=args.erm_stats, k=args.k,
        epochs=args.epochs, seeds=args.seeds, seed=args.seed, device=args.device,
        erm_users=args.erm_users, apt_preset=args.apt_preset, apt_solver=args.apt_solver,
        params=parse_param_assignments(getattr(args, "param", None) or []),
        victim=getattr(args, "victim", "mf"), victim_feedback=getattr(args, "victim_feedback", "implicit"),
        rating_scale=getattr(args, "scale", None),
    )


def default_targets_note(args: argparse.Namespace) -> str | None:
    """The line that names the command line's default targets beside the dashboard's, when the run used the default."""
    if not getattr(args, "targets_defaulted", False):
        return None
    return (f"note: targets {CLI_DEFAULT_TARGETS} (the command line's default); the dashboard's pages use {DASHBOARD_TARGETS} "
            f"targets: add --targets {DASHBOARD_TARGETS} for the same numbers")


class StderrProgress:
    """A one-line progress bar on stderr (stdout stays clean for ``--json``)."""

    def __init__(self, enabled: bool = True, width: int = 60):
        self.enabled = enabled and sys.stderr.isatty()
        self.last = ""
        self.width = width  # characters of the stage text

    def __call__(self, fraction: float, stage: str) -> bool:
        if self.enabled:
            bar = "#" * int(30 * fraction)
            line = f"\r[{bar:<30}] {fraction * 100:5.1f}% {stage[:self.width]:<{self.width}}"
            if line != self.last:
                sys.stderr.write(line)
                sys.stderr.flush()
                self.last = line
            if fraction >= 1.0:
                sys.stderr.write("\n")
        return True


def format_rows(rows: list[dict], seeds: int | None = None) -> str:
    """The result rows as an aligned text table; with one seed (``seeds=1``) without the sd columns
    (a spread over one seed is not a spread)."""
    from apt_core.evaluation.metrics import RI_RULE, ri_note

    wide = max([10] + [len(str(r["phase"])) for r in rows])  # remove-cogroup and friends keep the columns aligned
    spread = seeds != 1

    def sd(width: int) -> str:
        return f" {'± sd':>{width}}" if spread else ""

    header = (f"{'phase':<{wide}} {'target HR':>10}{sd(7)} {'test HR':>8}{sd(7)} {'RI':>7} {'below clean':>11} "
              f"{'rank shift':>10} {'seconds':>8}  note")
    lines = [header, "-" * len(header)]

    def f(v, w, p=4):
        return f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"

    def fsd(v, w):
        return " " + f(v, w) if spread else ""

    notes = []
    for r in rows:
        note = ri_note(r["ri"], r.get("ri_undefined_reason"))
        notes.append(note)
        if note == "over-correction" and isinstance(r.get("below_clean_share"), (int, float)):
            note += f": {r['below_clean_share']:.0%} below the clean HR"
        lines.append(
            f"{r['phase']:<{wide}} {f(r['target_hr'], 10)}{fsd(r['target_hr_sd'], 7)} {f(r['test_hr'], 8)}{fsd(r['test_hr_sd'], 7)} "
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
    p.add_argument("--keep-models", action="store_true",
                   help="also keep every fitted model's tensors in the cache (default: only the undefended MF models; "
                        "the evaluations that every table and figure is computed from are always kept)")
    if history:
        p.add_argument("--no-history", action="store_true", help="do not record this run in the run history")
        p.add_argument("--history-db", default=None, help="run history file (default: $APT_HISTORY_DB or <cache root>/history.sqlite)")


def cache_from_args(args: argparse.Namespace):
    from apt_core.storage.cache import ArtifactCache

    if getattr(args, "no_cache", False):
        return None
    return ArtifactCache(args.cache_dir, store_models=bool(getattr(args, "keep_models", False)))


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


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: every unit in this process, the fits that share a data set in batches (docs/scale.md); ray: each unit a Ray task (pip install 'apt-lab[ray]')")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: a Ray cluster's address, or 'auto' to join the running one (default: start a local instance)")


def engine_from_args(args: argparse.Namespace):
    from apt_core.experiments.engine import EngineConfig

    cfg = EngineConfig(engine=args.engine, address=args.ray_address, jobs=getattr(args, "jobs", None))
    cfg.validate()
    if cfg.engine == "local" and cfg.jobs not in (None, 1):
        raise ConfigError(f"--jobs {cfg.jobs} runs {cfg.jobs} Ray workers: add --engine ray (the local engine computes one unit after the other)")
    return cfg


def _victim_choices() -> list[str]:
    """``mf`` and every victim registered now (apt_core.models.victims)."""
    from apt_core.models.victims import victim_names

    return victim_names()


def victim_arg(value: str) -> str:
    """``--victim`` of ``reproduce``: ``mf`` or a registered victim, checked as argparse checks a
    choice (same message) but only when the flag is given and names another victim than ``mf``:
    listing the registry imports torch, and a remembered run imports none
    (:mod:`apt_core.reporting.replay`)."""
    name = value.lower()
    if name == "mf" or name in _victim_choices():
        return name
    raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(map(repr, _victim_choices()))})")
