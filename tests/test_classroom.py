"""Classroom mode's pure parts: the live-control grid, the Defense/Lesson figures, the paper's bounds."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from apt_core.storage.cache import ArtifactCache
from apt_core.experiments.pipeline import Scenario, run_scenario
from apt_core.experiments.grid import GridSpec, build_grid, grid_scenarios, is_cached, nearest
from apt_core.theory.bounds import PaperParams, paper_bounds, paper_c, sample_model, simulate_tolerable, success_probability
from apt_core.plots.lesson import profile_frame, share_reached, top_k_list
from apt_core.plots.results import method_bar_figure, reach_frame, reached_users_frame

BASE = Scenario(attack="average", attack_size=0.03, targets="unpopular", defenses=("apt",), erm_fraction=0.05, epochs=6)


def test_grid_covers_each_setting_once_and_starts_at_the_base():
    spec = GridSpec(attacks=("average", "random"), sizes=(0.01, 0.03), defenses=("apt", "at"), erm_fractions=(0.05, 0.1), erm_stats=("observed", "clean"))
    points = grid_scenarios(BASE, spec)
    # per attack x size: APT 2 shares x 2 statistics + AT once (it ignores the ERM settings)
    assert len(points) == 2 * 2 * (4 + 1)
    first = points[0]
    assert (first.attack, first.attack_size, first.defenses, first.erm_fraction, first.erm_stats) == ("average", 0.03, ("apt",), 0.05, "observed")
    assert nearest(spec.sizes, 0.029) == 0.03


def test_grid_build_makes_a_combination_answerable_from_the_cache_alone(tmp_path):
    cache = ArtifactCache(tmp_path)
    spec = GridSpec(attacks=("average",), sizes=(0.03,), defenses=("apt", "at"), erm_fractions=(0.05,), erm_stats=("observed",))
    combined = dataclasses.replace(BASE, defenses=("apt", "at"))
    assert not is_cached(combined, cache)
    report = build_grid(grid_scenarios(BASE, spec), cache)
    assert report.n_points == 2 and report.n_cached == 0
    assert is_cached(combined, cache)  # two single-defense points answer the two-defense view
    again = build_grid(grid_scenarios(BASE, spec), cache)
    assert again.n_cached == 2


@pytest.fixture(scope="module")
def result():
    return run_scenario(dataclasses.replace(BASE, defenses=("apt", "at")))


def test_reach_frame_and_bars(result):
    frame = reach_frame(result)
    assert list(frame["phase"]) == ["origin", "attack", "apt", "at"]
    assert ((frame["share_reached"] >= 0) & (frame["share_reached"] <= 1)).all()
    k = result.scenario.k
    hr = result.phase("attack").evaluations[0].target_ranks
    assert frame.loc[1, "users_reached"] == int(((hr >= 0) & (hr < k)).any(axis=1).sum())
    fig = method_bar_figure(frame, "target_hr", k=k)
    assert list(fig.data[0].x) == ["APT", "AT"]  # bars: the defenses; origin and attack are lines
    assert fig.layout.yaxis.range[1] <= 1.1  # a hit-ratio axis fits the data
    assert len(fig.layout.shapes) == 2
    assert fig.layout.template.layout.font.size >= 14  # projector-legible text


def test_reached_users_lists_every_reached_user(result):
    users = reached_users_frame(result)
    frame = reach_frame(result)
    assert len(users) == frame.loc[frame["phase"] == "attack", "users_reached"].iloc[0]
    col = [c for c in users.columns if "attack" in c][0]
    assert all(cell for cell in users[col])  # every listed user has a target in the attacked list


def test_lesson_tables():
    frame = profile_frame(np.array([3, 1, 2]), np.array([2.0, 5.0, 4.0]), ["a", "b", "c", "d"], np.array([1]))
    assert list(frame["item"]) == ["b", "c", "d"] and list(frame["target item?"]) == ["yes", "", ""]
    assert list(top_k_list(["a", "b", "c"], np.array([2, 0]), np.array([0]))["target item?"]) == ["", "yes"]
    assert share_reached(np.array([[0, -1], [60, 70], [-1, 49]]), 50) == pytest.approx(2 / 3)


def test_paper_bounds_as_stated():
    p = PaperParams()
    alpha, tau = sample_model(p)
    c = paper_c(p, alpha)
    b = paper_bounds(p, alpha, tau)
    assert b["standard"] == pytest.approx(p.n * c / (p.d * p.gamma ** 2))
    assert b["apt"] - b["standard"] == pytest.approx(p.n_star * tau / (p.d * p.gamma))  # "APT raises it by n* tau / (d gamma)"
    assert b["at"] > b["standard"]  # Theorem 4.4: AT raises the tolerable poisoning
    assert 0 < success_probability(p) < 1
    assert success_probability(dataclasses.replace(p, d=10)) < 0  # vacuous at small d


def test_simulation_tolerates_about_n_and_apt_not_less():
    p = PaperParams(n=300, d=50, n_star=60)
    std, _ = simulate_tolerable(p, "standard", 4)
    apt, _ = simulate_tolerable(p, "apt", 4)
    assert 0.5 * p.n < std < 1.5 * p.n  # the worst-case poison must outweigh the real users
    assert apt >= std - 0.05 * p.n
    assert not math.isnan(std)


def test_one_seed_shows_no_spread(result):
    from apt_core.plots.results import format_results_table, results_table

    text = format_results_table(results_table(result))
    assert not any("±" in v for v in text["target HR"]) and not any("±" in v for v in text["test HR"])


def test_trusted_points_share_one_detection(tmp_path):
    """The grid fits APT and APT-rand with trusted statistics at several ERM shares on the same
    poisoned data: the shilling detector runs once and is read from the cache after that."""
    cache = ArtifactCache(tmp_path)
    spec = GridSpec(attacks=("average",), sizes=(0.03,), defenses=("apt", "apt-rand"), erm_fractions=(0.05, 0.1), erm_stats=("trusted",))
    report = build_grid(grid_scenarios(BASE, spec), cache)
    assert report.n_points == 4
    detection = cache.stats.by_kind["detection"]
    assert detection.get("writes") == 1 and detection.get("hits") == 3
