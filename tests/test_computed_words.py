"""Sentences with numbers on the pages are computed from the result they describe (issues 23 and 26)."""
from __future__ import annotations

import pandas as pd

from apt_core.experiments.sweeps import sweep_reading
from apt_core.plots.results import popularity_note
from apt_core.reporting.paper import paper_note


def _sweep(rows):
    out = []
    for v, origin, attack, apt, ri in rows:
        out += [dict(value=v, phase="origin", seed=0, target_hr=origin, ri=None), dict(value=v, phase="attack", seed=0, target_hr=attack, ri=None),
                dict(value=v, phase="apt", seed=0, target_hr=apt, ri=ri)]
    return pd.DataFrame(out)


def test_sweep_reading_names_a_falling_attack_and_a_negative_ri_with_their_numbers():
    text = sweep_reading(_sweep([(0.01, 0.0, 0.029, 0.071, -1.49), (0.05, 0.0, 0.5, 0.2, 0.6), (0.10, 0.0, 0.4, 0.1, 0.75)]), "attack size")
    assert len(text) == 2
    assert "falls from 0.500 at attack size 5% to 0.400 at 10%" in text[0] and "one split and one training run" in text[0]
    assert "0.071, above the attack's 0.029 (RI -1.49)" in text[1] and "lifted them by only 0.029" in text[1]


def test_sweep_reading_is_silent_when_the_story_holds():
    assert sweep_reading(_sweep([(0.01, 0.0, 0.2, 0.1, 0.5), (0.05, 0.0, 0.5, 0.2, 0.6)]), "attack size") == []


def test_popularity_note_compares_the_rows_it_sits_beside():
    table = pd.DataFrame({"phase": ["origin", "attack", "apt", "popularity"], "test_hr": [0.237, 0.2, 0.22, 0.625]})
    note = popularity_note(table)
    assert "(0.625) is above clean MF's (0.237)" in note and "not a defense" in note
    assert "at or below" in popularity_note(table.assign(test_hr=[0.3, 0.2, 0.2, 0.25]))
    assert popularity_note(table[table["phase"] != "popularity"]) is None


def test_paper_note_says_what_this_run_does_not_share_with_the_papers_cells():
    ours = paper_note("sample", "unpopular", 0.05, "observed")
    assert "APT 0.0002-0.0019" in ours and "data set sample" in ours and "5% attack" in ours and "observed statistics" in ours
    assert "differs" not in paper_note("ml-100k", "unpopular", 0.03, "clean")
