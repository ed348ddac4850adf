"""The Lesson's influence picture (step 4) and its arms-race step (step 7): the pure figure and sentence
functions on small arrays, and the page under AppTest on the sample data (issue 23)."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

pytest.importorskip("streamlit")

from apptest_support import charts, isolated, no_failures, page, shared_artifacts, texts  # noqa: E402,F401 -- isolated: autouse fixture
from apt_core.plots.lesson import (DefenseOutcome, detector_tries_sentence, erm_choice, erm_choice_figure,  # noqa: E402
                                   erm_choice_sentence)
from apt_core.plots.style import PRESENTER_SCALE  # noqa: E402

INFLUENCE = np.array([0.3, -0.5, -0.1, 0.2, -0.9])
# two ERM users: user 0 rated items 4 and 1, user 1 items 4 and 2
USERS, ITEMS = np.array([0, 0, 1, 1]), np.array([4, 1, 4, 2])


def test_erm_choice_ranks_items_and_counts_the_erm_users_who_rated_them():
    choice = erm_choice(INFLUENCE, USERS, ITEMS, 2)
    assert list(choice.rank) == [5, 2, 3, 4, 1]  # 1 = most negative
    assert list(choice.drawn_share) == [0.0, 0.5, 0.5, 0.0, 1.0]
    assert choice.n_negative == 3 and choice.per_user == 2 and choice.n_erm == 2


def test_erm_choice_figure_marks_the_targets_at_their_rank_and_share():
    choice = erm_choice(INFLUENCE, USERS, ITEMS, 2)
    fig = erm_choice_figure(choice, np.array([1, 3]), ["a", "b", "c", "d", "e"])
    traces = {t.name: t for t in fig.data}
    target = traces["target item"]
    assert list(target.x) == [2, 4] and list(target.y) == [50.0, 0.0] and list(target.text) == ["b", "d"]
    never = next(t for name, t in traces.items() if "never drawn" in name)
    assert list(never.x) == [4, 5] and not any(never.y)  # the items with I_j >= 0: nobody drew them
    assert any(s.x0 == 3.5 for s in fig.layout.shapes)  # the I_j = 0 line after the 3 negative items
    big = erm_choice_figure(choice, np.array([1]), font_scale=PRESENTER_SCALE)
    assert big.layout.xaxis.tickfont.size >= 18 and big.layout.yaxis.tickfont.size >= 18


def test_erm_choice_sentence_is_computed_from_the_choice():
    choice = erm_choice(INFLUENCE, USERS, ITEMS, 2)
    text = erm_choice_sentence(choice, np.array([1, 3]), top=1)
    assert "3 of 5 items had I_j < 0" in text and "each of the 2 ERM users rated 2" in text
    assert "the 1 most negative was rated by 100%" in text and "the rest of those with I_j < 0 by 50%" in text
    assert "The targets rank 2, 4 of 5 (0 of 2 among the 1 most negative): 25%" in text
    assert erm_choice_sentence(erm_choice(INFLUENCE, [], [], 0), np.array([1])) == "No ERM users were drawn in this run."


def test_a_defense_holds_from_half_of_the_lift_and_the_tries_read_in_words():
    assert DefenseOutcome("x", 0.1, 0.5, 0, 0, 0).holds and not DefenseOutcome("x", 0.1, 0.49, 0, 0, 0).holds
    assert not DefenseOutcome("x", 0.1, None, 0, 0, 0).holds and not DefenseOutcome("x", 0.1, float("nan"), 0, 0, 0).holds
    tried = [{"k": 5, "decoys": 0.0, "pushers": 18, "flagged_pushers": 18}, {"k": 5, "decoys": 0.4, "pushers": 11, "flagged_pushers": 2},
             {"k": 3, "decoys": 0.0, "pushers": 18, "flagged_pushers": 0}]
    text = detector_tries_sentence(tried, 5, 18, "cogroup")
    assert text.startswith("The attacker ran cogroup on its candidates")
    assert "strongest first: 18 fake users each rating 5 of the 5 targets: 18 of 18 flagged; " in text
    assert "; 11 rating 5 plus 7 decoys: 2 of 11 flagged; " in text
    assert text.endswith("; 18 rating 3: none flagged.")


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or (plotly 6) ``{"dtype", "bdata"}`` with the bytes base64-encoded."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _lesson_at(step: int):
    at = page("lesson", **{"lesson-step": step})
    at.run()
    no_failures(at)
    return at


def test_lesson_step_4_draws_the_erm_users_choice_from_the_run(monkeypatch):
    shared_artifacts(monkeypatch)
    at = _lesson_at(3)
    figures = charts(at)
    assert len(figures) == 1
    traces = {t.get("name"): t for t in json.loads(figures[0].proto.spec)["data"]}
    target_ranks = _array(traces["target item"]["x"])
    assert len(target_ranks) == 5  # the lesson's five targets
    words = texts(at)
    # the sentence beside it names the same ranks as the figure's target markers
    ranks = ", ".join(str(r) for r in sorted(int(x) for x in target_ranks))
    assert f"The targets rank {ranks} of " in words
    assert "Theorem 4.5" in words and ("reinforce" in words or "pull against" in words or "no ERM user rated a target" in words)
    assert at.radio(key="lesson-guess-3") is not None


def test_lesson_step_7_arms_race_asks_then_reveals_numbers_from_its_run(monkeypatch):
    shared_artifacts(monkeypatch)
    at = _lesson_at(6)
    assert at.subheader[0].value.startswith("7. The attacker learns the detector")
    words = texts(at)
    assert "The attacker ran cogroup on its candidates" in words
    assert not at.get("plotly_chart")  # nothing revealed before a prediction
    assert at.button(key="lesson-reveal-6").disabled is True  # Reveal waits for a prediction
    at.radio(key="lesson-guess-6").set_value("both").run()
    at.button(key="lesson-reveal-6").click().run()
    no_failures(at)
    success = at.success[0].value
    assert "remove-cogroup flagged" in success and "APT-robust's detector flagged" in success
    metrics = {m.label: m.value for m in at.metric}
    hr = {name: metrics[f"{name}: target HR@50"] for name in ("remove-cogroup", "APT-robust")}
    assert f"target HR {hr['remove-cogroup']}" in success and f"target HR {hr['APT-robust']}" in success
    assert len(charts(at)) == 1  # the per-method bars after the reveal
    assert at.button(key="lesson-next").disabled and not at.button(key="lesson-back").disabled  # the last step
