"""APT with too few epochs for its schedule says so, and reproduce --quick uses a schedule where APT acts."""
from __future__ import annotations

import pytest

from apt_core.errors import AptWarning
from apt_core.experiments.pipeline import Scenario, run_scenario
from apt_core.reporting.reproduce import ReproduceConfig, _scenario


def test_apt_within_t_pre_warns_and_names_t_pre():
    scenario = Scenario(dataset="sample", attack="average", defenses=("apt",), epochs=3, seeds=1,
                        params={"apt.solver": "identity"})
    with pytest.warns(AptWarning, match=r"apt: 3 training epochs <= T_pre = 15.*plain MF"):
        result = run_scenario(scenario)
    assert result.phase("apt").target_hr == pytest.approx(result.phase("attack").target_hr)


def test_quick_reproduce_gives_apt_a_schedule_that_acts():
    cfg = ReproduceConfig.quick_config()
    scenario = _scenario(cfg, "average", "unpopular", ("at", "apt", "apt-rand"), 1)
    assert scenario.method_params("apt")["t_pre"] < cfg.epochs
    assert scenario.method_params("apt-rand")["t_pre"] < cfg.epochs
    assert "at.t_pre" not in dict(scenario.params)  # AT has no schedule: nothing is passed to it
    scenario.validate()
