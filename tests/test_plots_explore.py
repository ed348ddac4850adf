"""Pure figure functions of apt_core.plots.explore: titles, axis labels, data in the traces."""
from __future__ import annotations

import numpy as np
import pandas as pd

from apt_core.plots import explore as ex


def _labelled(fig):
    assert fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_long_tail_sorted_and_labelled():
    fig = ex.long_tail_figure(np.array([3, 10, 1, 0]))
    _labelled(fig)
    assert list(fig.data[0].y) == [10, 3, 1, 0.8]


def test_rating_histogram_shares_sum_to_one():
    fig = ex.rating_histogram_figure(np.array([1, 1, 5, 3.0]), np.arange(1, 6.0))
    _labelled(fig)
    assert sum(fig.data[0].y) == 1.0 and fig.data[0].y[0] == 0.5


def test_hit_ratio_steps_and_rank_shift():
    fig = ex.hit_ratio_steps_figure([("clean MF", 0.0), ("attacked (average)", 0.4), ("defended (apt)", 0.1)], 50)
    _labelled(fig)
    assert list(fig.data[0].y) == [0.0, 0.4, 0.1]
    fig = ex.rank_shift_histogram(np.array([1, 5, -2]))
    _labelled(fig)


def test_top_k_frame_flags_targets():
    titles = [f"t{i}" for i in range(6)]
    frame = ex.top_k_frame(titles, np.array([0, 1, 2]), np.array([5, 0, 1]), np.array([5]))
    assert frame["after the attack"].tolist() == ["t5", "t0", "t1"]
    assert frame["target (after)"].tolist() == [True, False, False]
    assert not frame["target (before)"].any()


def test_influence_ranking_marks_targets_at_their_rank():
    infl = np.array([0.5, -2.0, -1.0, 0.1])
    fig = ex.influence_ranking_figure(infl, np.array([2]), [f"i{i}" for i in range(4)])
    _labelled(fig)
    assert list(fig.data[1].x) == [2]  # item 2 is the second most negative


def test_pca_projection_separates_groups():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 0.1, (50, 8))
    fake = rng.normal(0, 0.1, (5, 8)) + 3.0
    xy = ex.pca_2d(np.vstack([real, fake]))
    assert xy.shape == (55, 2)
    assert abs(xy[50:, 0].mean() - xy[:50, 0].mean()) > 5
    fig = ex.factor_projection_figure(np.vstack([real, fake]), 50)
    assert len(fig.data[0].x) == 50 and len(fig.data[1].x) == 5


def test_profile_figures_and_stats():
    grid = np.arange(1, 6.0)
    fig = ex.profile_rating_figure(np.array([1, 2, 3.0]), np.array([5, 5.0]), grid)
    _labelled(fig)
    counts = np.array([10, 1, 5])
    fig = ex.filler_popularity_figure(counts, np.array([0, 1]), np.array([0, 0, 2]))
    _labelled(fig)
    stats = ex.basic_profile_stats(np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([4, 2, 3.0]), np.array([4.0, 2.0, 3.0]), counts, 2)
    assert stats["mean profile length"] == 1.5
    assert stats["mean |rating - item mean|"] == 0.0
    frame = ex.profile_stats_frame(stats, stats)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["statistic", "real users", "fake users"]


def test_theory_figure_lines_and_points():
    vals = np.array([0, 10, 20])
    bounds = {"standard": np.array([1.0, 1, 1]), "apt": np.array([1.0, 2, 3])}
    sims = {"standard": (np.array([1.0, 1, 1]), np.zeros(3))}
    fig = ex.theory_figure(vals, bounds, sims, "ERM users")
    _labelled(fig)
    assert len(fig.data) == 3 and fig.data[2].mode == "markers"


def test_runs_comparison_groups_by_run():
    frame = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "phase": ["origin", "attack"] * 2, "target_hr": [0.0, 0.5, 0.0, 0.4]})
    fig = ex.runs_comparison_figure(frame)
    _labelled(fig)
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [0.0, 0.4]


def test_influence_rounds_rank_one_on_top():
    fig = ex.influence_rounds_figure([[0, 10], [3, 40]], ["x", "y"], 100)
    _labelled(fig)
    assert list(fig.data[0].y) == [1, 4]
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]


def test_long_tail_axis_fits_the_data():
    fig = ex.long_tail_figure(np.array([339, 20, 3, 1]))
    lo, hi = fig.layout.yaxis.range
    assert 10**hi >= 339 and 10**hi < 1000 and 10**lo < 1
