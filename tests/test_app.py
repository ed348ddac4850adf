"""AppTest checks of every page's logic on the sample data (no browser)."""
from __future__ import annotations

import sys

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest_support import ROOT, TIMEOUT, charts, isolated, no_failures, page, shared_artifacts  # noqa: E402,F401 -- isolated: autouse fixture

def test_page_run_alone_is_sent_through_the_app():
    """A page run without app.py (deep link on a fresh server) asks app.py to open it."""
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=TIMEOUT).run()
    assert at.session_state["_wanted_page"] == "data.py"
    assert not at.metric  # the page body did not run on its own


def test_app_entry_renders_overview_and_sidebar():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_failures(at)
    assert "APT Lab" in at.title[0].value
    assert at.sidebar.selectbox(key="dataset").value == "sample"
    assert any("Device" in c.value for c in at.sidebar.caption)


def test_overview_demo_runs_and_second_render_is_cached():
    at = page("overview").run()
    no_failures(at)
    at.button(key="run-demo").click().run()
    no_failures(at)
    assert len(at.metric) >= 2  # clean and attacked (and defended when a defense exists)
    assert at.metric[0].label == "clean MF"
    assert len(at.dataframe) == 1 and len(charts(at)) == 1
    # Rerun: the result comes from the cache without pressing the button again.
    at.run()
    no_failures(at)
    assert len(at.dataframe) == 1


def test_data_page_sample_statistics():
    at = page("data").run()
    no_failures(at)
    labels = [m.label for m in at.metric]
    assert labels == ["users", "items", "ratings", "density"]
    assert at.metric[0].value == "600"
    assert len(charts(at)) == 3


def test_data_page_missing_real_data_is_a_message(tmp_path):
    at = page("data", dataset="ml-1m", data_dir=str(tmp_path)).run()
    assert not at.exception
    assert at.error and ("ml-1m" in at.error[0].value.lower() or "movielens" in at.error[0].value.lower())


def test_data_page_uploaded_csv(tmp_path):
    from pages._shared.uploads import save_upload

    csv = "user,item,rating\n" + "\n".join(f"{u},{i},{1 + (u * i) % 5}" for u in range(20) for i in range(15) if (u + i) % 3)
    path = save_upload("mine.csv", csv.encode())
    at = page("data", dataset="uploaded CSV", uploaded_path=path).run()
    no_failures(at)
    assert at.metric[0].value == "20"


def test_bad_upload_raises_data_error_with_line():
    from apt_core.errors import DataError
    from pages._shared.uploads import save_upload

    with pytest.raises(DataError) as info:
        save_upload("bad.csv", b"user,item,rating\n1,2,5\n1,x\n")
    assert "bad.csv" in str(info.value)


def test_attack_page_before_after_and_top_k(monkeypatch):
    shared_artifacts(monkeypatch)  # the default attack's fits, shared with the other default-run page tests
    at = page("attack").run()  # on the sample data the page runs without a click (live controls)
    no_failures(at)
    labels = [m.label for m in at.metric]
    assert labels[0].startswith("target HR@50 before") and labels[1].startswith("target HR@50 after")
    assert len(charts(at)) == 2
    assert len(at.dataframe) == 2  # per-target table and the user's top-K lists
    # Another user: answered from the cached models.
    at.number_input(key="atk-user").set_value(3).run()
    no_failures(at)
    assert len(at.dataframe) == 2


def test_attack_page_chosen_targets_need_a_choice(monkeypatch):
    shared_artifacts(monkeypatch)
    at = page("attack").run()
    at.selectbox(key="atk-mode").set_value("chosen by title").run()
    no_failures(at)
    assert any("at least one target" in i.value for i in at.info)


def test_attack_page_offers_the_tail_tier_and_attacks_its_items(monkeypatch):
    # Issue 25's third tier (the least popular fifth) beside 'unpopular' and 'random', on data that has
    # unpopular items too; chosen, the page attacks the items select_targets draws from that tier.
    from apt_core.data.loaders import load_dataset
    from apt_core.data.split import leave_one_out, select_targets

    shared_artifacts(monkeypatch)
    at = page("attack").run()
    box = at.selectbox(key="atk-mode")
    assert box.options[:3] == ["unpopular", "least popular fifth (tail)", "random"]
    box.set_value("tail").run()
    no_failures(at)
    data = load_dataset("sample")
    split = leave_one_out(data, 0)
    want = select_targets(split, "tail", 5, 0)
    shown = at.dataframe[0].value  # the per-target table: titles and training counts
    assert list(shown["item"]) == [data.title(int(t)) for t in want]
    assert list(shown["train ratings"]) == [int(split.train.item_counts[t]) for t in want]


