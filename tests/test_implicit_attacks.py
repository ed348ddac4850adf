"""Issue 25: attacks for implicit-feedback victims, the tail target tier, the literature's scoring
convention and the victims' early stop (tiny data; the ML-100K numbers are in docs/victims.md)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from apt_core.attacks import make_attack
from apt_core.attacks.bpr_surrogate import fit_bpr_mf, target_displacements
from apt_core.attacks.popular_filler import most_popular
from apt_core.data.dataset import Interactions, RatingScale
from apt_core.data.split import Split, select_targets
from apt_core.evaluation.metrics import unmasked_target_hr
from apt_core.models.mf import MFModel
from apt_core.models.victims import default_victim_config, plateau_epochs
from conftest import make_tiny


def long_tail(n_users: int = 60, n_items: int = 40, seed: int = 0) -> Interactions:
    """Interactions with a popularity gradient: item j is chosen with weight 1/(j+1)."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, n_items + 1)
    rows = [rng.choice(n_items, size=8, replace=False, p=w / w.sum()) for _ in range(n_users)]
    users = np.repeat(np.arange(n_users), 8)
    items = np.concatenate(rows)
    return Interactions(users, items, np.full(len(items), 5.0, np.float32), n_users, n_items, RatingScale(1, 5, 1))


def test_popular_filler_uses_only_the_most_popular_items():
    data = long_tail()
    targets = np.array([38, 39])
    fake = make_attack("popular-filler", pool=1.5).generate(data, targets, 7, 4, random_state=3)
    fillers = fake.items[~np.isin(fake.items, targets)]
    allowed = most_popular(data, targets, 6)
    assert set(fillers.tolist()) <= set(allowed.tolist())
    assert len(fillers) == 7 * 4
    # pool = 1: every fake user has the same profile, the 4 most popular items
    same = make_attack("popular-filler", pool=1.0).generate(data, targets, 3, 4, random_state=0)
    per_user = [set(same.items[(same.users == u) & ~np.isin(same.items, targets)].tolist()) for u in range(3)]
    assert per_user[0] == per_user[1] == per_user[2] == set(most_popular(data, targets, 4).tolist())


def test_target_displacement_raises_the_hit_ratio_proxy():
    """The direction the attack pushes a target in must raise its score above the users' thresholds."""
    data = long_tail(seed=1)
    gen = torch.Generator().manual_seed(0)
    P, Q = fit_bpr_mf(data.users, data.items, data.n_users, data.n_items, 8, 20, 0.05, 1e-4, gen)
    rated = torch.zeros(data.n_users, data.n_items, dtype=torch.bool)
    rated[torch.from_numpy(data.users), torch.from_numpy(data.items)] = True
    targets = np.array([39])
    d = target_displacements(P, Q, rated, targets, hr_k=5)[0]
    before = (P @ Q[39]).mean()
    after = (P @ (Q[39] + d)).mean()
    assert after > before
    assert float((Q[39] + d).norm()) <= float(Q.norm(dim=1).max()) * (1 + 1e-5)


def test_bpr_surrogate_is_seeded_and_reports_its_fillers():
    data = long_tail(seed=2)
    attack = make_attack("bpr-surrogate", epochs=5, dim=8)
    a = attack.run(data, np.array([37, 39]), 5, 4, random_state=1)
    b = attack.run(data, np.array([37, 39]), 5, 4, random_state=1)
    assert np.array_equal(a.profiles.items, b.profiles.items)
    assert a.diagnostics["filler_popularity_mean"] > 0


def test_tail_tier_draws_from_the_least_popular_fifth():
    data = long_tail(n_items=50)
    split = Split(data, np.zeros(data.n_users, np.int64), np.zeros(data.n_users, np.float32), 0)
    counts = data.item_counts
    rated = np.flatnonzero(counts >= 1)
    cut = np.sort(counts[rated])[int(np.ceil(0.2 * len(rated))) - 1]
    for seed in range(5):
        targets = select_targets(split, "tail", 3, seed=seed)
        assert np.all(counts[targets] <= cut) and np.all(counts[targets] >= 1)


def test_unmasked_hr_counts_every_user_and_rated_items():
    # 3 users, 4 items; scores are P Q^T with a 1-d factor: the item order is 3 > 2 > 1 > 0 for everyone.
    P = torch.ones(3, 1)
    Q = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    model = MFModel(P, Q)
    assert unmasked_target_hr(model, 3, np.array([3]), 1) == 1.0   # first for all three users
    assert unmasked_target_hr(model, 3, np.array([2]), 1) == 0.0   # item 3 is above it, rated or not
    assert unmasked_target_hr(model, 3, np.array([2, 0]), 2) == 0.5


