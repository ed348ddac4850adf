"""Declared parameters end to end: Scenario.params, the cache keys, the history, --param, params NAME, sweep."""
from __future__ import annotations

import json

import pytest

from apt_core.cli import build_parser, main
from apt_core.errors import ConfigError
from apt_core.experiments.scenario import Scenario


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "hist.sqlite"))
    return tmp_path


#: APT on the sample data regenerates its ERM users at epochs 2 and 4 with t_pre 2, t_inter 2
APT_RUN = ["run", "--dataset", "sample", "--attack", "average", "--defense", "apt", "--epochs", "5",
           "--param", "apt.t_pre=2", "--param", "apt.m_star=20", "--json"]


def _run(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_param_changes_the_result_and_is_cached_separately(dirs, capsys):
    default = _run(capsys, *APT_RUN)
    lifted = _run(capsys, *APT_RUN, "--param", "apt.r_plus=0.0")
    assert default["config"]["params"] == {"apt.m_star": 20, "apt.t_pre": 2}
    assert lifted["config"]["params"] == {"apt.m_star": 20, "apt.r_plus": 0.0, "apt.t_pre": 2}
    assert lifted["scenario_key"] != default["scenario_key"]
    apt_default = next(r for r in default["rows"] if r["phase"] == "apt")
    apt_lifted = next(r for r in lifted["rows"] if r["phase"] == "apt")
    # Same clean and attacked models (cache hits), a new APT model: r+ = 0 vs the data set's 0.2.
    assert lifted["cache"]["misses"] > 0
    assert (apt_default["target_hr"], apt_default["test_hr"]) != (apt_lifted["target_hr"], apt_lifted["test_hr"])
    # Repeating either run is answered from the cache, each with its own numbers.
    again = _run(capsys, *APT_RUN, "--param", "apt.r_plus=0.0")
    assert again["cache"]["misses"] == 0 and again["rows"] == lifted["rows"]
    assert _run(capsys, *APT_RUN)["rows"] == default["rows"]
    # The history records the parameters with each run.
    assert main(["history", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert main(["history", "--show", runs[0]["run_id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["params"] == {"apt.m_star": 20, "apt.t_pre": 2}


def test_attack_parameters_reach_the_attack(dirs, capsys):
    base = ["run", "--dataset", "sample", "--attack", "bandwagon", "--epochs", "2", "--json", "--no-history"]
    a = _run(capsys, *base)
    b = _run(capsys, *base, "--param", "bandwagon.popular_fraction=1.0")
    assert b["cache"]["misses"] > 0, "a new attack parameter must not be answered from the cache"
    assert b["config"]["params"] == {"bandwagon.popular_fraction": 1.0}
    assert a["rows"][1] != b["rows"][1]


@pytest.mark.parametrize("param,message", [
    ("apt.r_plus=2", "apt.r_plus must be a number in \\[-1, 1\\]"),
    ("apt.r_plus=high", "apt.r_plus must be"),
    ("apt.no_such=1", "apt has no parameter 'no_such'"),
    ("magic.x=1", "unknown attack, defense or detector 'magic'"),
    ("cogroup.rank=2", "'cogroup' is neither the attack nor a defense"),
    ("pga.iterations=3", "'pga' is neither the attack nor a defense"),
    ("apt.r_plus", "NAME.PARAM=VALUE"),
])
def test_bad_param_is_a_one_line_error(param, message, dirs, capsys):
    assert main(["run", "--dataset", "sample", "--defense", "apt", "--param", param, "--no-cache", "--no-history"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


def test_run_help_mentions_param(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    out = capsys.readouterr().out
    assert "--param NAME.PARAM=VALUE" in out and "apt.r_plus" in out


def test_params_subcommand_lists_declarations(capsys):
    assert main(["params", "apt"]) == 0
    out = capsys.readouterr().out
    assert "r_plus" in out and "0.25 FilmTrust" in out and "a number in [-1, 1] or None" in out
    assert main(["params", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.detection import DETECTORS

    assert set(listing) == set(ATTACKS) | set(DEFENSES) | set(DETECTORS)
    assert listing["cogroup"]["kind"] == "detector" and "rank" in [p["name"] for p in listing["cogroup"]["params"]]
    assert [p["name"] for p in listing["pga"]["params"]] == [p.name for p in ATTACKS["pga"].params]
    assert main(["params", "nonsense"]) == 2


def test_sweep_over_a_declared_parameter_from_the_cli(dirs, capsys):
    argv = ["sweep", "--dataset", "sample", "--attack", "average", "--defense", "apt", "--epochs", "5",
            "--param", "apt.t_pre=2", "--param", "apt.m_star=20", "--param", "apt.r_plus", "--values", "0,0.2", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["value"] for r in rows} == {0.0, 0.2}
    apt = {r["value"]: r["target_hr"] for r in rows if r["phase"] == "apt"}
    attack = {r["value"]: r["target_hr"] for r in rows if r["phase"] == "attack"}
    assert attack[0.0] == attack[0.2], "only the swept parameter changes"
    assert apt[0.0] != apt[0.2]
    assert main(["sweep", "--dataset", "sample", "--defense", "apt", "--param", "apt.r_plus", "--values", "0,5"]) == 2
    assert "apt.r_plus must be" in capsys.readouterr().err


def test_scenario_params_normalised_validated_and_in_the_key():
    a = Scenario(defenses=("apt",), params={"APT.r_plus": 0.1})
    assert a.params == (("apt.r_plus", 0.1),) and a.method_params("apt")["r_plus"] == 0.1
    assert a.key("cpu") != Scenario(defenses=("apt",)).key("cpu")
    assert a.key("cpu") == Scenario(defenses=("apt",), params=[("apt.r_plus", 0.1)]).key("cpu")
    with pytest.raises(ConfigError, match="apt.r_plus"):
        Scenario(defenses=("apt",), params={"apt.r_plus": 3.0}).validate()
    # shorthands apply to every method declaring the parameter; an explicit entry wins
    s = Scenario(defenses=("apt", "apt-rand"), erm_stats="clean", apt_solver="identity", params={"apt.erm_stats": "robust"})
    assert s.method_params("apt")["erm_stats"] == "robust" and s.method_params("apt-rand")["erm_stats"] == "clean"
    assert "solver" not in s.method_params("apt-rand") and s.method_params("apt")["solver"] == "identity"
    assert Scenario(defenses=("apt",), params={"apt.erm_users": 12}).erm_description() == "12 ERM users"


def test_a_registered_defense_gets_its_parameters(monkeypatch):
    """No per-defense plumbing: a new defense's declared parameters reach it through Scenario.params."""
    from apt_core import defenses
    from apt_core.defenses.base import Param
    from apt_core.defenses.none import NoDefense

    class Shrunk(NoDefense):
        name = "shrunk-test"
        params = (Param("strength", float, 1.0, "test parameter", low=0.0),)

        def __init__(self, strength: float = 1.0):
            self._set_declared(locals())

    monkeypatch.setitem(defenses.DEFENSES, Shrunk.name, Shrunk)
    s = Scenario(defenses=("shrunk-test",), params={"shrunk-test.strength": 0.5})
    s.validate()
    assert s.method_params("shrunk-test") == {"strength": 0.5}
    with pytest.raises(ConfigError, match="shrunk-test.strength"):
        Scenario(defenses=("shrunk-test",), params={"shrunk-test.strength": -1.0}).validate()


def test_attack_result_is_cached_whole(tmp_path):
    """PGA's per-run history comes back with the profiles on a cache hit (it used to live on the attack object)."""
    from apt_core.storage.cache import ArtifactCache
    from apt_core.experiments.pipeline import run_scenario

    cache = ArtifactCache(tmp_path / "c")
    s = Scenario(dataset="sample", attack="pga", epochs=2, params={"pga.iterations": 3, "pga.mf_epochs": 2})
    first = run_scenario(s, cache=cache)
    second = run_scenario(s, cache=cache)
    d1, d2 = first.phases[1].diagnostics[0], second.phases[1].diagnostics[0]
    assert first.phases[1].phase == "attack" and second.phases[1].from_cache[0]
    assert len(d1["objective_history"]) == 3 + 1 and d2["objective_history"] == d1["objective_history"]
    other = run_scenario(Scenario(dataset="sample", attack="pga", epochs=2, params={"pga.iterations": 2, "pga.mf_epochs": 2}), cache=cache)
    assert len(other.phases[1].diagnostics[0]["objective_history"]) == 2 + 1, "another parameter value is another cache entry"


def test_attack_run_returns_profiles_and_diagnostics(tiny):
    from apt_core.attacks import make_attack
    from apt_core.attacks.base import AttackResult

    for name in ("pga", "tna", "aush", "average"):
        params = {"aush": {"epochs": 2}, "pga": {"iterations": 2, "mf_epochs": 2}, "tna": {"iterations": 2, "mf_epochs": 2}}.get(name, {})
        attack = make_attack(name, **params)
        result = attack.run(tiny, [1, 2], 3, 5, random_state=0)
        assert isinstance(result, AttackResult)
        again = attack.generate(tiny, [1, 2], 3, 5, random_state=0)
        assert (result.profiles.items == again.items).all()
        if name != "average":
            assert result.diagnostics["attack"] == name


def test_shorthands_reach_only_the_methods_declaring_them():
    """apt-trusted has no erm_stats parameter (always 'trusted'): --erm-stats does not reach it, --apt-solver does."""
    s = Scenario(defenses=("apt", "apt-trusted", "at"), erm_stats="clean", apt_solver="identity", erm_users=7)
    assert s.method_params("apt") == {"erm_stats": "clean", "solver": "identity", "erm_users": 7, "preset": "paper"}
    assert s.method_params("apt-trusted") == {"solver": "identity", "erm_users": 7, "preset": "paper"}
    assert s.method_params("at") == {}
    s.validate()
    from apt_core.defenses import make_defense

    trusted = make_defense("apt-trusted", **s.method_params("apt-trusted"))
    assert trusted.erm_stats == "trusted" and trusted.solver == "identity"


def test_detect_takes_detector_parameters(dirs, capsys):
    base = ["detect", "--dataset", "sample", "--attack", "average", "--detectors", "lengthvar", "--json", "--no-cache"]
    mad = _run(capsys, *base, "--param", "lengthvar.cut=mad")
    none = _run(capsys, *base, "--param", "lengthvar.cut=none")
    assert mad["detector_params"] == {"lengthvar": {"cut": "mad"}}
    assert mad["detectors"][0]["n_flagged"] > 0 and none["detectors"][0]["n_flagged"] == 0
    assert main([*base, "--param", "lengthvar.cut=magic"]) == 2
    assert "lengthvar.cut must be one of gap, mad, none" in capsys.readouterr().err
    assert main([*base, "--param", "cogroup.rank=2"]) == 2
    assert "not among the detectors of this run" in capsys.readouterr().err


def test_engine_shares_units_that_declared_parameters_do_not_touch():
    """Two scenarios differing only in apt.r_plus share the clean, profile and attack units, not APT's."""
    from apt_core.experiments.engine import plan_units

    a = Scenario(dataset="sample", attack="average", defenses=("apt", "at"), params={"apt.r_plus": 0.0})
    b = Scenario(dataset="sample", attack="average", defenses=("apt", "at"), params={"apt.r_plus": 0.2})
    units = plan_units([(a, "a"), (b, "b")])
    kinds = sorted(u.unit for u in units)
    assert kinds == ["apt", "apt", "at", "attack", "origin", "profiles"], kinds
    pga = [Scenario(dataset="sample", attack="pga", params={"pga.iterations": n}) for n in (2, 3)]
    kinds = sorted(u.unit for u in plan_units([(s, str(i)) for i, s in enumerate(pga)]))
    assert kinds == ["attack", "attack", "origin", "profiles", "profiles"], kinds
