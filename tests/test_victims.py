"""Victims beyond MF (LightGCN, NeuMF): training, scoring, seeding, defenses on them, and APT's
general (autograd) influence against MF's closed form."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from apt_core.defenses import DefenseContext, make_defense
from apt_core.errors import ConfigError
from apt_core.influence.mf import influence_vector, probe_users
from apt_core.influence.autograd import hvp_operator, mf_autograd_influence, score_jvp, victim_influence
from apt_core.models.lightgcn import LightGCNModel, normalised_adjacency, propagate
from apt_core.models.neumf import NeuMFModel, neumf_pair_scores
from apt_core.models.victims import VICTIMS, VictimConfig, default_victim_config, fit_victim, make_trainer, victim_names
from conftest import make_tiny

NEURAL = ("lightgcn", "neumf")


def small_config(name: str, epochs: int = 2, feedback: str = "implicit") -> VictimConfig:
    cfg = default_victim_config(name, epochs, feedback)
    # Small batches so that a 40-user matrix still takes several optimiser steps per epoch.
    return cfg.with_(batch_size=64, dim=8) if name == "lightgcn" else cfg.with_(batch_size=64, layers=(16, 8, 4))


def _mf_problem(seed: int = 0, dim: int = 4, dtype=torch.float64):
    data = make_tiny(12, 9, 0.4, seed)
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(data.n_users, dim, generator=g, dtype=dtype) * 0.5
    Q = torch.randn(data.n_items, dim, generator=g, dtype=dtype) * 0.5
    return data, P, Q, torch.from_numpy(data.users), torch.from_numpy(data.items), torch.from_numpy(data.normalised_ratings).to(dtype)


# -- APT's general influence --------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_general_influence_equals_mf_closed_form_identity(seed):
    data, P, Q, u, i, r = _mf_problem(seed)
    probe = probe_users(data.users, data.normalised_ratings, data.n_users, 3)
    closed = influence_vector(P, Q, u, i, r, probe, solver="identity")
    general = mf_autograd_influence(P, Q, u, i, r, probe, solver="identity")
    np.testing.assert_allclose(general.values, closed.values, rtol=1e-9, atol=1e-12)
    # and the order (what APT samples from) is the same
    assert list(np.argsort(general.values)) == list(np.argsort(closed.values))


@pytest.mark.parametrize("seed", [0, 1])
def test_general_influence_equals_mf_closed_form_cg(seed):
    data, P, Q, u, i, r = _mf_problem(seed)
    probe = probe_users(data.users, data.normalised_ratings, data.n_users, 3)
    closed = influence_vector(P, Q, u, i, r, probe, solver="cg", damping=20.0, max_iter=200, tol=1e-12, preconditioner="none")
    assert closed.damping > 0 and closed.cg.converged
    general = mf_autograd_influence(P, Q, u, i, r, probe, solver="cg", absolute_damping=closed.damping, max_iter=200, tol=1e-12)
    assert general.cg.converged
    np.testing.assert_allclose(general.values, closed.values, rtol=1e-7, atol=1e-10)


def test_autograd_hvp_matches_mf_closed_form():
    from apt_core.influence.mf import mf_hvp

    data, P, Q, u, i, r = _mf_problem(3)
    params = [P.clone().requires_grad_(True), Q.clone().requires_grad_(True)]
    loss = lambda p: ((p[0][u] * p[1][i]).sum(1) - r).pow(2).mean()  # noqa: E731
    g = torch.Generator().manual_seed(4)
    v = (torch.randn(P.shape, generator=g, dtype=P.dtype), torch.randn(Q.shape, generator=g, dtype=Q.dtype))
    hv = hvp_operator(loss, params)(v)
    ref = mf_hvp(P, Q, u, i, r, *v)
    torch.testing.assert_close(hv[0], ref[0])
    torch.testing.assert_close(hv[1], ref[1])


@pytest.mark.parametrize("name", NEURAL)
def test_score_jvp_matches_finite_differences(name):
    """The double-backward JVP through each victim's scoring (sparse propagation included)."""
    data = make_tiny(15, 12, 0.4, 2)
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config(name)), random_state=0)
    trainer.train_epochs(*trainer.tensors(data), 1)
    params = [p.detach().double().requires_grad_(True) for p in trainer.params]
    g = torch.Generator().manual_seed(1)
    w = tuple(torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params)
    probe = torch.tensor([0, 3, 5])
    if name == "lightgcn":
        trainer.graph = trainer.graph.to(torch.float64)
    f = lambda p: trainer.user_scores(trainer.encode(p), probe)  # noqa: E731
    _, js = score_jvp(f, params, w)
    eps = 1e-6
    with torch.no_grad():
        plus = f([p + eps * wk for p, wk in zip(params, w)])
        minus = f([p - eps * wk for p, wk in zip(params, w)])
    torch.testing.assert_close(js, (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NEURAL)
def test_victim_influence_is_finite_and_seeded(name):
    data = make_tiny(20, 15, 0.3, 0)
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config(name)), random_state=0)
    tensors = trainer.tensors(data)
    trainer.train_epochs(*tensors, 2)
    probe = probe_users(data.users, data.normalised_ratings, data.n_users, 4)
    a = victim_influence(trainer, *tensors, data.n_users, probe, random_state=5)
    b = victim_influence(trainer, *tensors, data.n_users, probe, random_state=5)
    c = victim_influence(trainer, *tensors, data.n_users, probe, random_state=5, solver="cg", max_iter=5)
    assert a.values.shape == (data.n_items,) and np.isfinite(a.values).all() and np.isfinite(c.values).all()
    np.testing.assert_array_equal(a.values, b.values)
    assert np.abs(a.values).max() > 0