def test_plateau_stops_and_reports_its_history():
    data = make_tiny(40, 30, 0.3, seed=0)
    cfg = default_victim_config("neumf").with_(batch_size=64, layers=(16, 8, 4))
    p = plateau_epochs(data, cfg, k=10, check_every=1, patience=2, max_epochs=8, random_state=0)
    epochs = [e for e, _ in p.history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) <= 8
    best = max(hr for _, hr in p.history)
    assert dict(p.history)[p.epochs] >= best - 0.005 - 1e-12
    if len(epochs) < 8:  # it stopped early: the last `patience` checks gained nothing
        assert all(hr <= dict(p.history)[p.epochs] + 0.005 for e, hr in p.history if e > p.epochs)


def test_clone_fillers_copy_real_profiles():
    """fillers=clone: every fake user's fillers are items of one real user's profile."""
    data = long_tail(seed=3)
    targets = np.array([38, 39])
    res = make_attack("bpr-surrogate", epochs=5, dim=8, fillers="clone").run(data, targets, 4, 5, random_state=0)
    fake = res.profiles
    profiles = [set(data.user_items(u).tolist()) for u in range(data.n_users)]
    for f in range(4):
        own = set(fake.items[(fake.users == f) & ~np.isin(fake.items, targets)].tolist())
        assert own and any(own <= p for p in profiles)
    assert res.diagnostics["surrogate_users_reached"]


def test_lightgcn_surrogate_is_seeded_clones_profiles_and_differs_from_bpr_mf():
    """surrogate=lightgcn: the victim's recipe as the surrogate; same seed, same profiles; still clones."""
    data = long_tail(seed=4)
    targets = np.array([38, 39])
    attack = make_attack("bpr-surrogate", epochs=3, surrogate="lightgcn", fillers="clone", steps=20)
    a = attack.run(data, targets, 4, 5, random_state=0)
    b = attack.run(data, targets, 4, 5, random_state=0)
    assert np.array_equal(a.profiles.items, b.profiles.items)
    profiles = [set(data.user_items(u).tolist()) for u in range(data.n_users)]
    for f in range(4):
        own = set(a.profiles.items[(a.profiles.users == f) & ~np.isin(a.profiles.items, targets)].tolist())
        assert own and any(own <= p for p in profiles)
    # The two surrogates rank the items differently (the gain is computed in another embedding space).
    mf = make_attack("bpr-surrogate", epochs=3, dim=64, fillers="clone", steps=20).run(data, targets, 4, 5, random_state=0)
    assert a.diagnostics["top_gain_items"] != mf.diagnostics["top_gain_items"]


