"""Batched training (issue 22): a member of a batch is its own one-by-one fit.

Each check fits the same jobs twice -- one by one (``Defense.fit``, ``fit_mf``) and in one batch
(``Defense.fit_many``, ``fit_mf_batch``, ``compute_units``) -- with the same seeds, and compares
per-model target and test hit ratios (tolerance 0.005, the issue's) and the factors.  Nothing
here is a stored number: the one-by-one path is the reference each time.
"""
from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import pytest
import torch

from apt_core.defenses import make_defense
from apt_core.evaluation.metrics import evaluate
from apt_core.experiments.pipeline import defense_context, generate_attack, run_scenario
from apt_core.experiments.preparation import prepare
from apt_core.experiments.scenario import Scenario
from apt_core.models.mf import MFConfig, fit_mf
from apt_core.models.mf_batch import fit_mf_batch
from apt_core.runtime.devices import resolve_device

TOL = 0.005
CPU = resolve_device("cpu")


@pytest.fixture(scope="module")
def setting():
    """The sample data, a short MF recipe, and one Average attack's poisoned training data."""
    scenario = Scenario(dataset="sample", attack="average", attack_size=0.05, targets="random", epochs=4, device="cpu")
    prepared = prepare(scenario)
    prepared = dataclasses.replace(prepared, mf_config=MFConfig(epochs=4, dim=8, batch_size=2048))
    fake = generate_attack(scenario, prepared, 0, CPU)[0].profiles
    return prepared, fake.inject(prepared.split.train)


def hit_ratios(model, prepared) -> tuple[float, float]:
    ev = evaluate(model, prepared.split, prepared.targets, 50)
    return ev.target_hr, ev.test_hr


def assert_same_models(one, batched, prepared) -> None:
    assert len(one) == len(batched)
    for a, b in zip(one, batched):
        assert a.P.shape == b.P.shape and a.Q.shape == b.Q.shape
        assert torch.allclose(a.P, b.P, atol=1e-5) and torch.allclose(a.Q, b.Q, atol=1e-5)
        (ta, sa), (tb, sb) = hit_ratios(a, prepared), hit_ratios(b, prepared)
        assert abs(ta - tb) <= TOL and abs(sa - sb) <= TOL


def test_mf_batch_members_are_their_own_fits(setting):
    prepared, poisoned = setting
    cfg = prepared.mf_config
    clean = prepared.split.train
    # different data (clean: fewer users and ratings, so padding), seeds and epoch counts in one batch
    datasets, seeds, epochs = [clean, poisoned, poisoned, clean], [0, 0, 3, 5], [4, 4, 3, 1]
    one = [fit_mf(d, cfg.with_(epochs=e), "cpu", s) for d, s, e in zip(datasets, seeds, epochs)]
    batched = fit_mf_batch(datasets, seeds, cfg, "cpu", epochs)
    assert_same_models(one, batched, prepared)
    # the batch is no shared model: different seeds give different factors
    assert not torch.allclose(batched[1].P, batched[2].P)


@pytest.mark.parametrize("name, settings", [
    ("none", [{}]),
    ("at", [{}, {"epsilon": 0.1, "warmup_epochs": 1}]),
    ("apt-rand", [{"erm_fraction": 0.02, "t_pre": 1, "t_inter": 2, "m_star": 50},
                  {"erm_fraction": 0.1, "erm_stats": "clean", "t_pre": 2, "t_inter": 1, "m_star": 30}]),
    ("apt", [{"erm_fraction": 0.05, "t_pre": 1, "t_inter": 2, "m_star": 50},
             # the same T_pre as the first: on one data set and seed the first round's solve is shared
             {"erm_fraction": 0.1, "erm_stats": "clean", "t_pre": 1, "t_inter": 1, "m_star": 40}]),
])
def test_fit_many_gives_each_job_its_own_fit(setting, name, settings):
    prepared, poisoned = setting
    jobs = []
    for params in settings:
        for seed, data in ((0, poisoned), (1, prepared.split.train)):  # a shared prefix, and padding
            jobs.append((make_defense(name, **params), data, defense_context(prepared, CPU, seed)))
    one = [d.fit(t, c) for d, t, c in jobs]
    batched = type(jobs[0][0]).fit_many(jobs)
    assert_same_models([r.model for r in one], [r.model for r in batched], prepared)
    if name in ("apt", "apt-rand"):  # the same ERM users in every round
        for a, b in zip(one, batched):
            assert [r["epoch"] for r in a.diagnostics["rounds"]] == [r["epoch"] for r in b.diagnostics["rounds"]]
            for ra, rb in zip(a.diagnostics["rounds"], b.diagnostics["rounds"]):
                assert np.array_equal(ra["erm_items"], rb["erm_items"])


def test_batched_cache_fill_answers_run_scenario_as_one_by_one():
    """``fill_cache`` on the local engine (what reproduce, sweep and the grid call) writes every fit
    under the one-by-one keys: run_scenario then needs no training and reports the same numbers."""
    from apt_core.experiments.engine import EngineConfig, fill_cache
    from apt_core.storage.cache import ArtifactCache

    scenario = Scenario(dataset="sample", attack="random", attack_size=0.03, defenses=("at", "apt-rand"), epochs=3, seeds=2,
                        device="cpu", params=(("apt-rand.t_pre", 2), ("apt-rand.m_star", 40)))
    reference = run_scenario(scenario)  # no cache: one by one
    cache = ArtifactCache(tempfile.mkdtemp(prefix="apt-batch-"))
    assert fill_cache([(scenario, "test")], cache, EngineConfig("local")) == []
    batched = run_scenario(scenario, cache=cache, cache_only=True)  # raises CacheMiss if a fit were missing
    for a, b in zip(reference.phases, batched.phases):
        assert a.phase == b.phase
        assert np.allclose(a.target_hr, b.target_hr, atol=TOL) and np.allclose(a.test_hr, b.test_hr, atol=TOL)


