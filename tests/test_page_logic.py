"""The computations the pages used to hold, now in apt_core (pages call them and draw the result)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apt_core.errors import ConfigError
from apt_core.plots.explore import influence_rounds, influence_target_ranks
from apt_core.plots.history import readable_runs, result_rows, run_summary
from apt_core.theory.bounds import BOUND_METHODS, PaperParams, bound_curves
from apt_core.theory.simulation import METHODS, TheoryParams, curves_over


def _runs() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["r2", "r1"], "created_at": ["2026-01-02T10:00:00.123", "2026-01-01T09:00:00"],
        "label": ["dashboard:defense?seed=3", None], "dataset": ["sample", "sample"],
        "attack": ["average", "file"], "attack_size": [0.03, None], "targets": ["unpopular", "1,2"],
        "defenses": ["apt,at", "none"], "erm_fraction": [0.05, None], "erm_stats": ["observed", "observed"],
        "seeds": [1, 2], "wall_seconds": [12.345, 3.0],
    })


def test_run_list_in_words_numbers_runs_oldest_first_and_links_dashboard_runs_back():
    table = readable_runs(_runs())
    assert list(table["#"]) == [2, 1]
    assert list(table["from"]) == ["defense", "command line"]
    assert table["reopen"].iloc[0] == "./defense?seed=3" and pd.isna(table["reopen"].iloc[1])
    assert table["when (UTC)"].iloc[0] == "2026-01-02 10:00:00"
    assert "3% fake users" in table["what ran"].iloc[0] and "5% ERM users" in table["what ran"].iloc[0]
    assert run_summary(_runs().iloc[1]) == "fake users from a poison file on 1,2 targets"


def test_result_rows_are_named_by_run_and_attack():
    payload = {"rows": [{"phase": "attack", "seed": 0, "target_hr": 0.2}], "config": {"attack": "average"}}
    rows = result_rows(payload, "run 1")
    assert list(rows.columns[:2]) == ["run", "attack"] and "seed" not in rows.columns
    assert rows["attack"].iloc[0] == "average" and rows["run"].iloc[0] == "run 1"


def test_influence_ranks_count_from_the_most_negative_entry():
    rounds = influence_rounds({"rounds": [{"influence": [0.5, -1.0, 0.0]}, {"influence": None}, "junk", {"influence": [-2.0, 1.0, -3.0]}]})
    assert len(rounds) == 2
    assert influence_target_ranks(rounds, [1, 2]) == [[0, 1], [2, 0]]


def test_theory_curves_cover_the_axis():
    values, bounds, sims = curves_over(TheoryParams(), "n_erm", 0, 300, n_points=7, n_trials=0)
    assert values.dtype.kind == "i" and values[0] == 0 and values[-1] == 300 and sims is None
    assert set(bounds) == set(METHODS) and all(len(b) == len(values) for b in bounds.values())
    values, bounds, sims, alpha, tau = bound_curves(PaperParams(), "eps", n_trials=1)
    assert len(values) == 9 and values[0] == 0 and set(sims) == set(BOUND_METHODS) and alpha > 0 and tau > 0
    with pytest.raises(ConfigError):
        bound_curves(PaperParams(), "sigma")
    assert np.all(np.diff(bound_curves(PaperParams(), "n_star")[1]["apt"]) >= 0)  # more ERM users tolerate more
