"""Sweeps as tidy tables, and their figures."""
from __future__ import annotations

import pandas as pd
import pytest

from apt_core.errors import CancelledError, ConfigError
from apt_core.experiments.pipeline import Scenario
from apt_core.plots.results import sweep_figure, sweep_summary
from apt_core.experiments.sweeps import sweep

BASE = Scenario(dataset="sample", epochs=2, seeds=2)


def test_sweep_is_tidy():
    seen = []
    frame = sweep(BASE, "epochs", [1, 2], progress=lambda f, s: seen.append(f))
    assert list(frame.columns[:3]) == ["parameter", "value", "epochs"]
    assert {"phase", "seed", "target_hr", "test_hr", "ri"} <= set(frame.columns)
    assert len(frame) == 2 * 3 * 2  # values x phases (origin, attack, none) x seeds
    assert set(frame["value"]) == {1, 2} and (frame["value"] == frame["epochs"]).all()
    assert frame["ri"].isna().all()  # no attack: RI undefined
    # ... and the frame says why, under the result rows' rule: nothing was lifted for the defense to undo.
    assert set(frame.loc[frame["phase"].isin(["origin", "attack"]), "ri_undefined_reason"]) == {"not-a-defense"}
    defended = frame[frame["phase"] == "none"]
    assert set(defended["ri_undefined_reason"]) <= {"attack-did-not-lift", "lift-below-floor", "lift-within-noise"}
    assert (defended["below_clean"] >= 0).all() and set(defended["ri_note"]) <= {"attack did not lift", "lift < 0.01", "lift within seed noise"}
    assert seen and max(seen) == 1.0 and seen == sorted(seen)


def test_sweep_validates_before_training():
    with pytest.raises(ConfigError, match="cannot sweep"):
        sweep(BASE, "colour", [1])
    with pytest.raises(ConfigError, match="epochs"):
        sweep(BASE, "epochs", [2, 0])
    with pytest.raises(ConfigError):
        sweep(BASE, "epochs", [])


def test_sweep_can_be_cancelled():
    with pytest.raises(CancelledError):
        sweep(BASE, "epochs", [1, 2], progress=lambda f, s: f < 0.5)


def test_sweep_figure_mean_and_sd_per_phase():
    frame = pd.DataFrame({
        "parameter": "attack_size", "value": [0.01, 0.01, 0.03, 0.03] * 2, "attack_size": [0.01, 0.01, 0.03, 0.03] * 2,
        "phase": ["attack"] * 4 + ["apt"] * 4, "seed": [0, 1] * 4,
        "target_hr": [0.2, 0.4, 0.6, 0.8, 0.0, 0.1, 0.1, 0.1],
    })
    summary = sweep_summary(frame, "attack_size")
    att = summary[summary["phase"] == "attack"].sort_values("attack_size")
    assert att["mean"].tolist() == pytest.approx([0.3, 0.7])
    assert att["sd"].tolist() == pytest.approx([0.1414214, 0.1414214])
    fig = sweep_figure(frame, x="attack_size")
    assert [t.name for t in fig.data] == ["attack (no defense)", "APT"]
    assert list(fig.data[0].x) == pytest.approx([1.0, 3.0])  # shown in percent
    assert "%" in fig.layout.xaxis.title.text and fig.layout.yaxis.title.text.startswith("target HR")
    assert fig.layout.title.text and fig.layout.showlegend
    same = sweep_figure(frame, x="value", title="Fig. 2")
    assert same.layout.title.text == "Fig. 2" and "%" in same.layout.xaxis.title.text
    with pytest.raises(KeyError):
        sweep_figure(frame, x="nope")


def test_ri_sweep_figure_marks_full_repair_and_no_effect():
    frame = pd.DataFrame({"phase": ["apt", "apt", "apt", "apt"], "attack_size": [0.01, 0.01, 0.03, 0.03],
                          "ri": [0.5, 0.7, 1.2, 1.4]})
    fig = sweep_figure(frame, "attack_size", "ri")
    levels = sorted(shape.y0 for shape in fig.layout.shapes)
    assert levels == [0.0, 1.0]  # 1: attack undone (above: over-correction), 0: no better than no defense
    assert any("over-correction" in a.text for a in fig.layout.annotations)
    assert len(sweep_figure(frame.rename(columns={"ri": "target_hr"}), "attack_size", "target_hr").layout.shapes) == 0
