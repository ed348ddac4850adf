"""What an experiment is: :class:`Scenario` (the CLI's flags, the dashboard's widgets), its checks and its targets.

:func:`parse_targets` turns the scenario's ``targets`` (``random``, ``unpopular``, the APT
authors' fixed lists ``paper`` / ``paper-unpopular`` / ``paper-random``, or the data set's own
item ids) into dense item indices of a split.  The pipeline that runs a scenario is
:mod:`apt_core.experiments.pipeline`; its results are :mod:`apt_core.experiments.results`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np

from apt_core.attacks import attack_names
from apt_core.data import select_targets
from apt_core.data.dataset import RatingData
from apt_core.data.paper_targets import PAPER_TARGET_MODES, is_paper_mode, paper_targets
from apt_core.data.split import Split
from apt_core.defenses import defense_names
from apt_core.defenses.erm import ERM_PRESETS
from apt_core.errors import ConfigError
from apt_core.influence.mf import SOLVERS
from apt_core.runtime.devices import resolve_device

CACHE_FORMAT = 1  # bump when the meaning of cached artifacts changes
#: where APT's ERM users take item means/stds from (APT's step 6 in docs/algorithms.md; robust = median/MAD)
ERM_STATS_CHOICES = ("observed", "clean", "robust", "trusted", "global")

ProgressFn = Callable[[float, str], object]

#: Scenario fields that are shorthands for a declared hyper-parameter: field -> parameter.  A
#: shorthand applies to every method of the scenario that declares the parameter (so a
#: defense added with ``register()`` that declares ``erm_stats`` gets ``--erm-stats`` too);
#: None (the field's "not given") applies to none.  An explicit ``params`` entry wins.
SHORTHANDS: dict[str, str] = {
    "erm_fraction": "erm_fraction",
    "erm_users": "erm_users",
    "erm_stats": "erm_stats",
    "apt_preset": "preset",
    "apt_solver": "solver",
}


def _normalise_params(params: Any) -> tuple[tuple[str, Any], ...]:
    """``{"apt.r_plus": 0.3}`` or pairs -> sorted tuple of pairs (hashable, one order for the key)."""
    items = params.items() if isinstance(params, Mapping) else params
    out: dict[str, Any] = {}
    for pair in items or ():
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise ConfigError(f"params must map 'NAME.PARAM' to a value, got {pair!r}") from None
        method, dot, param = str(key).rpartition(".")
        if not dot or not method or not param:
            raise ConfigError(f"a parameter is named NAME.PARAM (e.g. apt.r_plus), got {key!r}")
        if isinstance(value, np.generic):  # numpy scalars from widgets/arrays: plain JSON-able values
            value = value.item()
        out[f"{method.strip().lower()}.{param.strip()}"] = value
    return tuple(sorted(out.items()))


#: the attack name reports give a run whose fake profiles come from ``--poison-file``
POISON_FILE_ATTACK = "file"

#: upper bounds of a run's own numbers, sized for a 2-core, 24 GB machine (docs/cli.md, "Parameter
#: bounds"): ten times and more what the paper's protocol uses, refused before any data is loaded.
SCENARIO_LIMITS = {"epochs": 1000, "seeds": 100, "k": 1000, "n_targets": 1000, "filler": 100_000}


@dataclass(frozen=True)
class Scenario:
    """Everything that determines an experiment's result."""

    dataset: str = "sample"
    data_dir: str | None = None
    attack: str = "none"
    attack_size: float = 0.03
    filler: int | None = None
    poison_file: str | None = None
    targets: str | tuple[int, ...] = "random"
    n_targets: int = 5
    defenses: tuple[str, ...] = ("none",)
    # ERM users of APT / APT-rand: a share of the real users, a count, or (both None) the preset's
    # count (``paper``: 50 on ML-100K and FilmTrust as in the authors' code, else 5%).
    erm_fraction: float | None = None
    erm_stats: str = "observed"
    k: int = 50
    epochs: int = 25
    seeds: int = 1
    seed: int = 0
    device: str = "auto"
    erm_users: int | None = None
    apt_preset: str = "paper"  # APT / APT-rand defaults: "paper" (the authors' code) or "lab-v1"
    apt_solver: str | None = None  # APT's influence solver; None: the preset's
    #: the recommender under attack: mf (the paper's) or a registered victim (lightgcn, neumf, ...: apt_core.models.victims)
    victim: str = "mf"
    #: how lightgcn / neumf read ratings: implicit (interactions, their papers' default) or explicit (MSE)
    victim_feedback: str = "implicit"
    #: hyper-parameters of the attack and the defenses: ``{"apt.r_plus": 0.0, "pga.iterations": 5}``
    #: (any mapping or pairs; stored as sorted pairs).  Declared by each method (``params NAME``).
    params: tuple = ()
    #: a rating file's declared scale, ``"LO..HI"`` or ``"LO..HI:STEP"`` (``--scale``); None: inferred
    rating_scale: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _normalise_params(self.params))

    def method_params(self, name: str) -> dict:
        """The hyper-parameters of method ``name`` in this scenario: shorthand fields, then ``params``."""
        from apt_core.attacks import ATTACKS
        from apt_core.defenses import DEFENSES

        cls = ATTACKS.get(name) if name == self.attack else None
        cls = cls or DEFENSES.get(name)
        declared = {p.name for p in getattr(cls, "params", ())}
        out = {}
        for field_name, param in SHORTHANDS.items():
            value = getattr(self, field_name)
            if value is not None and param in declared:
                out[param] = value
        if "victim_solver" in declared and self.apt_solver is not None and self.victim != "mf":
            out["victim_solver"] = self.apt_solver  # an explicit solver holds for any victim
        prefix = name + "."
        out.update({k[len(prefix):]: v for k, v in self.params if k.startswith(prefix)})
        return out

    def _validate_params(self) -> None:
        from apt_core.attacks import make_attack
        from apt_core.defenses import make_defense

        methods = ([self.attack] if self.attack != "none" else []) + list(self.defenses)
        for key, _ in self.params:
            method = key.rpartition(".")[0]
            if method not in methods:
                raise ConfigError(f"--param {key}: {method!r} is neither the attack nor a defense of this run "
                                  f"(attack {self.attack}, defenses {', '.join(self.defenses)})")
        # Building each method validates every value and the combinations (one place: the declarations).
        if self.attack != "none":
            make_attack(self.attack, **self.method_params(self.attack))
        for name in self.defenses:
            make_defense(name, **self.method_params(name))

    def validate(self) -> None:
        if self.attack not in attack_names():
            raise ConfigError(f"unknown attack {self.attack!r}: choose one of {', '.join(attack_names())}")
        if self.poison_file is not None and self.attack != "none":
            raise ConfigError(f"--poison-file and --attack {self.attack}: a poison file replaces the attack "
                              "(its fake profiles are injected as they are); give one of the two")
        for name in self.defenses:
            if name not in defense_names():
                raise ConfigError(f"unknown defense {name!r}: choose one of {', '.join(defense_names())}")
        if not self.defenses:
            raise ConfigError("choose at least one defense (use 'none' for plain MF)")
        if len(set(self.defenses)) != len(self.defenses):
            raise ConfigError(f"a defense is listed twice: {', '.join(self.defenses)}")
        if not (0 < self.attack_size <= 1):
            raise ConfigError(f"--attack-size must lie in (0, 1], got {self.attack_size}")
        if self.erm_fraction is not None and not (0 <= self.erm_fraction <= 1):
            raise ConfigError(f"--erm-fraction must lie in [0, 1], got {self.erm_fraction}")
        if self.erm_users is not None and self.erm_users < 0:
            raise ConfigError(f"--erm-users must be non-negative, got {self.erm_users}")
        if self.erm_users is not None and self.erm_fraction is not None:
            raise ConfigError("give either --erm-users (a count) or --erm-fraction (a share of the real users), not both")
        if self.apt_preset not in ERM_PRESETS:
            raise ConfigError(f"--apt-preset must be one of {', '.join(ERM_PRESETS)}, got {self.apt_preset!r}")
        if self.apt_solver is not None and self.apt_solver not in SOLVERS:
            raise ConfigError(f"--apt-solver must be one of {', '.join(SOLVERS)}, got {self.apt_solver!r}")
        if isinstance(self.targets, str) and self.targets.startswith("paper") and not is_paper_mode(self.targets):
            raise ConfigError(f"unknown target set {self.targets!r}: choose one of {', '.join(PAPER_TARGET_MODES)}")
        if self.erm_stats not in ERM_STATS_CHOICES:
            raise ConfigError(f"--erm-stats must be one of {', '.join(ERM_STATS_CHOICES)}, got {self.erm_stats!r}")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if self.n_targets < 1:
            raise ConfigError(f"--n-targets must be at least 1, got {self.n_targets}")
        if self.filler is not None and self.filler < 0:
            raise ConfigError(f"--filler must be non-negative, got {self.filler}")
        for name, limit in SCENARIO_LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ConfigError(f"--{name.replace('_', '-')} must be at most {limit} (the bound for a 2-core, 24 GB machine; "
                                  f"docs/cli.md), got {value}")
        # numpy and torch take seeds in 0..2**32-1; the repetitions use seed .. seed+seeds-1
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or not 0 <= self.seed <= 2**32 - self.seeds:
            raise ConfigError(f"--seed must be a whole number in 0..{2**32 - self.seeds} (with --seeds {self.seeds}), got {self.seed!r}")
        self._validate_params()
        from apt_core.models.victims import FEEDBACK, victim_names

        if self.victim not in victim_names():
            raise ConfigError(f"unknown victim {self.victim!r}: choose one of {', '.join(victim_names())}")
        if self.victim_feedback not in FEEDBACK:
            raise ConfigError(f"--victim-feedback must be one of {', '.join(FEEDBACK)}, got {self.victim_feedback!r}")
        resolve_device(self.device)

    def key(self, device: str | None = None) -> str:
        """Stable hash of the description (``data_dir`` excluded: where data lives is not what it is).

        ``device`` replaces the scenario's device (``run_scenario`` passes the resolved type,
        so ``auto`` on a CPU machine and ``cpu`` share a key).
        """
        from apt_core.storage.cache import stable_hash

        d = self.to_dict()
        d.pop("data_dir", None)
        if d.get("rating_scale") is None:
            d.pop("rating_scale", None)  # keys of scenarios without a declared scale stay as they were
        if device is not None:
            d["device"] = device
        return stable_hash({"scenario": d, "format": CACHE_FORMAT})

    def erm_description(self) -> str:
        """How many ERM users APT / APT-rand get, in words (for captions and reports).

        From the first defense of the scenario that declares ERM users (``--param`` included),
        else from the scenario's shorthand fields.
        """
        erm_users, erm_fraction, preset_name = self.erm_users, self.erm_fraction, self.apt_preset
        for name in self.defenses:
            p = self.method_params(name)
            if "erm_users" in p or "erm_fraction" in p or "preset" in p:
                erm_users, erm_fraction = p.get("erm_users"), p.get("erm_fraction")
                preset_name = p.get("preset", preset_name)
                break
        if erm_users is not None:
            return f"{erm_users} ERM users"
        if erm_fraction is not None:
            return f"{erm_fraction:.0%} ERM users (share of the real users)"
        preset = ERM_PRESETS[preset_name]
        counts = ", ".join(f"{n} on {k}" for k, n in preset.erm_users.items())
        return f"ERM users of the {preset_name} preset ({counts + ', ' if counts else ''}{preset.erm_fraction:.0%} of the real users elsewhere)"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["defenses"] = list(self.defenses)
        out["params"] = dict(self.params)
        if isinstance(self.targets, tuple):
            out["targets"] = list(self.targets)
        return out

    def to_config(self) -> dict:
        """What a report records (``config`` of ``run --json`` and ``detect --json``, the history):
        :meth:`to_dict`, with a poison file named as the attack (``attack`` = ``"file"``) and
        identified by ``poison_file_name`` and ``poison_file_sha256`` (the content, read now;
        null when the file cannot be read).  Its ``attack_size`` and ``filler`` are null: the
        file decides them."""
        out = self.to_dict()
        if self.poison_file is not None:
            from apt_core.attacks.io import poison_file_record

            record = poison_file_record(self.poison_file)
            out.update(attack=POISON_FILE_ATTACK, attack_size=None, filler=None,
                       poison_file_name=record["name"], poison_file_sha256=record["sha256"])
        return out


