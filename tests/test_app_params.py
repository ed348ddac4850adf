"""The dashboard's advanced controls are generated from the declared parameters (AppTest, no browser)."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from apptest_support import isolated, page  # noqa: E402,F401 -- isolated: autouse fixture

def _no_runs(monkeypatch) -> list:
    """Record what the page would run instead of running it: these tests check the controls and the
    scenario they build (on the live sample data every run fitted clean MF, the attack, APT and AT)."""
    import pages._shared.runs as runs

    seen: list = []
    monkeypatch.setattr(runs, "run_cached", lambda kind, scenario, fn, **kw: seen.append(scenario))
    return seen


def test_defense_page_has_a_control_for_every_declared_parameter(monkeypatch):
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES

    seen = _no_runs(monkeypatch)
    at = page("defense").run()
    assert seen, "the controls built a scenario"
    assert not at.exception and not at.error
    keys = {w.key for kind in ("text_input", "selectbox", "checkbox") for w in at.get(kind)}
    chosen = at.multiselect(key="def-defenses").value
    attack = at.selectbox(key="def-attack").value
    for name in chosen:
        for p in DEFENSES[name].params:
            assert f"def-param-{name}-{p.name}" in keys
    for p in ATTACKS[attack].params:
        assert f"def-param-{attack}-{p.name}" in keys


def test_invalid_parameter_is_a_message_and_a_valid_one_reaches_the_scenario(monkeypatch):
    seen = _no_runs(monkeypatch)
    at = page("defense").run()
    at.multiselect(key="def-defenses").set_value(["apt"]).run()
    before = len(seen)
    at.text_input(key="def-param-apt-r_plus").set_value("7").run()
    assert not at.exception
    assert any("apt.r_plus must be a number in [-1, 1]" in e.value for e in at.error), [e.value for e in at.error]
    assert len(seen) == before, "an invalid value runs nothing"
    at.text_input(key="def-param-apt-r_plus").set_value("0.0").run()
    assert not at.exception and not at.error
    assert seen and dict(seen[-1].params) == {"apt.r_plus": 0.0}, seen


def test_detection_page_has_detector_parameter_controls(monkeypatch):
    from apt_core.detection import DETECTORS

    seen = _no_runs(monkeypatch)  # every detector (the influence one fits a model) ran on the first run
    at = page("detection").run()
    assert not at.exception and not at.error
    keys = {w.key for kind in ("text_input", "selectbox", "checkbox") for w in at.get(kind)}
    for name in at.multiselect(key="det-detectors").value:
        for p in DETECTORS[name].params:
            assert f"det-param-{name}-{p.name}" in keys
    at.selectbox(key="det-param-cogroup-cut").set_value("mad").run()
    assert not at.exception and not at.error
    assert seen and seen[-1]["detector_params"] == {"cogroup": {"cut": "mad"}}


def test_presenter_mode_hides_the_parameters_and_keeps_their_values(monkeypatch):
    seen = []
    import pages._shared.runs as runs

    monkeypatch.setattr(runs, "run_cached", lambda kind, scenario, fn, **kw: seen.append(scenario))
    at = page("defense").run()
    at.multiselect(key="def-defenses").set_value(["apt"]).run()
    at.text_input(key="def-param-apt-r_plus").set_value("0.0").run()
    assert dict(seen[-1].params) == {"apt.r_plus": 0.0}
    at.session_state["presenter"] = True
    for _ in range(2):  # the second run has no widget left to carry the value: it must be kept
        at.run()
        assert not at.exception and not at.error
        assert not [w for w in at.text_input if w.key.startswith("def-param-")]
        assert not [e for e in at.expander if "Advanced" in e.label]
        assert dict(seen[-1].params) == {"apt.r_plus": 0.0}
    assert any("apt.r_plus" in c.value for c in at.caption)
