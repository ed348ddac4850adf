"""The pages print RI under the rule of apt_core.evaluation.metrics and say how far below the clean level a defense went."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")

from apptest_support import isolated, no_failures, page, shared_artifacts  # noqa: E402,F401 -- isolated: autouse fixture


def test_defense_page_table_has_below_clean_and_ri_notes(monkeypatch):
    from apt_core.evaluation.metrics import MIN_RI_LIFT
    from apt_core.plots.results import RI_GLOSSARY

    shared_artifacts(monkeypatch)  # the default run's fits, shared with tests/test_app.py's Defense page tests
    at = page("defense").run()
    no_failures(at)
    table = at.dataframe[0].value
    assert "below clean" in table.columns
    origin = table[table["method"] == "origin (clean data)"].iloc[0]
    assert origin["below clean"] == "–" and origin["RI"] == "–"  # not defended: nothing to say
    defended = table[~table["method"].str.startswith(("origin", "attack", "popularity"))]
    assert len(defended) and all(v != "–" for v in defended["below clean"])  # every defended row says it
    for ri, below in zip(defended["RI"], defended["below clean"]):
        if ri.startswith("–"):
            assert "(" in ri  # undefined: the note says why
        elif float(ri.split()[0]) > 1:
            assert ri.endswith("(over-correction)") and float(below.split()[0]) > 0
    assert any(RI_GLOSSARY in c.value and str(MIN_RI_LIFT) in c.value for c in at.caption)


def test_overview_demo_sentence_follows_the_rows():
    at = page("overview").run()
    at.button(key="run-demo").click().run()
    no_failures(at)
    text = " ".join(m.value for m in at.markdown)
    assert "(RI " in text or "(no RI: " in text
    assert "RI undefined" not in text  # the old wording, which gave no reason