def parse_param_assignments(assignments: list[str] | tuple[str, ...]) -> dict:
    """``["apt.r_plus=0.3", ...]`` -> ``{"apt.r_plus": 0.3}``, each value typed and checked by its declaration."""
    from apt_core.params import parse_assignment

    out: dict = {}
    for text in assignments or ():
        method, param, value = parse_assignment(text)
        out[f"{method}.{param}"] = declared_param(method, param).parse(value, method)
    return out


def declared_param(method: str, param: str):
    """The :class:`~apt_core.params.Param` ``param`` of attack or defense ``method`` (clear errors)."""
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES

    from apt_core.detection import DETECTORS

    cls = ATTACKS.get(method) or DEFENSES.get(method) or DETECTORS.get(method)
    if cls is None:
        raise ConfigError(f"unknown attack, defense or detector {method!r} in --param: choose one of {', '.join([*ATTACKS, *DEFENSES, *DETECTORS])}")
    specs = cls.param_specs()
    if param not in specs:
        raise ConfigError(f"{method} has no parameter {param!r} (valid: {', '.join(specs) or 'none'}; see `python -m apt_core params {method}`)")
    return specs[param]


def parse_targets(scenario: Scenario, data: RatingData, split: Split) -> np.ndarray:
    """Dense indices of the scenario's target items in ``split`` (explicit ids are the data set's own).

    ``paper``, ``paper-unpopular``, ``paper-random``: the APT authors' fixed targets, only on
    their split files (:func:`apt_core.data.paper_targets.paper_targets`).
    """
    if is_paper_mode(scenario.targets):
        return paper_targets(data, split, scenario.targets)
    if isinstance(scenario.targets, str):
        return select_targets(split, scenario.targets, scenario.n_targets, scenario.seed)
    # Explicit ids are the data set's own item ids (as in its files); report duplicates in
    # those ids, not in the dense indices they map to.
    ids = [str(t) for t in scenario.targets]
    duplicates = sorted({t for t in ids if ids.count(t) > 1})
    if duplicates:
        raise ConfigError(f"duplicate target item id(s): {', '.join(duplicates)}")
    return select_targets(split, data.item_index(list(scenario.targets)))
