"""apt_core.experiments.demo: the one-click demo's scenario and the attack walk-through used by the pages."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.attacks import attack_names
from apt_core.defenses import defense_names
from apt_core.experiments.demo import demo_scenario, demo_steps, explore_attack, run_demo, top_k_items, user_factors
from apt_core.experiments.pipeline import Scenario, run_scenario


def test_demo_scenario_uses_registered_parts():
    s = demo_scenario(seed=3)
    assert s.attack in attack_names() and s.attack != "none"
    assert all(d in defense_names() for d in s.defenses)
    assert s.targets == "unpopular" and s.dataset == "sample" and s.seed == 3
    if "apt-trusted" in defense_names() and "apt" in defense_names():
        # the best honest defense, with the authors' oracle setting beside it
        assert s.defenses == ("apt-trusted", "apt") and s.erm_stats == "clean"


def test_demo_labels_the_oracle_as_the_authors_setting():
    from apt_core.experiments.demo import AUTHORS_SETTING, phase_label

    s = demo_scenario()
    if "apt" in s.defenses:
        assert phase_label(s, "apt") == AUTHORS_SETTING
    assert phase_label(Scenario(defenses=("apt",), erm_stats="observed"), "apt") == "apt"


def test_one_click_demo_undoes_the_attack_honestly():
    """The dashboard's default demo (sample data, default settings): the honest defense's RI."""
    s = demo_scenario()
    rows = {r["phase"]: r for r in run_demo(s).rows()}
    honest = s.defenses[0]
    assert honest != "apt" or s.erm_stats != "clean"
    assert rows[honest]["ri"] is not None and rows[honest]["ri"] >= 0.8


def test_demo_steps_follow_the_result_rows():
    s = demo_scenario()
    result = run_demo(Scenario(**{**s.to_dict(), "defenses": s.defenses, "epochs": 3}))
    steps = demo_steps(result)
    rows = {r["phase"]: r for r in result.rows()}
    assert steps[0] == ("clean MF", rows["origin"]["target_hr"])
    assert steps[1][1] == rows["attack"]["target_hr"]


def test_walkthrough_matches_run_scenario():
    s = Scenario(attack=[a for a in attack_names() if a != "none"][0], targets="unpopular", epochs=4, seed=1)
    view = explore_attack(s)
    result = run_scenario(s)
    assert view.clean_eval.target_hr == pytest.approx(result.phase("origin").target_hr[0])
    assert view.attacked_eval.target_hr == pytest.approx(result.phase("attack").target_hr[0])
    np.testing.assert_array_equal(view.targets, result.targets)
    n_real = view.split.train.n_real_users
    assert user_factors(view.attacked_model).shape[0] == n_real + view.fake.n_fake_users


def test_walkthrough_takes_its_models_from_the_cache(tmp_path):
    """One pipeline: after a run, the Attack page's view trains nothing and shows the same ranks."""
    from apt_core.storage.cache import ArtifactCache
    from apt_core.evaluation.metrics import evaluate

    cache = ArtifactCache(tmp_path)
    s = Scenario(attack=[a for a in attack_names() if a != "none"][0], targets="unpopular", epochs=3, seed=2, device="cpu")
    result = run_scenario(s, cache=cache)
    writes = {kind: counts.get("writes", 0) for kind, counts in cache.stats.by_kind.items()}
    view = explore_attack(s, cache=cache)
    after = {kind: counts.get("writes", 0) for kind, counts in cache.stats.by_kind.items()}
    assert after.get("model", 0) == writes.get("model", 0) and after.get("fake", 0) == writes.get("fake", 0)
    assert cache.stats.by_kind["model"]["hits"] >= 2  # clean and attacked MF rebuilt, not refitted
    for phase, ev in (("origin", view.clean_eval), ("attack", view.attacked_eval)):
        np.testing.assert_array_equal(ev.target_ranks, result.phase(phase).evaluations[0].target_ranks)
    # The rebuilt models are the ones behind the numbers.
    again = evaluate(view.attacked_model, view.split, view.targets, s.k)
    np.testing.assert_array_equal(again.target_ranks, view.attacked_eval.target_ranks)
    assert view.n_filler == result.budget.n_filler > 0


def test_keep_models_returns_one_model_per_phase_and_seed():
    from apt_core.evaluation.metrics import evaluate

    s = Scenario(epochs=2, seeds=2, defenses=("none",), device="cpu")
    result = run_scenario(s, keep_models=True)
    assert [sorted(m) for m in result.models] == [["attack", "none", "origin"]] * 2
    for r, models in enumerate(result.models):
        ev = evaluate(models["origin"], result.split, result.targets, s.k)
        assert ev.target_hr == result.phase("origin").target_hr[r]
    assert run_scenario(s).models == []


def test_top_k_excludes_rated_items_and_is_sorted():
    view = explore_attack(Scenario(attack=[a for a in attack_names() if a != "none"][0], epochs=2))
    user = 5
    top = top_k_items(view.clean_model, view.split, user, 20)
    assert len(top) == 20 and len(set(top)) == 20
    assert not set(top) & set(view.split.train.user_items(user).tolist())
    scores = view.clean_model.score_users(__import__("torch").tensor([user]))[0].numpy()
    assert np.all(np.diff(scores[top]) <= 0)


def test_demo_without_attacks_is_a_config_error(monkeypatch):
    import apt_core.experiments.demo as demo
    from apt_core.errors import ConfigError

    monkeypatch.setattr(demo, "attack_names", lambda: ["none"])
    with pytest.raises(ConfigError):
        demo.demo_scenario()
