"""Scenario runs: JSON contract, per-seed metrics, significance, result tables and figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from apt_core import defenses
from apt_core.defenses.at import AdversarialTraining
from apt_core.defenses.base import Defense, DefenseResult
from apt_core.experiments.pipeline import Scenario, run_scenario
from apt_core.models.mf import MFTrainer
from apt_core.plots.results import format_results_table, rank_shift_boxplot, rank_shift_frame, results_table

CONTRACT_ROW_KEYS = {"phase", "target_hr", "target_hr_sd", "test_hr", "test_hr_sd", "ri", "rank_shift_median", "seconds"}


class ShortMF(Defense):
    """Test stand-in registered as 'apt': plain MF trained for one epoch (a different model)."""

    name = "apt"
    summary = "test stand-in"

    def __init__(self, erm_fraction: float | None = None, erm_stats: str = "observed", preset: str = "paper"):
        self.erm_fraction = erm_fraction
        self.erm_stats = erm_stats
        self.preset = preset

    def fit(self, train, context):
        trainer = MFTrainer(train.n_users, train.n_items, context.mf_config, context.device, context.random_state + 100)
        trainer.train_epochs(*trainer.tensors(train), 1)
        return DefenseResult(trainer.model(), {"influence": np.arange(3.0), "note": "stand-in", "unstorable": object()})


@pytest.fixture(scope="module")
def result():
    mp = pytest.MonkeyPatch()
    mp.setitem(defenses.DEFENSES, "apt", ShortMF)
    try:
        yield run_scenario(Scenario(dataset="sample", epochs=3, seeds=3, defenses=("none", "apt")))
    finally:
        mp.undo()


def test_json_contract_and_extras(result):
    out = json.loads(json.dumps(result.to_json(), allow_nan=False))  # strict JSON: no NaN or Infinity
    assert {"config", "dataset", "targets", "rows"} <= set(out)
    assert set(out["dataset"]) >= {"name", "n_users", "n_items", "n_ratings"}
    assert [r["phase"] for r in out["rows"]] == ["origin", "attack", "none", "apt", "popularity"]
    for row in out["rows"]:
        assert CONTRACT_ROW_KEYS <= set(row)
    assert out["rows"][0]["ri"] is None and out["rows"][1]["ri"] is None
    assert len(out["per_seed"]) == 4 * 3 and {r["seed"] for r in out["per_seed"]} == {0, 1, 2}
    assert out["significance"]["method"] == "apt" and out["significance"]["baseline"] == "none"
    assert out["significance"]["n"] == 3 and out["significance"]["test"] in ("t-test", "sign-flip")
    assert out["scenario_key"] == result.scenario.key("cpu")
    assert out["wall_seconds"] > 0 and out["cache"] == {"hits": 0, "misses": 0}


def test_popularity_row_is_the_clean_popularity_ranking(result):
    from apt_core.evaluation.metrics import evaluate
    from apt_core.models import fit_popularity

    pop = result.rows()[-1]
    assert pop["phase"] == "popularity"
    assert pop["ri"] is None and pop["rank_shift_median"] is None and pop["seconds"] is None
    ev = evaluate(fit_popularity(result.split.train), result.split, result.targets, result.scenario.k)
    assert pop["target_hr"] == ev.target_hr and pop["test_hr"] == ev.test_hr and pop["target_hr_sd"] == 0.0
    # A yardstick, not a method: not in per_seed, never a significance baseline.
    assert "popularity" not in {m["phase"] for m in result.to_json()["per_seed"]}
    assert "popularity" not in result.per_phase()


def test_popularity_row_ignores_the_attack():
    from apt_core.attacks import attack_names

    attack = [a for a in attack_names() if a != "none"][0]
    clean = run_scenario(Scenario(dataset="sample", epochs=2, targets="unpopular", device="cpu"))
    attacked = run_scenario(Scenario(dataset="sample", epochs=2, targets="unpopular", attack=attack, attack_size=0.2, device="cpu"))
    assert attacked.rows()[-1] == clean.rows()[-1]
    assert [r["phase"] for r in attacked.rows()][:2] == ["origin", "attack"]


def test_rows_are_mean_and_sample_sd_of_per_seed_values(result):
    row = result.rows()[3]
    per = [m for m in result.to_json()["per_seed"] if m["phase"] == "apt"]
    vals = [m["target_hr"] for m in per]
    assert row["target_hr"] == pytest.approx(np.mean(vals))
    assert row["target_hr_sd"] == pytest.approx(np.std(vals, ddof=1))


def test_diagnostics_stay_on_the_result_not_in_json(result):
    diag = result.phase("apt").diagnostics
    assert len(diag) == 3 and diag[0]["note"] == "stand-in"
    assert "diagnostics" not in json.dumps(result.to_json())


def test_results_table(result):
    table = results_table(result)
    assert list(table["phase"]) == ["origin", "attack", "none", "apt", "popularity"]  # the dashboard's table
    assert table["label"].iloc[-1] == "popularity (clean data, no MF)"
    assert {"target_hr", "target_hr_sd", "test_hr", "test_hr_sd", "ri", "rank_shift_median", "seconds", "stars", "p_value"} <= set(table.columns)
    sig = result.significance()
    apt = table.set_index("phase").loc["apt"]
    assert apt["stars"] == sig.marker and apt["baseline"] == "none"
    assert (table["n_seeds"] == 3).all()
    text = format_results_table(table)
    assert "±" in text.loc[3, "target HR"] and len(text) == 5
    assert text.loc[4, "RI"] == "–" and text.loc[4, "targets' median rank gain"] == "–"


def test_rank_shift_frame_matches_evaluations(result):
    frame = rank_shift_frame(result)
    assert list(frame.columns) == ["phase", "seed", "user", "target", "rank_before", "rank_after", "rank_shift"]
    assert (frame.loc[frame["phase"] == "origin", "rank_shift"] == 0).all()
    apt = frame[(frame["phase"] == "apt") & (frame["seed"] == 1)]
    assert np.array_equal(np.sort(apt["rank_shift"].to_numpy()), np.sort(result.phase("apt").rank_shifts[1]))
    assert set(apt["target"]) <= set(result.data.item_ids[result.targets].tolist())  # the data set's own ids
    fig = rank_shift_boxplot(frame)
    names = [t.name.replace("<br>", " ") for t in fig.data]  # long category names wrap instead of rotating
    assert names == ["attack (no defense)", "APT"]  # origin hidden (zero), 'none' == attack hidden
    assert fig.layout.title.text and fig.layout.yaxis.title.text and fig.layout.xaxis.title.text and fig.layout.showlegend


def test_seeds_change_models_but_not_split_or_targets():
    a = run_scenario(Scenario(dataset="sample", epochs=2, seeds=2))
    b = run_scenario(Scenario(dataset="sample", epochs=2, seeds=1, seed=0))
    assert np.array_equal(a.targets, b.targets)
    assert a.phase("origin").target_hr[0] == b.phase("origin").target_hr[0]
    assert a.phase("origin").test_hr[0] != a.phase("origin").test_hr[1] or a.phase("origin").target_hr[0] != a.phase("origin").target_hr[1]


class NaNScoresAT(AdversarialTraining):
    """Test stand-in for 'at': training 'succeeds' but the model's scores are NaN."""

    def fit(self, train, context):
        trainer = MFTrainer(train.n_users, train.n_items, context.mf_config, context.device, context.random_state)
        model = trainer.model()
        model.Q[0] = float("nan")  # one item's factor: every user's score for it is NaN
        return DefenseResult(model, {})


def test_nan_scores_stop_the_run_and_name_the_phase(monkeypatch):
    # The old ranking put NaN first: this 'at' model scored target HR = test HR = 1.0.
    from apt_core.errors import AptError

    monkeypatch.setitem(defenses.DEFENSES, "at", NaNScoresAT)
    with pytest.raises(AptError, match=r"^the 'at' model diverged: its scores contain NaN.*; lower epsilon"):
        run_scenario(Scenario(dataset="sample", attack="random", epochs=2, defenses=("at",)))


def test_diverged_training_names_the_phase(monkeypatch):
    from apt_core.errors import AptError

    def blow_up(self, gP, gQ):  # what a far too large learning rate does to the factors
        self.P.fill_(float("inf"))

    monkeypatch.setattr(MFTrainer, "_adagrad_update", blow_up)
    with pytest.raises(AptError, match=r"^the 'origin' model diverged: its training loss became nan at epoch 1.*learning rate"):
        run_scenario(Scenario(dataset="sample", epochs=2))