def test_defense_page_table_and_box_plot(monkeypatch):
    shared_artifacts(monkeypatch)
    at = page("defense").run()  # live controls on the sample data: no Run click
    no_failures(at)
    assert len(at.dataframe) >= 1
    table = at.dataframe[0].value
    assert len(table) >= 2  # origin and attack rows at least
    assert table.iloc[-1]["method"] == "popularity (clean data, no MF)"  # the yardstick for test HR, last
    assert " ± " not in table.iloc[0]["target HR"]  # one seed: no spread shown
    assert len(charts(at)) >= 3  # HR bars, users-reached bars, the paper's rank-shift box plot


def test_defense_page_diverged_model_is_a_message(monkeypatch):
    # Before: NaN factors ranked every item first and the table showed HR = 1.0 everywhere.
    from apt_core.models.mf import MFTrainer

    monkeypatch.setattr(MFTrainer, "_adagrad_update", lambda self, gP, gQ: self.Q.fill_(float("nan")))
    at = page("defense").run()
    assert not at.exception
    assert any(e.value.startswith("the 'origin' model diverged: ") for e in at.error), [e.value for e in at.error]
    assert len(at.dataframe) == 0


def test_profiles_page():
    at = page("profiles").run()
    no_failures(at)
    assert len(charts(at)) == 3
    for frame in at.dataframe:  # basic statistics, plus apt_core.evaluation.stealth's when present
        assert list(frame.value.columns) == ["statistic", "real users", "fake users"]
    assert at.dataframe[0].value.loc[0, "fake users"] > 0  # the fake block has users


def test_sweeps_page_is_live_on_the_sample_data():
    """Live mode: the sweep draws at once (no Run button) and follows a change of values."""
    at = page("sweeps").run()
    no_failures(at)
    assert not [b for b in at.button if b.key == "run-sweep"]
    assert len(charts(at)) >= 2
    from apt_core.experiments.grid import GridSpec

    assert set(at.dataframe[0].value["attack size"]) == set(GridSpec().sizes)  # the grid's values: read from it once built
    assert not at.warning, [w.value for w in at.warning]  # recorded in the history without complaint
    assert any("observed (poisoned) data" in c.value for c in at.caption)  # APT's figures name their item statistics
    assert "target_hr" not in at.dataframe[0].value.columns  # the table in words
    from apt_core.storage.history import RunStore

    runs = RunStore().runs()
    assert len(runs) == len(GridSpec().sizes) and set(runs["label"].str.slice(0, 17)) == {"dashboard:sweeps?"}
    assert sorted(runs["attack_size"]) == sorted(GridSpec().sizes)
    at.text_input(key="swp-values-attack_size").set_value("0.02, 0.05").run()
    no_failures(at)
    assert set(at.dataframe[0].value["attack size"]) == {0.02, 0.05}


def test_sweeps_page_on_other_data_waits_for_the_run_button(tmp_path):
    from pages._shared.uploads import save_upload

    path = save_upload("copy.csv", (ROOT / "sample_data" / "ratings.csv").read_bytes(), folder=tmp_path)
    at = page("sweeps", dataset="uploaded CSV", uploaded_path=path).run()
    no_failures(at)
    assert not charts(at)  # not live: nothing runs before the click
    at.text_input(key="swp-values-attack_size").set_value("0.02, 0.05").run()
    at.number_input(key="swp-seeds").set_value(1).run()
    at.button(key="run-sweep").click().run()
    no_failures(at)
    assert len(charts(at)) >= 2
    assert set(at.dataframe[0].value["attack size"]) == {0.02, 0.05}


def test_sweeps_page_bad_values_message():
    # The bad text from the first run (as a link or a kept setting brings it): typing it after a
    # first run also computed the whole live sweep, which the message does not depend on.
    at = page("sweeps", **{"swp-values-attack_size": "0.02, lots"}).run()
    assert not at.exception
    assert any("Could not read" in e.value for e in at.error)


