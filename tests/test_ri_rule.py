"""RI only where the attack lifted target HR beyond noise, and over-correction said as such (issues 20 and 21).

The rule (apt_core.evaluation.metrics): RI needs a lift (attack HR - origin HR) of at least
MIN_RI_LIFT and, with two seeds or more, a mean lift above RI_LIFT_SD_MULTIPLE sds of the
per-seed lifts.  The same rule holds for the result rows, the per-seed values (JSON, sweeps,
history), the CLI's text table and the dashboard's tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apt_core.evaluation.metrics import (
    MIN_RI_LIFT,
    RI_LIFT_SD_MULTIPLE,
    RI_RULE,
    RI_UNDEFINED_REASONS,
    assess_ri,
    lift_spread,
    ri_note,
    ri_undefined_reason,
    robustness_improvement,
)
from apt_core.experiments.results import PhaseResult, ScenarioResult
from apt_core.experiments.scenario import Scenario


def test_reviewers_example_has_no_ri():
    # The attack lowered HR (0.020 -> 0.019): the old formula gave 11.0.
    assert robustness_improvement(0.030, 0.020, 0.019) is None
    assert ri_undefined_reason(0.020, 0.019) == "attack-did-not-lift"
    assert assess_ri(0.030, 0.020, 0.019).reason == "attack-did-not-lift"


def test_absolute_floor():
    below = MIN_RI_LIFT / 2
    assert robustness_improvement(0.02, 0.02, 0.02 + below) is None
    assert ri_undefined_reason(0.02, 0.02 + below) == "lift-below-floor"
    # At the floor RI exists and is the plain formula.
    assert robustness_improvement(0.02, 0.02, 0.02 + MIN_RI_LIFT) == pytest.approx(1.0)
    assert robustness_improvement(0.1, 0.0, 0.5) == pytest.approx(0.8)
    assert robustness_improvement(0.5, 0.0, 0.5) == pytest.approx(0.0)
    assert robustness_improvement(float("nan"), 0.0, 0.5) is None
    assert ri_undefined_reason(float("nan"), 0.5) == "hr-undefined"


def test_seed_spread_rule():
    lift = 0.2
    noisy = lift / RI_LIFT_SD_MULTIPLE * 1.5  # the lift is smaller than the stated multiple of its spread
    quiet = lift / RI_LIFT_SD_MULTIPLE * 0.5
    assert robustness_improvement(0.1, 0.0, lift, lift_sd=noisy) is None
    assert ri_undefined_reason(0.0, lift, noisy) == "lift-within-noise"
    assert robustness_improvement(0.1, 0.0, lift, lift_sd=quiet) == pytest.approx(0.5)
    assert lift_spread([0.0, 0.0], [0.1, 0.3]) == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert lift_spread([0.0], [0.1]) is None  # one seed: no spread to measure


def test_over_correction_fields_and_notes():
    r = assess_ri(0.01, 0.05, 0.15)  # defended HR below the clean level
    assert r.ri == pytest.approx(1.4) and r.reason is None
    assert r.over_correction
    assert r.below_clean == pytest.approx(0.04) and r.below_clean_share == pytest.approx(0.8)
    assert ri_note(r.ri, r.reason) == "over-correction"
    assert ri_note(-0.5, None) == "worse than no defense"
    assert ri_note(0.5, None) == ""
    fine = assess_ri(0.08, 0.05, 0.15)
    assert not fine.over_correction and fine.below_clean == 0.0
    # below_clean is measured also where RI is undefined; no share of a clean HR of 0.
    lowered = assess_ri(0.0, 0.0, 0.0)
    assert lowered.ri is None and lowered.below_clean == 0.0 and lowered.below_clean_share is None
    row = r.to_row()
    assert row["over_correction"] is True and row["ri_note"] == "over-correction" and row["ri_undefined_reason"] is None


def test_rule_text_states_the_thresholds():
    assert str(MIN_RI_LIFT) in RI_RULE and "sd of the per-seed lifts" in RI_RULE and "over-correction" in RI_RULE
    assert set(RI_UNDEFINED_REASONS) >= {"attack-did-not-lift", "lift-below-floor", "lift-within-noise"}


def _phase(name: str, target_hr: list[float]) -> PhaseResult:
    n = len(target_hr)
    return PhaseResult(name, target_hr=list(target_hr), test_hr=[0.2] * n, seconds=[1.0] * n,
                       rank_shifts=[np.zeros(3)] * n, prediction_shift=[0.0] * n)


def _result(origin: list[float], attack: list[float], **defenses: list[float]) -> ScenarioResult:
    phases = [_phase("origin", origin), _phase("attack", attack), *(_phase(k.replace("_", "-"), v) for k, v in defenses.items())]
    return ScenarioResult(Scenario(dataset="sample", seeds=len(origin)), None, None, np.array([0]), phases, [], "cpu")


def _by_phase(result: ScenarioResult) -> dict:
    return {r["phase"]: r for r in result.rows()}


def test_rows_and_seeds_follow_one_rule_when_the_attack_lowers_hr():
    result = _result([0.10, 0.12], [0.08, 0.09], apt=[0.03, 0.05], pcmf=[0.2, 0.2])
    rows = _by_phase(result)
    for name in ("apt", "pcmf"):
        assert rows[name]["ri"] is None and rows[name]["ri_undefined_reason"] == "attack-did-not-lift"
    assert rows["apt"]["below_clean"] == pytest.approx(0.07) and rows["apt"]["over_correction"] is False
    assert rows["origin"]["ri_undefined_reason"] == "not-a-defense" and rows["origin"]["below_clean"] is None
    assert all(d.ri is None for d in result.per_seed_ri())
    assert all(m[4] is None for m in result.per_seed_metrics())


def test_lift_within_seed_noise_removes_every_seeds_ri():
    # Mean lift 0.07 (above the floor), but the per-seed lifts 0.2, 0.01, 0.0 spread wider than that.
    result = _result([0.1, 0.1, 0.1], [0.3, 0.11, 0.1], apt=[0.1, 0.1, 0.1])
    assert _by_phase(result)["apt"]["ri_undefined_reason"] == "lift-within-noise"
    seeds = [d for d, m in zip(result.per_seed_ri(), result.per_seed_metrics()) if m[0] == "apt"]
    # Seeds 0 and 1 alone would have an RI of 1.0; seed 2 did not lift at all, and says so.
    assert [d.reason for d in seeds] == ["lift-within-noise", "lift-within-noise", "attack-did-not-lift"]
    assert all(d.ri is None for d in seeds)


def test_a_seed_without_its_own_lift_has_no_ri():
    result = _result([0.1, 0.1, 0.1], [0.3, 0.32, 0.1], apt=[0.1, 0.1, 0.1])
    rows = _by_phase(result)
    assert rows["apt"]["ri"] is not None  # lift 0.14 against a spread of 0.12
    seeds = [(m[4], d.reason) for d, m in zip(result.per_seed_ri(), result.per_seed_metrics()) if m[0] == "apt"]
    assert seeds[0][0] == pytest.approx(1.0) and seeds[1][0] == pytest.approx(1.0)
    assert seeds[2] == (None, "attack-did-not-lift")


def test_over_correction_in_rows_json_and_tables():
    from apt_core.plots.results import format_results_table, results_table

    result = _result([0.05, 0.05], [0.25, 0.27], apt=[0.01, 0.01], pcmf=[0.2, 0.21])
    rows = _by_phase(result)
    assert rows["apt"]["ri"] > 1 and rows["apt"]["over_correction"] is True
    assert rows["apt"]["ri_note"] == "over-correction"
    assert rows["apt"]["below_clean"] == pytest.approx(0.04) and rows["apt"]["below_clean_share"] == pytest.approx(0.8)
    assert rows["pcmf"]["over_correction"] is False and rows["pcmf"]["below_clean"] == 0.0
    shown = format_results_table(results_table(result)).set_index("phase")
    assert shown.loc["APT", "RI"].endswith("(over-correction)")
    assert shown.loc["APT", "below clean"].startswith("0.0400") and "80% of clean" in shown.loc["APT", "below clean"]
    assert shown.loc["PCMF", "RI"] == f"{rows['pcmf']['ri']:.3f}"
    assert shown.loc["origin (clean data)", "below clean"] == "–"


def test_cli_table_labels_over_correction_and_states_the_rule():
    from apt_core.cli import format_rows

    over = _by_phase(_result([0.05], [0.25], apt=[0.01]))
    text = format_rows(list(over.values()))
    apt_line = next(line for line in text.splitlines() if line.startswith("apt "))
    assert apt_line.rstrip().endswith("over-correction: 80% below the clean HR") and "0.0400" in apt_line
    assert "over-correction: RI above 1" in text
    lowered = _by_phase(_result([0.05], [0.04], apt=[0.01]))
    text = format_rows(list(lowered.values()))
    apt_line = next(line for line in text.splitlines() if line.startswith("apt "))
    assert "attack did not lift" in apt_line
    assert RI_RULE in text  # the legend is the rule the numbers follow


def test_reproduce_tables_and_report_follow_the_rule():
    from types import SimpleNamespace

    from apt_core.reporting.report import apt_ri_summary, results_table, table_markdown

    lowered = _result([0.10], [0.05], pcmf=[0.2], apt=[0.03])
    over = _result([0.05], [0.25], pcmf=[0.2], apt=[0.01])
    for res in (lowered, over):
        res.data = SimpleNamespace(name="sample")
    results = {("random", "average"): over, ("random", "random"): lowered}
    table = results_table(results, SimpleNamespace(dataset="sample"), "target_hr")
    cell = table[(table["attack"] == "random") & (table["phase"] == "apt")].iloc[0]
    assert pd.isna(cell["ri"]) and cell["ri_undefined_reason"] == "attack-did-not-lift"
    md = table_markdown(table, "Target HR@50")
    random_line = next(line for line in md.splitlines() if line.startswith("| Random"))
    average_line = next(line for line in md.splitlines() if line.startswith("| Average"))
    assert random_line.endswith("| – (attack did not lift) |")
    assert average_line.endswith("(over-correction) |")
    assert "Below the clean level" in md and "apt on Average 0.0400 (80% of clean)" in md
    assert RI_RULE in md
    summary = apt_ri_summary([r.row(r_origin, r_attack) for res in results.values()
                              for r_origin, r_attack in [(res.phase("origin"), res.phase("attack"))]
                              for r in res.phases if r.phase == "apt"])
    assert "over-correction" in summary and "No RI in 1 cell(s)" in summary


def test_page_wording_comes_from_one_place():
    from apt_core.plots.results import RI_GLOSSARY, ri_phrase, undefined_ri_message

    assert ri_phrase({"ri": 1.4, "below_clean": 0.04}) == "RI 1.40: over-correction, target HR 0.040 below its clean level"
    assert ri_phrase({"ri": -0.3}) == "RI -0.30: worse than no defense"
    assert ri_phrase({"ri": None, "ri_undefined_reason": "attack-did-not-lift"}) == "no RI: " + RI_UNDEFINED_REASONS["attack-did-not-lift"]
    assert ri_phrase({"ri": 0.5}, explain=True).startswith("RI 0.50; 1 = attack fully undone")
    message = undefined_ri_message(["lift-within-noise", "lift-within-noise", "not-a-defense", None])
    assert RI_UNDEFINED_REASONS["lift-within-noise"] in message and "not-a-defense" not in message
    assert "no defense ran" in undefined_ri_message(["not-a-defense"])
    assert "over-correction" in RI_GLOSSARY and str(MIN_RI_LIFT) in RI_GLOSSARY