# -- models --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NEURAL)
def test_victim_fit_is_seeded_and_scores_like_a_recommender(name):
    data = make_tiny()
    cfg = small_config(name)
    m1, m2, m3 = fit_victim(data, cfg, random_state=0), fit_victim(data, cfg, random_state=0), fit_victim(data, cfg, random_state=1)
    users = torch.arange(data.n_users)
    s1, s2, s3 = m1.score_users(users), m2.score_users(users), m3.score_users(users)
    assert s1.shape == (data.n_users, data.n_items) and torch.isfinite(s1).all()
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    assert not torch.equal(s1, s3)
    # state_dict round trip (what the artifact cache stores)
    rebuilt = type(m1).from_state_dict(m1.state_dict())
    torch.testing.assert_close(rebuilt.score_users(users), s1)


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_training_lowers_the_loss(name, feedback):
    data = make_tiny(60, 40, 0.3, 1)
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config(name, feedback=feedback).with_(lr=1e-2)))
    tensors = trainer.tensors(data)
    trainer.train_epochs(*tensors, 1)
    first = trainer.last_loss
    trainer.train_epochs(*tensors, 15)
    assert trainer.last_loss < first


def test_neumf_user_scores_equal_pair_scores():
    data = make_tiny()
    m = fit_victim(data, small_config("neumf"), random_state=0)
    users = torch.arange(data.n_users)
    full = m.score_users(users)
    uu, ii = torch.meshgrid(users, torch.arange(data.n_items), indexing="ij")
    pairs = neumf_pair_scores(m.params, m.n_layers, uu.reshape(-1), ii.reshape(-1)).view(data.n_users, data.n_items)
    torch.testing.assert_close(full, pairs, rtol=1e-5, atol=1e-6)


def test_lightgcn_adjacency_and_propagation_gradient():
    users = torch.tensor([0, 0, 1, 2, 2, 2])
    items = torch.tensor([0, 1, 1, 0, 1, 1])  # (2, 1) twice: counts once
    G = normalised_adjacency(users, items, 4, 3)  # user 3 is isolated
    dense = G.to_dense()
    torch.testing.assert_close(dense, dense.T)
    deg = torch.tensor([2.0, 1, 2, 0, 2, 3, 0])
    assert float(dense[0, 4 + 0]) == pytest.approx(1 / np.sqrt(float(deg[0] * deg[4])))
    assert dense[3].abs().sum() == 0 and dense[6].abs().sum() == 0
    e = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    (propagate(G.to(torch.float64), e) ** 2).sum().backward()
    e2 = e.detach().clone().requires_grad_(True)
    ((dense.double() @ e2) ** 2).sum().backward()
    torch.testing.assert_close(e.grad, e2.grad)