def test_theory_page_slider_changes_curves():
    # No simulation (trials 0): the bounds and the formula below do not use it, and the figures are
    # drawn all the same; the presenter-mode test runs the page with its default trials.
    at = page("theory", **{"pt-trials": 0, "th-trials": 0}).run()
    no_failures(at)
    assert len(charts(at)) == 3  # the paper's bounds against n* and epsilon, our own model's curves
    assert at.metric[3].label.startswith("Thm 4.5")
    before_paper, before_own = at.metric[3].value, at.metric[5].value
    at.slider(key="pt-nstar").set_value(300).run()  # Theorem 4.5 grows with n*
    no_failures(at)
    assert float(at.metric[3].value) > float(before_paper)
    at.slider(key="th-tau").set_value(0.7).run()
    no_failures(at)
    assert at.metric[5].value != before_own


def test_theory_page_says_undefined_and_flags_the_assumption():
    at = page("theory")
    at.session_state["pt-trials"] = 1
    at.session_state["th-trials"] = 0  # our own model's simulation (below) is not what this checks
    at.run()
    no_failures(at)
    at.slider(key="pt-gamma").set_value(0.2).run()
    at.slider(key="pt-eps").set_value(0.5).run()
    no_failures(at)
    assert at.metric[2].label.startswith("Thm 4.4") and at.metric[2].value == "undefined"
    warnings = " ".join(w.value for w in at.warning)
    assert "Theorem 4.4 (AT) is undefined here" in warnings
    assert "assumption does not hold for Gaussian users" in warnings
    assert not any("inf" == m.value for m in at.metric)


def test_theory_page_invalid_threshold_is_a_message():
    at = page("theory", **{"pt-trials": 0, "th-trials": 0}).run()  # the check comes before any simulation
    at.slider(key="th-tau").set_value(0.5).run()  # a = 0.441 < 0.5: still valid
    no_failures(at)
    at.slider(key="th-sp").set_value(0.6).run()
    assert not at.exception


def test_history_page_empty_then_filled():
    at = page("history").run()
    no_failures(at)
    assert any("No runs" in i.value for i in at.info)
    from apt_core.attacks import attack_names
    from apt_core.experiments.pipeline import Scenario, run_scenario
    from apt_core.storage.history import RunStore

    store = RunStore()
    ids = [store.record(run_scenario(Scenario(attack=attack_names()[1], epochs=e)), label="test") for e in (2, 3)]
    at = page("history").run()
    no_failures(at)
    assert len(at.dataframe) == 2  # the run list and the chosen run's rows
    at.multiselect(key="hist-runs").set_value(ids).run()
    no_failures(at)
    rows = at.dataframe[1].value
    assert rows["run"].nunique() == 2 and "command line" in rows["run"].iloc[0]  # two runs, named by time and origin
    assert {"method", "target HR", "test HR", "RI"} <= set(rows.columns)  # words, not code names
    assert not [c for c in rows.columns if "_" in c or c.endswith(" sd")]  # one seed each: no spread column
    assert "origin (clean data)" in set(rows["method"]) and "origin" not in set(rows["method"])
    assert len(charts(at)) == 1  # the comparison chart


@pytest.mark.parametrize("name, module", [("sweeps", "apt_core.experiments.sweeps"), ("sweeps", "apt_core.plots.results"), ("history", "apt_core.storage.history")])
def test_a_broken_import_fails_loudly_not_as_not_available(name, module, monkeypatch):
    # The pages used to catch ImportError and say "not available yet", and the tests skipped.
    monkeypatch.setitem(sys.modules, module, None)  # any import of it now raises ImportError
    at = page(name).run()
    assert at.exception  # the page stops with the error (details redacted by the app config)
    assert not any("not available" in i.value for i in at.info)


def test_results_views_has_no_fallback(monkeypatch):
    from pages._shared.display import results_views

    monkeypatch.setitem(sys.modules, "apt_core.plots.results", None)
    with pytest.raises(ImportError):
        results_views(object())


