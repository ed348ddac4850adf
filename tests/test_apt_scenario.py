"""Scenario / CLI plumbing of APT's presets (issue 16): the preset's ERM count by default,
an explicit share or count when given, the preset and the solver reach the defense."""
from __future__ import annotations

import pytest

from apt_core.errors import ConfigError
from apt_core.experiments.scenario import Scenario


def test_default_scenario_leaves_the_erm_count_to_the_preset():
    sc = Scenario(defenses=("apt",))
    p = sc.method_params("apt")
    assert p == {"erm_stats": "observed", "preset": "paper"}
    assert "50 on ml-100k" in sc.erm_description()


def test_explicit_settings_reach_the_defenses():
    sc = Scenario(defenses=("apt", "apt-rand"), erm_fraction=0.1, apt_preset="lab-v1", apt_solver="cg")
    assert sc.method_params("apt") == {"erm_stats": "observed", "preset": "lab-v1", "erm_fraction": 0.1, "solver": "cg"}
    assert sc.method_params("apt-rand") == {"erm_stats": "observed", "preset": "lab-v1", "erm_fraction": 0.1}
    assert Scenario(erm_users=7).erm_description() == "7 ERM users"
    assert Scenario(erm_users=7).method_params("apt")["erm_users"] == 7


@pytest.mark.parametrize("bad", [dict(erm_users=3, erm_fraction=0.1), dict(erm_users=-1), dict(apt_preset="v0"),
                                 dict(apt_solver="newton"), dict(erm_fraction=2.0), dict(targets="paper-popular")])
def test_bad_apt_settings_raise(bad):
    with pytest.raises(ConfigError):
        Scenario(**bad).validate()


def test_cli_passes_apt_settings(tmp_path, monkeypatch, capsys):
    import json

    from apt_core.cli import main

    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path))
    assert main(["run", "--dataset", "sample", "--epochs", "2", "--defense", "apt", "--erm-users", "4",
                 "--apt-preset", "lab-v1", "--apt-solver", "identity", "--no-history", "--json"]) == 0
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert (cfg["erm_users"], cfg["erm_fraction"], cfg["apt_preset"], cfg["apt_solver"]) == (4, None, "lab-v1", "identity")