class _PlainSymmetricSpMM(torch.autograd.Function):
    """The propagation before the CPU speed-up: int64 CSR indices and ``graph @ e``."""

    @staticmethod
    def forward(ctx, graph, e):
        ctx.graph = graph
        return graph @ e

    @staticmethod
    def backward(ctx, grad):
        return None, _PlainSymmetricSpMM.apply(ctx.graph, grad)


def _plain_propagate(graph, e):
    as_int64 = torch.sparse_csr_tensor(graph.crow_indices().long(), graph.col_indices().long(), graph.values(), graph.shape)
    return _PlainSymmetricSpMM.apply(as_int64, e)


def test_lightgcn_fast_propagation_trains_bit_for_bit_like_the_plain_product(monkeypatch):
    """int32 indices and ``mm(out=)`` run the same kernel and sums: the same trained weights, exactly."""
    import apt_core.models.lightgcn as lightgcn

    data = make_tiny(30, 25, 0.3, 4)
    cfg = small_config("lightgcn", epochs=3)
    fast = make_trainer(data.n_users, data.n_items, DefenseContext(victim=cfg), random_state=0)
    fast.train_epochs(*fast.tensors(data), 3)
    assert fast.graph.crow_indices().dtype == torch.int32
    monkeypatch.setattr(lightgcn, "propagate", _plain_propagate)
    plain = make_trainer(data.n_users, data.n_items, DefenseContext(victim=cfg), random_state=0)
    plain.train_epochs(*plain.tensors(data), 3)
    for a, b in zip(fast.params, plain.params):
        assert torch.equal(a, b)
    assert fast.last_loss == plain.last_loss
    # out= writes every row, the empty ones (isolated nodes) included, whatever the buffer held.
    G = normalised_adjacency(torch.tensor([0, 0, 2]), torch.tensor([0, 1, 1]), 4, 3)
    e = torch.randn(7, 5)
    out = torch.mm(G, e, out=torch.full((7, 5), float("nan")))
    assert torch.equal(out, _plain_propagate(G, e)) and not out[[1, 3, 6]].any()


def test_negative_samples_avoid_positives():
    data = make_tiny(30, 40, 0.3, 3)
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config("neumf")))
    u, i, _ = trainer.tensors(data)
    pos = trainer._positives(u, i)
    neg = trainer.sample_negatives(u, pos, 4)
    keys = (u.repeat_interleave(4) * data.n_items + neg.reshape(-1))
    rated = set((data.users * data.n_items + data.items).tolist())
    # a user who rated almost everything may keep a few after 10 redraws; here most rows leave room
    assert np.mean([k in rated for k in keys.tolist()]) < 0.01


@pytest.mark.parametrize("name", NEURAL)
def test_grow_users_keeps_existing_rows(name):
    data = make_tiny()
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config(name)))
    trainer.train_epochs(*trainer.tensors(data), 1)
    before = [p.detach().clone() for p in trainer.params]
    trainer.grow_users(data.n_users + 5)
    for idx in trainer.user_tables:
        assert trainer.params[idx].shape[0] == data.n_users + 5
        torch.testing.assert_close(trainer.params[idx][: data.n_users], before[idx])
        assert trainer.optimizer.m[idx].shape == trainer.params[idx].shape
    trainer.train_epochs(*trainer.tensors(data), 1)  # still trains


def test_victim_config_errors():
    with pytest.raises(ConfigError):
        default_victim_config("svd")
    with pytest.raises(ConfigError):
        default_victim_config("lightgcn", feedback="ordinal")
    assert default_victim_config("mf") is None
    assert set(VICTIMS) == {"lightgcn", "neumf"} and victim_names() == ["mf", "lightgcn", "neumf"]
    with pytest.raises(ConfigError, match="choose one of mf, lightgcn, neumf"):
        default_victim_config("svd")
    with pytest.raises(ConfigError, match="choose one of mf, lightgcn, neumf"):
        make_trainer(4, 3, DefenseContext(victim=VictimConfig("svd")))
    with pytest.raises(ConfigError, match="registered neural victim"):
        VictimConfig("mf")