def _failing_script():
    import streamlit as st

    from apt_core.errors import ConfigError
    from pages._shared.page_guard import guard
    from pages._shared.runs import run_cached

    def fail(scenario, progress):
        progress(0.5, "half way")
        raise ConfigError("this scenario cannot run")

    guard(lambda: st.write(run_cached("boom", {"x": 1}, fail, label="Go")))


def test_failed_run_is_an_error_message_not_a_cancellation():
    at = AppTest.from_function(_failing_script, default_timeout=TIMEOUT)
    at.session_state["_via_app"] = True
    at.run()
    at.button(key="run-boom").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["this scenario cannot run"]
    at.run()  # the next render must not call the failure a cancellation
    assert not any("cancelled" in w.value for w in at.warning)


def test_detection_page():
    at = page("detection", **{"det-detectors": ["cogroup", "rdma"]}).run()
    no_failures(at)
    assert not [b for b in at.button if b.key == "run-detection"]  # live on the sample data: no click
    assert not at.warning, [w.value for w in at.warning]
    table = at.dataframe[0].value
    assert list(table["detector"]) == ["cogroup", "rdma"] and "ROC-AUC" in table.columns
    assert len(charts(at)) == 2  # precision-recall curves and the inspected detector's histogram
    flagged = at.dataframe[1].value  # cogroup flags the Average attack's group on the sample data
    assert len(flagged) > 0 and flagged["truly fake"].mean() > 0.9


def test_history_records_other_pages_runs_with_a_link_back(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "history.sqlite"))
    at = page("attack", seed=777).run()  # a seed no other test uses: computed, hence recorded
    no_failures(at)
    hist = page("history").run()
    no_failures(hist)
    runs = hist.dataframe[0].value
    assert list(runs.columns[:5]) == ["#", "when (UTC)", "from", "data set", "what ran"]
    row = runs[runs["from"] == "attack"].iloc[0]
    assert row["what ran"].startswith("average attack, 3% fake users on unpopular targets")
    assert row["reopen"].startswith("./attack?") and "seed=777" in row["reopen"]


def test_small_upload_adapts_k_and_targets_and_says_so(tmp_path):
    import os

    import numpy as np

    from pages._shared.uploads import save_upload

    rng = np.random.default_rng(0)
    rows = "user,item,rating\n" + "".join(f"{u},{i},{rng.integers(1, 6)}\n" for u in range(30) for i in range(25) if rng.random() < 0.5)
    path = save_upload("small.csv", rows.encode(), folder=tmp_path)
    at = page("overview", dataset="uploaded CSV", uploaded_path=path).run()
    no_failures(at)
    notes = " ".join(i.value for i in at.info)
    assert "K lowered from 50" in notes and "No 'unpopular' targets here" in notes and "least popular fifth" in notes
    assert at.number_input(key="demo-k").value < 25  # a control for K ...
    assert at.number_input(key="demo-ntargets").value >= 1  # ... and for the number of targets
    assert str(tmp_path) not in " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])  # no server path shown
    data_page = page("data", dataset="uploaded CSV", uploaded_path=path).run()
    no_failures(data_page)
    titles = " ".join(chart.proto.spec for chart in data_page.get("plotly_chart"))
    assert "of small" in titles and os.path.basename(path)[:-4] not in titles  # the user's file name, not the stored copy's
    attack = page("attack", dataset="uploaded CSV", uploaded_path=path).run()  # no item has 1-4 ratings: offer what exists
    no_failures(attack)
    assert attack.selectbox(key="atk-mode").options[0] == "least popular fifth (tail)"
    assert all(option.endswith("%") for option in attack.select_slider(key="atk-size").options)  # percent off the live grid too