@pytest.mark.parametrize("name, batch_modules", [
    ("none", {"apt_core.models.mf_batch"}),
    ("at", {"apt_core.models.mf_batch"}),
    ("apt", {"apt_core.models.mf_batch", "apt_core.defenses.erm_batch"}),
    ("apt-rand", {"apt_core.models.mf_batch", "apt_core.defenses.erm_batch"}),
])
def test_batched_training_code_is_in_the_model_keys(name, batch_modules):
    """A model fitted in a batch is cached under its defense's key: the batched trainer's code must be
    in that key's code (the static import closure), so editing it recomputes the models."""
    from apt_core.storage.cache import code_modules

    assert batch_modules <= set(code_modules(type(make_defense(name))))


def test_batches_resume_from_each_others_plain_mf_prefix(setting):
    """AT's warm-up, APT-rand's T_pre and plain MF on one data set and seed are one fit: with a shared
    PretrainStore the later batches resume from the kept states, and still equal their own fits."""
    from apt_core.models.mf_batch import PretrainStore

    prepared, poisoned = setting
    store = PretrainStore()
    for name, params in (("at", {"warmup_epochs": 1}), ("apt-rand", {"t_pre": 2, "t_inter": 1, "m_star": 40, "erm_fraction": 0.05}),
                         ("none", {})):
        jobs = [(make_defense(name, **params), poisoned, dataclasses.replace(defense_context(prepared, CPU, seed), pretrained=store))
                for seed in (0, 1)]
        batched = type(jobs[0][0]).fit_many(jobs)
        one = [d.fit(t, dataclasses.replace(c, pretrained=None)) for d, t, c in jobs]
        assert_same_models([r.model for r in one], [r.model for r in batched], prepared)
    # the store kept each (data, seed)'s states at the fork epochs: 1 (AT), 2 (APT-rand), 4 (MF)
    assert store.latest(poisoned, 0, prepared.mf_config, CPU, 4).epochs_done == [4]
    assert store.latest(poisoned, 1, prepared.mf_config, CPU, 3).epochs_done == [2]


def test_a_member_stepping_alone_is_its_one_by_one_fit_bit_for_bit(setting):
    """On a CPU each member steps alone (no padding, masks or flat offsets): its factors and its
    last epoch's loss are those of ``MFTrainer`` with the same seed, exactly, not only close."""
    from apt_core.models.mf import MFTrainer
    from apt_core.models.mf_batch import BatchedMFTrainer

    prepared, poisoned = setting
    cfg = prepared.mf_config
    datasets, seeds = [prepared.split.train, poisoned], [0, 3]
    batch = BatchedMFTrainer.from_seeds(seeds, [d.n_users for d in datasets], poisoned.n_items, cfg, "cpu")
    for b, d in enumerate(datasets):
        batch.set_data(b, *(torch.from_numpy(a) for a in (d.users, d.items, d.normalised_ratings)))
    for _ in range(cfg.epochs):
        batch.train_epoch([0, 1])
    for b, (d, seed) in enumerate(zip(datasets, seeds)):
        one = MFTrainer(d.n_users, d.n_items, cfg, "cpu", seed)
        one.train_epochs(*one.tensors(d), cfg.epochs)
        assert torch.equal(batch.model(b).P, one.P) and torch.equal(batch.model(b).Q, one.Q)
        assert batch.last_loss[b] == one.last_loss


def test_jobs_differing_only_in_where_equal_statistics_came_from_are_one_fit(setting, monkeypatch):
    """Two APT-rand jobs whose statistics are equal (observed statistics; the detector setting is
    then unused) are trained once in a batch and each equals its own one-by-one fit; a job with
    other statistics (clean) is trained on its own."""
    from apt_core.defenses import erm_batch

    prepared, poisoned = setting
    params = {"erm_fraction": 0.05, "t_pre": 1, "t_inter": 2, "m_star": 40}
    jobs = [(make_defense("apt-rand", **params, **extra), poisoned, defense_context(prepared, CPU, 0))
            for extra in ({"detector": "cogroup"}, {"detector": "rdma"}, {"erm_stats": "clean"})]
    trained = []
    real = erm_batch._fit_distinct
    monkeypatch.setattr(erm_batch, "_fit_distinct", lambda distinct, *a: trained.append(len(distinct)) or real(distinct, *a))
    batched = type(jobs[0][0]).fit_many(jobs)
    assert trained == [2]  # the two twins once, the clean-statistics job on its own
    one = [d.fit(t, c) for d, t, c in jobs]
    for a, b in zip(one, batched):
        assert torch.equal(a.model.P, b.model.P) and torch.equal(a.model.Q, b.model.Q)
        assert a.diagnostics["erm_stats"] == b.diagnostics["erm_stats"]
        for ra, rb in zip(a.diagnostics["rounds"], b.diagnostics["rounds"]):
            assert np.array_equal(ra["erm_items"], rb["erm_items"])
    assert not torch.equal(batched[0].model.P, batched[2].model.P)