# -- defenses and the pipeline on other victims ---------------------------------------------

@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("defense", ["none", "at", "apt", "apt-rand"])
def test_defenses_train_other_victims(name, defense):
    data = make_tiny(50, 40, 0.25, 4)
    ctx = DefenseContext(dataset="tiny", clean_train=data, victim=small_config(name, epochs=4))
    params = {"t_pre": 1, "t_inter": 2, "m_star": 5, "erm_fraction": 0.1} if defense.startswith("apt") else {}
    result = make_defense(defense, **params).fit(data, ctx)
    model = result.model
    assert isinstance(model, (LightGCNModel, NeuMFModel))
    assert model.score_users(torch.arange(3)).shape == (3, data.n_items)
    if defense == "apt":
        rounds = result.diagnostics["rounds"]
        assert [r["epoch"] for r in rounds] == [1, 3]  # the victim's 4 epochs, not MF's 25
        assert all(np.isfinite(r["influence"]).all() for r in rounds)
        assert model.n_users == data.n_users + 5  # ERM users are accounts of the model


def test_the_victim_is_part_of_the_scenario_key():
    from apt_core.experiments.scenario import Scenario

    s = Scenario()
    assert s.victim == "mf" and s.victim_feedback == "implicit"
    keys = {s.key(), Scenario(victim="lightgcn").key(), Scenario(victim="neumf").key(),
            Scenario(victim="neumf", victim_feedback="explicit").key()}
    assert len(keys) == 4
    with pytest.raises(ConfigError):
        Scenario(victim="svd").validate()