def test_script_keeps_attack_profiles_and_reads_them_back_unchanged(tmp_path):
    """scripts/implicit_attacks.py generates an attack's profiles once per (size, seed) and reuses
    the saved copy for the other victim: the copy must be exactly what the attack generates."""
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("implicit_attacks", Path(__file__).parents[1] / "scripts" / "implicit_attacks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    split = SimpleNamespace(train=long_tail(seed=5))
    targets = np.array([38, 39])
    out = tmp_path / "rows.jsonl"
    attack = "bpr-surrogate:epochs=3:dim=8:steps=20"
    first, budget, spent = script.attack_profiles(out, attack, split, targets, 0.1, 2, 0)
    again, _, spent_again = script.attack_profiles(out, attack, split, targets, 0.1, 2, 0)
    direct = make_attack("bpr-surrogate", epochs=3, dim=8, steps=20).run(split.train, targets, budget.n_fake_users,
                                                                           budget.n_filler, 2).profiles
    assert spent > 0 and spent_again == 0.0 and len(list(tmp_path.glob("rows.profiles-*.npz"))) == 1
    for got in (first, again):
        assert (got.n_fake_users, got.n_items) == (direct.n_fake_users, direct.n_items)
        for field in ("users", "items", "ratings"):
            assert np.array_equal(getattr(got, field), getattr(direct, field))
    other_seed, _, _ = script.attack_profiles(out, attack, split, targets, 0.1, 3, 0)
    assert len(list(tmp_path.glob("rows.profiles-*.npz"))) == 2 and other_seed.n_fake_users == direct.n_fake_users


def test_script_plateau_tables_pair_each_defense_with_its_seeds(tmp_path):
    """The plateau tables: per-seed HR@50, RI from the same seeds' attack and clean fits, markers replaced."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("implicit_attacks", Path(__file__).parents[1] / "scripts" / "implicit_attacks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    base = {"victim": "neumf", "epochs": 30, "split_seed": 0, "hr10": 0.0, "median_rank": 500.0, "hr50_all_unmasked": 0.0,
            "test_hr50": 0.5, "test_hr10": 0.2}
    rows = [{**base, "phase": "origin", "seed": 0, "hr50": 0.01, "cpu_seconds": 20.0}]
    for seed, hr in ((0, 0.05), (1, 0.03), (2, 0.5)):  # seed 2 has no defense row: it must not enter the RI
        rows.append({**base, "phase": "attack", "attack": "popular-filler", "size": 0.05, "seed": seed, "hr50": hr,
                     "median_rank_shift": 100.0 if seed == 0 else None})
    for seed, hr in ((0, 0.02), (1, 0.01)):
        rows.append({**base, "phase": "at", "attack": "popular-filler", "size": 0.05, "seed": seed, "hr50": hr})
    for phase in ("apt", "tcd"):
        rows.append({**base, "phase": phase, "attack": "popular-filler", "size": 0.05, "seed": 0, "hr50": 0.03})
    rows.append({**base, "phase": "attack", "attack": "popular-filler", "size": 0.05, "seed": 0, "hr50": 0.9, "split_seed": 7})
    blocks = script.plateau_tables(rows, 0)
    attack_line = [x for x in blocks["issue25-plateau"].splitlines() if "5%" in x][0]
    assert "**0.1933** (0.0500, 0.0300, 0.5000)" in attack_line and "+100 (1)" in attack_line  # split seed 7 left out
    defense_line = [x for x in blocks["issue25-plateau-defenses"].splitlines() if "`at`" in x][0]
    # attack mean 0.04 over seeds 0-1, clean 0.005 (seed 0 fitted, seed 1 taken as 0), defense 0.015
    assert "| 0.0400 |" in defense_line and f"| {1 - (0.015 - 0.005) / (0.04 - 0.005):.2f} |" in defense_line
    # every row names what it ran: APT its statistics, TCD its pseudo-label rule (the one the script runs)
    apt_line = [x for x in blocks["issue25-plateau-defenses"].splitlines() if "`apt`" in x][0]
    tcd_line = [x for x in blocks["issue25-plateau-defenses"].splitlines() if "`tcd`" in x][0]
    assert "observed statistics" in apt_line and script.DEFENSE_SETTINGS["apt"] == {"preset": "lab-v1"}
    assert f"top-{script.DEFENSE_SETTINGS['tcd']['top_k']} agreement" in tcd_line
    assert "0.0100 (0.0100)" in blocks["issue25-plateau-clean"] and "| 20 |" in blocks["issue25-plateau-clean"]
    assert "| NeuMF (30) | `popular-filler` | 0.1933 (3) | 0.0100 (1) | 0.5000 / 0.5000 |" in blocks["issue25-readme-plateau"]
    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- issue25-plateau:begin -->\nold\n<!-- issue25-plateau:end -->\nb\n"
                   "<!-- issue25-plateau-clean:begin (generated) -->\n<!-- issue25-plateau-clean:end -->\n")
    assert script.write_between_markers(doc, blocks) == ["issue25-plateau-clean", "issue25-plateau"]
    assert script.write_between_markers(doc, blocks) == ["issue25-plateau-clean", "issue25-plateau"]  # idempotent
    text = doc.read_text()
    assert "old" not in text and text.count(attack_line) == 1 and text.startswith("a\n") and "\nb\n" in text
    assert blocks["issue25-plateau-clean"] + "\n<!-- issue25-plateau-clean:end -->" in text


def _script():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("implicit_attacks", Path(__file__).parents[1] / "scripts" / "implicit_attacks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_script_measures_a_row_again_when_its_code_changed(tmp_path):
    """A row counts as measured only by the code that measured it; the tables read the last row of a key."""
    script = _script()
    tcd, at = script.code_version("lightgcn", "popular-filler", "tcd"), script.code_version("lightgcn", "popular-filler", "at")
    attack_only = script.code_version("lightgcn", "popular-filler")
    assert len({tcd, at, attack_only, script.code_version("lightgcn")}) == 4, "each phase has its own code"
    assert tcd == script.code_version("lightgcn", "popular-filler", "tcd"), "stable"
    out = tmp_path / "rows.jsonl"
    out.write_text("\n".join(json.dumps(r) for r in (
        {"key": "tcd|x", "phase": "tcd", "hr50": 0.9},  # before rows carried code: counts as the current code's
        {"key": "at|x", "phase": "at", "hr50": 0.5, "code": "older"},
        {"key": "at|x", "phase": "at", "hr50": 0.1, "code": at},
        {"key": "apt|x", "phase": "apt", "hr50": 0.2, "code": "older"},
    )) + "\n")
    done = script.done_keys(out)
    assert script.is_done(done, "tcd|x", tcd) and script.is_done(done, "at|x", at)
    assert not script.is_done(done, "apt|x", script.code_version("lightgcn", "popular-filler", "apt"))
    assert not script.is_done(done, "origin|x", script.code_version("lightgcn"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    latest = script.latest_rows(rows + [{"phase": "origin", "hr50": 0.0}])
    assert [r["hr50"] for r in latest] == [0.9, 0.1, 0.2, 0.0]
