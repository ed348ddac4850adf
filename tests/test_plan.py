"""The pipeline plan is the single source of what a scenario computes.

``plan(scenario)`` lists the units; ``run_scenario`` computes them, the Ray engine schedules
them (``plan_units`` / ``compute_unit``), the detection run reads the same fake profiles.  The
tests check this by what each path *writes to the cache* and *reads as fake profiles*, for the
three fake-profile sources (none, attack, poison file), and statically that the branching on
the source and the building of a defense context are written once.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from apt_core.errors import ConfigError
from apt_core.experiments import pipeline
from apt_core.experiments.engine import plan_units
from apt_core.experiments.pipeline import Scenario, compute_unit, prepare, run_scenario
from apt_core.experiments.plan import FAKE_ATTACK, FAKE_FILE, FAKE_NONE, erm_fields, plan
from apt_core.storage.cache import ArtifactCache

ROOT = Path(__file__).resolve().parents[1]


class RecordingCache(ArtifactCache):
    """An artifact cache that remembers what was written: ``(kind, key)`` per save."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saved: list[tuple[str, str]] = []

    def save(self, kind: str, key: str, payload: dict):
        self.saved.append((kind, key))
        return super().save(kind, key, payload)


@pytest.fixture(scope="module")
def poison_file(tmp_path_factory) -> str:
    """A poison CSV (the data set's own item ids) holding Average-attack profiles on the sample data."""
    from apt_core.attacks import make_attack
    from apt_core.attacks.io import save_profiles

    prepared = prepare(Scenario(dataset="sample", attack="average", targets="unpopular", seed=0))
    split = prepared.split
    fake = make_attack("average").generate(split.train, prepared.targets, prepared.budget.n_fake_users, prepared.budget.n_filler,
                                           0, "cpu")
    path = tmp_path_factory.mktemp("poison") / "average.csv"
    save_profiles(fake, path, split.train.scale, split.item_ids)
    return str(path)


def _scenario(source: str, poison_file: str | None = None, **kw) -> Scenario:
    base = dict(dataset="sample", targets="unpopular", defenses=("none", "at"), epochs=2, seeds=2, device="cpu")
    if source == FAKE_ATTACK:
        base["attack"] = "average"
    if source == FAKE_FILE:
        base["poison_file"] = poison_file
    return Scenario(**{**base, **kw})


def test_plan_lists_each_sources_units():
    assert [(u.rep, u.stage) for u in plan(_scenario(FAKE_NONE)).units] == [(0, "origin"), (0, "at"), (1, "origin"), (1, "at")]
    attack = plan(_scenario(FAKE_ATTACK))
    assert attack.fake_source == FAKE_ATTACK
    assert [u.stage for u in attack.units_of(1)] == ["origin", "profiles", "attack", "at"]
    assert [u.seed for u in attack.units_of(1)] == [1, 1, 1, 1]
    # the clean model reads no fake profiles; every unit on poisoned data waits for its seed's profiles
    assert attack.unit(0, "origin").fake_source == FAKE_NONE and attack.needs(attack.unit(0, "origin")) is None
    assert attack.needs(attack.unit(1, "at")) == attack.unit(1, "profiles")
    file_plan = plan(_scenario(FAKE_FILE, "x.csv"))
    assert file_plan.fake_source == FAKE_FILE and [u.stage for u in file_plan.units_of(0)] == ["origin", "attack", "at"]
    assert all(file_plan.needs(u) is None for u in file_plan.units)
    assert plan(_scenario(FAKE_NONE)).detection_units() == () and len(file_plan.detection_units()) == 2
    with pytest.raises(ConfigError, match="unknown unit 'apt'"):
        attack.unit(0, "apt")


def test_erm_dependence_comes_from_the_declared_parameters():
    assert erm_fields("apt") == ("erm_fraction", "erm_stats") and erm_fields("apt-rand") == ("erm_fraction", "erm_stats")
    assert erm_fields("apt-trusted") == ("erm_fraction",)  # its statistics are always the trusted ones
    assert erm_fields("at") == () and erm_fields("none") == () and erm_fields(None) == ()


def test_the_grid_varies_the_erm_settings_a_defense_declares():
    from apt_core.experiments.grid import GridSpec, grid_scenarios

    spec = GridSpec(attacks=("average",), sizes=(0.03,), defenses=("apt", "apt-trusted", "at"))
    points = grid_scenarios(Scenario(dataset="sample", attack="average"), spec)
    axes = {d: {(p.erm_fraction, p.erm_stats) for p in points if p.defenses == (d,)} for d in spec.defenses}
    assert len(axes["apt"]) == len(spec.erm_fractions) * len(spec.erm_stats)
    assert axes["apt-trusted"] == {(f, "observed") for f in spec.erm_fractions}  # the share only
    assert len(axes["at"]) == 1