def test_victim_select_box_on_the_attack_controls(tmp_path):
    # A small upload (not live: nothing runs before the click) and no defense: one click fits NeuMF on
    # clean and on poisoned data.  On the live sample data the page fitted MF, then NeuMF, each with
    # APT and AT (most of a minute), none of which the select box's check depends on.
    import numpy as np

    from pages._shared.uploads import save_upload

    rng = np.random.default_rng(0)
    rows = "user,item,rating\n" + "".join(f"{u},{i},{rng.integers(1, 6)}\n" for u in range(60) for i in range(40) if rng.random() < 0.4)
    path = save_upload("victims.csv", rows.encode(), folder=tmp_path)
    at = page("defense", dataset="uploaded CSV", uploaded_path=path, **{"def-defenses": []}).run()
    no_failures(at)
    box = at.selectbox(key="def-victim")
    assert box.options == ["MF (the paper's)", "LightGCN", "NeuMF"] and box.value == "mf"
    box.set_value("neumf").run()
    at.button(key="run-defense").click().run()
    no_failures(at)
    assert at.selectbox(key="def-victim").value == "neumf"
    assert at.dataframe, "the click ran the NeuMF victim and the page shows its table"
    from apt_core.storage.history import RunStore

    assert ["neumf" in label for label in RunStore().runs()["label"]] == [True]  # the one recorded run had NeuMF as victim


def test_presenter_mode_trims_the_theory_page_and_keeps_the_hidden_values():
    # No simulation (trials 0, hidden and kept like d): the bounds and the controls do not depend on it,
    # and each of the five runs simulated again (17 s of 18 on a loaded machine).
    at = page("theory", **{"pt-trials": 0, "th-trials": 0}).run()
    at.slider(key="pt-d").set_value(50).run()
    no_failures(at)
    bound = at.metric[3].value
    at.session_state["presenter"] = True
    at.run()
    no_failures(at)
    keys = {s.key for s in at.slider}
    assert {"pt-gamma", "pt-eps", "pt-nstar"} <= keys
    assert not keys & {"pt-n", "pt-d", "pt-sigma", "pt-beta", "pt-trials"}
    assert not any(k.startswith("th-") for k in keys)  # our own model's section is hidden
    assert any("dimension d = 50" in c.value for c in at.caption)
    assert at.metric[3].value == bound  # the hidden d still counts
    at.run()  # a second run without the widget: Streamlit would drop its value unless kept
    assert any("dimension d = 50" in c.value for c in at.caption)
    at.session_state["presenter"] = False
    at.run()
    no_failures(at)
    assert at.slider(key="pt-d").value == 50


def test_presenter_mode_clamps_hidden_theory_values_a_url_set():
    # The reliability review: /theory?presenter=true&pt-n=40001&pt-d=3000 grew the server to 4 GB
    # (no widget checks a hidden value).  Now each is clamped into its slider's range.
    at = page("theory")
    at.session_state["presenter"] = True
    at.session_state["pt-n"] = 40001
    at.session_state["pt-d"] = 3000
    # Below its range (clamped to 0 = no simulation, which keeps this test to seconds: 5 trials at
    # n = 2000, d = 300 took half a minute) and not a number (its default); both sides still checked.
    at.session_state["pt-trials"] = -3
    at.session_state["pt-beta"] = "many"
    at.run()
    no_failures(at)
    caption = next(c.value for c in at.caption if "dimension d" in c.value)
    assert "real users n = 2000" in caption and "dimension d = 300" in caption
    assert "trials per point = 0" in caption and "tolerated error β = 0.1," in caption


def test_presenter_mode_hides_seed_device_and_repetitions(monkeypatch):
    shared_artifacts(monkeypatch)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["seed"] = 5
    at.session_state["presenter"] = True
    at.run()  # (AppTest runs app.py's sidebar on the first run only: one run per state here)
    no_failures(at)
    assert not [w for w in at.number_input if w.key == "seed"] and not [w for w in at.selectbox if w.key == "device"]
    assert any("Seed 5" in c.value for c in at.sidebar.caption)
    assert at.session_state["seed"] == 5  # kept for when presenter mode is switched off
    defense = page("defense", presenter=True).run()
    no_failures(defense)
    shown = {w.key for w in defense.number_input}
    assert "def-seeds" not in shown and "def-filler" not in shown
    assert "def-victim" not in {w.key for w in defense.selectbox}
    assert any("victim model: MF" in c.value for c in defense.caption)


def test_page_tests_start_no_background_grid_build(monkeypatch):
    """AppTest has a Streamlit runtime but no browser request: the live pages must not start
    the classroom grid's hundreds of fits in a background thread."""
    import threading

    monkeypatch.delenv("APT_GRID_BUILD", raising=False)
    shared_artifacts(monkeypatch)
    at = page("attack").run()
    no_failures(at)
    assert not [t for t in threading.enumerate() if t.name == "apt-grid-build"]
