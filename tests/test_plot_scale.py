"""Presenter mode enlarges the charts (ticks >= 18 px), category labels stay horizontal (wrapped), and a
bar's value label moves inside its bar when a reference line would cross it (issue 23)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from apt_core.plots.detection import precision_recall_figure
from apt_core.plots.explore import hit_ratio_steps_figure, rank_shift_histogram
from apt_core.plots.results import bar_label_positions, method_bar_figure, sweep_figure
from apt_core.plots.style import PRESENTER_SCALE, scaled, wrap_label


def _reach() -> pd.DataFrame:
    return pd.DataFrame({"phase": ["origin", "attack", "apt", "at"], "label": ["origin (clean data)", "attack (no defense)",
                                                                              "APT (observed statistics)", "adversarial training (AT)"],
                         "target_hr": [0.0, 0.38, 0.18, 0.37], "users_reached": [0, 70, 30, 69], "share_reached": [0.0, 0.7, 0.3, 0.69]})


def test_presenter_scale_makes_ticks_at_least_18px_on_every_figure_kind():
    sweep = pd.DataFrame({"phase": ["attack", "apt"] * 2, "value": [0.01, 0.01, 0.03, 0.03], "parameter": "attack_size",
                          "target_hr": [0.1, 0.05, 0.3, 0.1]})
    figures = [hit_ratio_steps_figure([("clean MF", 0.0), ("attacked", 0.4)], 50, font_scale=PRESENTER_SCALE),
               rank_shift_histogram(np.arange(10), font_scale=PRESENTER_SCALE),
               method_bar_figure(_reach(), font_scale=PRESENTER_SCALE),
               sweep_figure(sweep, "value", font_scale=PRESENTER_SCALE),
               precision_recall_figure({"pca": (np.ones(3), np.linspace(0, 1, 3))}, font_scale=PRESENTER_SCALE)]
    for fig in figures:
        assert fig.layout.xaxis.tickfont.size >= 18 and fig.layout.yaxis.tickfont.size >= 18
        assert fig.layout.title.font.size > 18
    normal = method_bar_figure(_reach())
    assert normal.layout.xaxis.tickfont.size is None  # the template's 14 px: scale 1 leaves a figure alone


def test_scaled_keeps_the_height_and_grows_annotations():
    fig = rank_shift_histogram(np.arange(10))
    height, note = fig.layout.height, fig.layout.annotations[0].font.size or 15
    big = scaled(fig, 1.5)
    assert big.layout.height == height and big.layout.annotations[0].font.size >= round(note * 1.5)


def test_long_category_labels_wrap_instead_of_rotating():
    assert wrap_label("APT (observed statistics)", 14) == "APT (observed<br>statistics)"
    assert wrap_label("short") == "short"
    assert all(len(line) <= 14 for line in wrap_label("adversarial training (AT) with many words", 14).split("<br>"))
    fig = method_bar_figure(_reach())
    assert all(len(line) <= 14 for label in fig.data[0].x for line in label.split("<br>"))
    assert fig.layout.template.layout.xaxis.tickangle == 0
    overview = hit_ratio_steps_figure([("clean MF", 0.0), ("attacked (average)", 0.38), ("defended (apt-trusted)", 0.04),
                                       ("APT, authors' setting (clean statistics: an oracle)", 0.15)], 50, font_scale=PRESENTER_SCALE)
    assert overview.data[0].orientation == "h" and list(overview.data[0].x) == [0.0, 0.38, 0.04, 0.15]  # names on the left, level


def test_a_bar_label_under_a_reference_line_goes_inside_the_bar():
    # AT's 0.37 sits just below the attack line at 0.38: its label above the bar would be crossed.
    assert bar_label_positions([0.18, 0.37], [0.0, 0.38], axis_top=0.5) == ["outside", "inside"]
    # far from any line, or too short a bar to hold the label: outside
    assert bar_label_positions([0.1, 0.01], [0.3, 0.02], axis_top=0.5) == ["outside", "outside"]
    assert list(method_bar_figure(_reach()).data[0].textposition) == ["outside", "inside"]