@pytest.mark.parametrize("source", [FAKE_NONE, FAKE_ATTACK, FAKE_FILE])
def test_run_scenario_and_the_ray_units_compute_the_same_plan(tmp_path, poison_file, source):
    """The Ray engine's schedule is the plan; its units write exactly the artifacts run_scenario writes, and each
    path answers the other from the cache."""
    scenario = _scenario(source, poison_file)
    assert [(u.rep, u.unit) for u in plan_units([(scenario, "s")])] == plan(scenario).pairs()

    sequential = RecordingCache(tmp_path / "sequential")
    run_scenario(scenario, cache=sequential)
    for u in plan(scenario).units:  # every unit of the plan is what run_scenario computed ...
        assert compute_unit(scenario, u.rep, u.stage, sequential) is True, u

    by_units = RecordingCache(tmp_path / "units")
    for u in plan_units([(scenario, "s")]):
        assert compute_unit(u.scenario, u.rep, u.unit, by_units) is False, u
    run_scenario(scenario, cache=by_units, cache_only=True)  # ... and all it needs (CacheMiss otherwise)

    kinds = [kind for kind, _ in sequential.saved]
    fits = [u for u in plan(scenario).units if u.defense is not None]
    # one evaluation per fitting unit (plus the popularity row's), none beyond the plan; the cache keeps the
    # tensors of the undefended MF models only (apt_core.experiments.artifacts.keeps_model)
    assert kinds.count("eval") == len(fits) + 1
    assert kinds.count("model") == sum(u.defense == "none" for u in fits)
    assert kinds.count("fake") == sum(u.stage == "profiles" for u in plan(scenario).units)
    assert set(by_units.saved) == set(sequential.saved)


@pytest.mark.parametrize("source", [FAKE_ATTACK, FAKE_FILE])
def test_every_path_resolves_the_fake_source_in_one_place(tmp_path, poison_file, source, monkeypatch):
    """run_scenario, compute_unit and run_detection all take their fake profiles from pipeline.fake_profiles, and the
    detection run's poisoned data holds the very profiles run_scenario trained on."""
    from apt_core.experiments.detection_run import run_detection

    calls: list[str] = []
    resolve = pipeline.fake_profiles

    def counting(scenario, *args, **kwargs):
        calls.append(plan(scenario).fake_source)
        return resolve(scenario, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fake_profiles", counting)
    scenario = _scenario(source, poison_file, defenses=("none",))
    result = run_scenario(scenario)
    assert calls == [source, source]  # once per seed
    report = run_detection(scenario, detectors=["pca"], cache=ArtifactCache(tmp_path / "c"), with_stealth=False)
    assert calls == [source] * 4
    compute_unit(scenario, 1, "attack", ArtifactCache(tmp_path / "c"))
    assert calls == [source] * 5
    for rep, fake in enumerate(result.fake_profiles):
        poisoned = report.poisoned[scenario.seed + rep]
        real = poisoned.users < poisoned.n_real_users
        assert np.array_equal(poisoned.items[~real], fake.items) and np.array_equal(poisoned.ratings[~real], fake.ratings)
    with pytest.raises(ConfigError, match="detection needs fake users"):
        run_detection(_scenario(FAKE_NONE), detectors=["pca"])


# ------------------------------------------------------------------ written once (read statically)

#: the modules that consume the plan: none of them decides the fake source again
CONSUMERS = ("apt_core/experiments/pipeline.py", "apt_core/experiments/preparation.py", "apt_core/experiments/engine.py",
             "apt_core/experiments/detection_run.py", "apt_core/experiments/grid.py", "apt_core/benchmarks/stages.py")


def _source_tests(path: Path) -> list[str]:
    """Comparisons that decide a fake source: ``X.poison_file is [not] None`` or ``X.attack ==/!= "none"``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            attrs = {n.attr for n in operands if isinstance(n, ast.Attribute)}
            consts = [n.value for n in operands if isinstance(n, ast.Constant)]
            if ("poison_file" in attrs and None in consts) or ("attack" in attrs and "none" in consts):
                out.append(f"{path.name}:{node.lineno}")
    return out


def test_the_checker_finds_a_source_test(tmp_path):
    code = tmp_path / "m.py"
    code.write_text("def f(s):\n    return s.poison_file is None or s.attack != 'none'\n")
    assert _source_tests(code) == ["m.py:2", "m.py:2"]


def test_the_fake_source_is_decided_only_in_the_plan():
    found = [hit for rel in CONSUMERS for hit in _source_tests(ROOT / rel)]
    assert not found, f"decide the fake source with apt_core.experiments.plan.fake_source, not here: {found}"


def test_one_defense_context_builder():
    """Outside the defenses package, only pipeline.defense_context constructs a DefenseContext."""
    calls = []
    for path in sorted((ROOT / "apt_core").rglob("*.py")):
        if "defenses" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "DefenseContext":
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(calls) == 1 and calls[0].startswith("apt_core/experiments/pipeline.py"), calls