def test_cli_run_with_a_victim(capsys):
    from apt_core.cli import main

    rc = main(["run", "--dataset", "sample", "--attack", "average", "--victim", "neumf", "--epochs", "2", "--json", "--no-cache"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["victim"] == "neumf" and out["config"]["victim_feedback"] == "implicit"
    assert [r["phase"] for r in out["rows"]][:2] == ["origin", "attack"]
    assert all(0 <= r["test_hr"] <= 1 for r in out["rows"])
    with pytest.raises(SystemExit) as exc:  # argparse: a clear usage error, exit status 2
        main(["run", "--dataset", "sample", "--victim", "svd"])
    assert exc.value.code == 2
    assert "invalid choice: 'svd'" in capsys.readouterr().err


def test_victim_models_are_cached_under_their_own_keys(tmp_path):
    from apt_core.storage.cache import ArtifactCache
    from apt_core.experiments.pipeline import Scenario, run_scenario

    cache = ArtifactCache(tmp_path)
    base = Scenario(dataset="sample", attack="average", epochs=1, device="cpu")
    mf = run_scenario(base, cache=cache)
    first = run_scenario(Scenario(**{**base.to_dict(), "defenses": ("none",), "victim": "neumf"}), cache=cache)
    assert not any(first.phase("origin").from_cache)  # not answered by MF's entries
    assert first.phase("origin").test_hr != mf.phase("origin").test_hr
    again = run_scenario(Scenario(**{**base.to_dict(), "defenses": ("none",), "victim": "neumf"}), cache=cache)
    assert all(again.phase("origin").from_cache) and all(again.phase("attack").from_cache)
    assert again.phase("attack").target_hr == first.phase("attack").target_hr


@pytest.mark.parametrize("solver", ["lissa-full", "lissa-lanczos"])
def test_general_influence_equals_mf_closed_form_lissa(solver):
    from apt_core.influence.solvers import LissaSettings

    data, P, Q, u, i, r = _mf_problem(2)
    P, Q = P * 0.3, Q * 0.3  # small factors: H's spectrum inside LiSSA's convergent range
    probe = probe_users(data.users, data.normalised_ratings, data.n_users, 3)
    settings = LissaSettings(steps=60)
    closed = influence_vector(P, Q, u, i, r, probe, solver=solver, lissa=settings)
    general = mf_autograd_influence(P, Q, u, i, r, probe, solver=solver, lissa=settings)
    np.testing.assert_allclose(general.values, closed.values, rtol=1e-6, atol=1e-9)


def test_non_finite_lissa_on_a_neural_victim_falls_back_to_the_gradient():
    data = make_tiny(20, 15, 0.3, 0)
    trainer = make_trainer(data.n_users, data.n_items, DefenseContext(victim=small_config("neumf")), random_state=0)
    tensors = trainer.tensors(data)
    trainer.train_epochs(*tensors, 1)
    probe = probe_users(data.users, data.normalised_ratings, data.n_users, 4)
    res = victim_influence(trainer, *tensors, data.n_users, probe, solver="lissa-lanczos")
    ident = victim_influence(trainer, *tensors, data.n_users, probe, solver="identity")
    assert np.isfinite(res.values).all()
    if res.solver.startswith("identity"):  # the filter overflowed: the gradient, and it says so
        assert "not finite" in res.solver
        np.testing.assert_allclose(res.values, ident.values)
    assert make_defense("apt").victim_solver == "identity"
    with pytest.raises(ConfigError):
        make_defense("apt", victim_solver="newton")


@pytest.mark.parametrize("name", ["mf", *NEURAL])
def test_expand_user_rows_keeps_kept_users_and_averages_dropped_ones(name):
    from apt_core.models.mf import MFConfig, fit_mf
    from apt_core.models.victims import expand_user_rows

    data = make_tiny()
    model = fit_mf(data, MFConfig(epochs=1, dim=4)) if name == "mf" else fit_victim(data, small_config(name, 1))
    kept = np.array([0, 2, 3])
    full = expand_user_rows(model, kept, 6)
    assert type(full) is type(model) and full.n_users == 6
    s_small = model.score_users(torch.arange(3))
    s_full = full.score_users(torch.arange(6))
    torch.testing.assert_close(s_full[kept], s_small)
    torch.testing.assert_close(s_full[1], s_full[5])  # dropped users: one average user


@pytest.mark.parametrize("name", NEURAL)
def test_detect_and_remove_trains_the_chosen_victim(name):
    from apt_core.attacks import make_attack
    from apt_core.defenses import defense_names

    removers = [d for d in defense_names() if d.startswith("remove-")]
    if not removers:
        pytest.skip("no detect-and-remove defense registered")
    data = make_tiny(60, 40, 0.25, 5)
    fake = make_attack("average").generate(data, np.array([1, 2]), 6, 8, 0, "cpu")
    poisoned = fake.inject(data)
    ctx = DefenseContext(dataset="tiny", clean_train=data, victim=small_config(name, epochs=2))
    result = make_defense("remove-cogroup" if "remove-cogroup" in removers else removers[0]).fit(poisoned, ctx)
    assert isinstance(result.model, (LightGCNModel, NeuMFModel))
    assert result.model.n_users == poisoned.n_users
    assert result.model.score_users(torch.arange(poisoned.n_real_users)).shape == (poisoned.n_real_users, data.n_items)


def test_engine_units_train_the_scenarios_victim(tmp_path):
    """``compute_unit`` (what a Ray task runs) writes the victim's artifacts under the keys run_scenario reads."""
    from apt_core.storage.cache import ArtifactCache
    from apt_core.experiments.pipeline import UNIT_ORIGIN, Scenario, compute_unit, run_scenario

    cache = ArtifactCache(tmp_path)
    sc = Scenario(dataset="sample", epochs=1, device="cpu", victim="neumf")
    assert compute_unit(sc, 0, UNIT_ORIGIN, cache=cache) is False
    res = run_scenario(sc, cache=cache)
    assert all(res.phase("origin").from_cache)


# -- the victims registry: a toy victim registered in one place ---------------------------

def _sample_split():
    from apt_core.data.loaders import load_sample
    from apt_core.data.split import leave_one_out

    data = load_sample()
    return leave_one_out(data, 0), data


@pytest.fixture
def toy_victim():
    """The ONE place the toy victim is registered (and removed again after the test)."""
    from apt_core.models.lightgcn import LightGCNTrainer
    from apt_core.models.victims import register_victim

    class ToyGCN(LightGCNTrainer):
        """LightGCN with one layer and 8-d embeddings, under its own name (a plug-in victim)."""

        name = "toy-gcn"
        label = "Toy GCN"

        @classmethod
        def default_config(cls, feedback: str = "implicit") -> VictimConfig:
            return VictimConfig(cls.name, dim=8, lr=1e-2, batch_size=256, reg=0.0, n_negatives=1, layers=(1,), feedback=feedback)

    register_victim(ToyGCN)
    try:
        yield ToyGCN
    finally:
        del VICTIMS["toy-gcn"]


def test_a_registered_victim_is_usable_everywhere(toy_victim, tmp_path, monkeypatch, capsys):
    from apt_core.cli import build_parser, main
    from apt_core.experiments.scenario import Scenario
    from apt_core.models.victims import victim_class, victim_labels, victim_trainer

    assert "toy-gcn" in victim_names() and victim_labels()["toy-gcn"] == "Toy GCN"  # the dashboard's select box
    assert victim_class("toy-gcn") is toy_victim  # what the cache keys fingerprint
    cfg = default_victim_config("toy-gcn", epochs=2)
    assert cfg.name == "toy-gcn" and cfg.layers == (1,)
    data = make_tiny(30, 20, 0.3, 0)
    trainer = victim_trainer(data.n_users, data.n_items, cfg)
    assert type(trainer) is toy_victim, "the registered class is built, never a stand-in"
    model = fit_victim(data, cfg)
    assert torch.isfinite(model.score_users(torch.arange(data.n_users))).all()
    # A defense trains it through the context, and APT's influence reads its implicit loss.
    res = make_defense("apt", erm_users=3, t_pre=1, t_inter=1, m_star=4).fit(data, DefenseContext(dataset="tiny", clean_train=data, victim=cfg))
    assert res.diagnostics["rounds"] and np.isfinite(res.diagnostics["rounds"][0]["influence"]).all()
    Scenario(victim="toy-gcn").validate()
    # Its models' cache keys carry its own code (the registry entry), not another victim's.
    from apt_core.experiments.artifacts import Keys
    from apt_core.models.mf import MFConfig

    split, sample = _sample_split()
    toy_code = Keys(sample, split, "cpu", MFConfig(), victim=cfg).victim_code()
    for other in ("lightgcn", "neumf"):
        assert toy_code != Keys(sample, split, "cpu", MFConfig(), victim=default_victim_config(other)).victim_code()
    assert build_parser().parse_args(["run", "--victim", "toy-gcn"]).victim == "toy-gcn"
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "history.sqlite"))
    assert main(["run", "--dataset", "sample", "--victim", "toy-gcn", "--attack", "average", "--defense", "none",
                 "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["victim"] == "toy-gcn"


def test_an_unknown_victim_is_refused_with_the_known_names(toy_victim):
    from apt_core.experiments.scenario import Scenario

    with pytest.raises(ConfigError, match="choose one of mf, lightgcn, neumf, toy-gcn"):
        Scenario(victim="svd").validate()
    with pytest.raises(SystemExit):
        from apt_core.cli import build_parser

        build_parser().parse_args(["run", "--victim", "svd"])


def test_victims_registry_refuses_what_is_not_a_victim():
    from apt_core.models.lightgcn import LightGCNTrainer
    from apt_core.models.victims import register_victim

    class Nameless(LightGCNTrainer):
        name = ""

    class TakesMF(LightGCNTrainer):
        name = "mf"

    class Twin(LightGCNTrainer):
        name = "neumf"

    for cls, match in ((Nameless, "empty"), (TakesMF, "reserved"), (Twin, "already registered"), (object, "TorchVictimTrainer")):
        with pytest.raises(ConfigError, match=match):
            register_victim(cls)
    assert victim_names() == ["mf", "lightgcn", "neumf"]
