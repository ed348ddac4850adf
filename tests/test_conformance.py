"""One conformance test over every registered attack and defense.

Budget respected, targets at the scale maximum, ratings on the grid, fake users never
counted, seeded determinism, inputs left untouched, bad arguments rejected with a clear
message, cancellation honoured.  A new attack or defense is covered as soon as it is
registered: its declared parameters (``params``, :mod:`apt_core.params`) must equal its
``__init__`` arguments, round-trip through ``get_params``/``set_params``/``clone`` (the object
after ``set_params`` equals a fresh construction, presets included), change the cache keys,
and refuse every invalid value generated from the declaration.  ``BAD_PARAMS``
holds extra hand-written cases (combinations the declaration cannot express).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.attacks import ATTACKS, make_attack
from apt_core.data.dataset import Interactions
from apt_core.data.split import Split
from apt_core.defenses import DEFENSES, DefenseContext, make_defense
from apt_core.detection import DETECTORS
from apt_core.errors import CancelledError, ConfigError
from apt_core.evaluation.metrics import evaluate
from apt_core.models.mf import MFConfig
from conftest import make_tiny

#: extra hand-written hyper-parameters each attack/defense must reject with ConfigError (the
#: declared parameters' invalid values are generated, see test_every_declared_parameter_refuses_invalid_values)
BAD_PARAMS: dict[str, list[dict]] = {
    "none": [],
    "random": [],
    "average": [],
    "bandwagon": [{"popular_fraction": 1.5}, {"popular_fraction": -0.1}],
    "segment": [{"segment_size": 0}],
    "subset": [{"k": 0}, {"decoys": 0.6, "framing": 0.4}, {"framing_pairs": 0}],
    "adaptive": [{"detector": "magic"}, {"decoys": 1.0}],
    "popular-filler": [{"pool": 0.5}],
    "bpr-surrogate": [{"pool": 0.5}, {"rounds": 0}, {"dim": 0}, {"objective": "magic"}, {"fillers": "magic"}, {"filler_share": 0.0}],
    "aush": [{"epochs": 0}, {"lr": 0.0}, {"n_selected": -1}],
    "pga": [{"iterations": 0}, {"step_size": -1.0}, {"sparse": "yes"}, {"filler_ratings": "magic"}],
    "tna": [{"subset_fraction": 0.0}, {"b": 0.0}, {"top_n": 0}, {"filler_ratings": "magic"}],
    "at": [{"epsilon": -1.0}, {"adv_weight": -0.5}],
    "pcmf": [{"dim": 0}, {"lr": 0.0}],
    "apt-rand": [{"erm_fraction": 1.5}, {"erm_stats": "magic"}, {"erm_fraction": 0.1, "erm_users": 5}],
    "apt": [{"erm_fraction": -0.1}, {"erm_stats": "magic"}, {"solver": "newton"}, {"detector": "magic"}, {"erm_fraction": 0.1, "erm_users": 5}],
    "apt-trusted": [{"erm_fraction": -0.1}, {"detector": "magic"}, {"drop_suspects": "yes"}, {"statistics": "median"}],
    "apt-robust": [{"erm_fraction": -0.1}, {"detector": "magic"}, {"centre": "median"}, {"max_removed": 1.5}, {"cogroup_rank": 0}],
    **{f"remove-{d}": [{"cut": "magic"}] for d in ("cogroup", "rdma", "wdma", "degsim", "lengthvar", "pca", "influence")},
}

#: settings that keep the conformance run fast (real algorithms, small schedules): APT and
#: APT-rand regenerate their ERM users twice within the 6 epochs of FAST_MF.
FAST_PARAMS: dict[str, dict] = {
    "aush": {"epochs": 5},
    "pga": {"iterations": 3, "mf_epochs": 5},
    "tna": {"iterations": 3, "mf_epochs": 5},
    "bpr-surrogate": {"epochs": 3, "dim": 8, "rounds": 2, "steps": 20},  # 200 ascent steps by default: 2/3 of its time here
    "apt-rand": {"t_pre": 2, "t_inter": 2, "m_star": 5},
    "apt": {"t_pre": 2, "t_inter": 2, "m_star": 5},
    "apt-trusted": {"t_pre": 2, "t_inter": 2, "m_star": 5},
    "apt-robust": {"t_pre": 2, "t_inter": 2, "m_star": 5},
    "remove-influence": {},
}

N_FAKE, N_FILLER = 4, 6
TARGETS = np.array([3, 11])
FAST_MF = MFConfig(dim=8, epochs=6, batch_size=128, lr=0.5)


@pytest.fixture(scope="module")
def small() -> Interactions:
    return make_tiny(n_users=60, n_items=45, density=0.25, seed=1)


def _profiles_equal(a, b) -> bool:
    return (
        np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items) and np.array_equal(a.ratings, b.ratings)
    )


# ----------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_budget_grid_and_targets(name, small):
    before = small.ratings.copy()
    attack = make_attack(name, **FAST_PARAMS.get(name, {}))
    fake = attack.generate(small, TARGETS, N_FAKE, N_FILLER, random_state=0)
    assert fake.n_fake_users == N_FAKE and fake.n_items == small.n_items
    assert np.array_equal(np.unique(fake.users), np.arange(N_FAKE)), "every fake user has a profile"
    assert np.all(small.scale.on_grid(fake.ratings))
    for u in range(N_FAKE):
        items = fake.items[fake.users == u]
        ratings = fake.ratings[fake.users == u]
        assert len(np.unique(items)) == len(items)
        if attack.rates_every_target:
            assert set(TARGETS.tolist()) <= set(items.tolist())
        assert np.all(ratings[np.isin(items, TARGETS)] == small.scale.maximum)
        assert (~np.isin(items, TARGETS)).sum() <= N_FILLER
    assert set(TARGETS.tolist()) <= set(fake.items.tolist()), "every target is pushed by some account"
    assert np.array_equal(small.ratings, before), "the attack must not modify its input"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_seeded_determinism(name, small):
    attack = make_attack(name, **FAST_PARAMS.get(name, {}))
    state = dict(vars(attack))
    a = attack.generate(small, TARGETS, N_FAKE, N_FILLER, random_state=7)
    assert vars(attack) == state, "a run keeps its state in locals and the result (one object may serve two threads)"
    b = attack.generate(small, TARGETS, N_FAKE, N_FILLER, random_state=7)
    assert _profiles_equal(a, b)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_fake_users_never_counted(name, small):
    fake = make_attack(name, **FAST_PARAMS.get(name, {})).generate(small, TARGETS, N_FAKE, N_FILLER, random_state=0)
    poisoned = fake.inject(small)
    assert poisoned.n_real_users == small.n_users and poisoned.n_users == small.n_users + N_FAKE
    from apt_core.models import fit_mf

    model = fit_mf(poisoned, FAST_MF, "cpu", 0)
    split = Split(small, np.full(small.n_users, -1), np.zeros(small.n_users, np.float32), 0)
    ev = evaluate(model, split, TARGETS, k=5)
    assert ev.target_ranks.shape == (small.n_users, len(TARGETS))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_rejects_bad_arguments(name, small):
    attack = make_attack(name, **FAST_PARAMS.get(name, {}))
    with pytest.raises(ConfigError, match="fake users"):
        attack.generate(small, TARGETS, 0, N_FILLER)
    with pytest.raises(ConfigError, match="filler"):
        attack.generate(small, TARGETS, N_FAKE, small.n_items)
    with pytest.raises(ConfigError, match="duplicate"):
        attack.generate(small, np.array([3, 3]), N_FAKE, N_FILLER)
    with pytest.raises(ConfigError, match="target"):
        attack.generate(small, np.array([small.n_items + 5]), N_FAKE, N_FILLER)
    for params in BAD_PARAMS.get(name, []):
        with pytest.raises(ConfigError):
            make_attack(name, **params)


# ---------------------------------------------------------------------------- defenses


@pytest.fixture(scope="module")
def poisoned(small) -> Interactions:
    """The small matrix plus 4 crude fake users pushing the targets."""
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(N_FAKE):
        fill = rng.choice(np.setdiff1d(np.arange(small.n_items), TARGETS), N_FILLER, replace=False)
        chosen = np.concatenate([TARGETS, fill])
        users += [u] * len(chosen)
        items += chosen.tolist()
        ratings += [5.0] * len(TARGETS) + rng.integers(1, 6, N_FILLER).astype(float).tolist()
    return small.with_injected(np.array(users), np.array(items), np.array(ratings), N_FAKE)


def _context(small, seed=0, progress=None) -> DefenseContext:
    return DefenseContext(FAST_MF, "cpu", seed, "conformance", small, progress)


def _real_scores(result, n_real) -> torch.Tensor:
    with torch.no_grad():
        return result.model.score_users(torch.arange(n_real)).detach().cpu()


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_defense_scores_real_users_deterministically(name, small, poisoned):
    before = poisoned.ratings.copy()
    defense = make_defense(name, **FAST_PARAMS.get(name, {}))
    state = dict(vars(defense))
    a = _real_scores(defense.fit(poisoned, _context(small, 3)), small.n_users)
    assert vars(defense) == state, "fit keeps its state in locals and the result (one object may be fitted from two threads)"
    b = _real_scores(defense.fit(poisoned, _context(small, 3)), small.n_users)
    assert a.shape == (small.n_users, small.n_items)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b), "same seed, same model"
    assert np.array_equal(poisoned.ratings, before), "the defense must not modify its input"


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_defense_does_not_peek_at_fake_labels(name, small, poisoned):
    """A deployed defender cannot tell fake users apart: relabelling them as real changes nothing."""
    defense = make_defense(name, **FAST_PARAMS.get(name, {}))
    honest = _real_scores(defense.fit(poisoned, _context(small, 1)), small.n_users)
    unlabelled = Interactions(poisoned.users, poisoned.items, poisoned.ratings, poisoned.n_users, poisoned.n_items, poisoned.scale)
    assert unlabelled.n_real_users == poisoned.n_users
    blind = _real_scores(defense.fit(unlabelled, _context(small, 1)), small.n_users)
    assert torch.allclose(honest, blind, atol=1e-5)


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_defense_cancellation(name, small, poisoned):
    defense = make_defense(name, **FAST_PARAMS.get(name, {}))
    with pytest.raises(CancelledError):
        defense.fit(poisoned, _context(small, 0, progress=lambda fraction, stage: False))


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_defense_rejects_bad_parameters(name):
    for params in BAD_PARAMS.get(name, []):
        with pytest.raises(ConfigError):
            make_defense(name, **params)


def _registry() -> dict:
    return {**ATTACKS, **DEFENSES}


def _make(name: str, **params):
    return (make_attack if name in ATTACKS else make_defense)(name, **params)


def _declared_cases() -> list[tuple[str, str]]:
    return [(name, p.name) for name, cls in sorted(_registry().items()) for p in cls.params]


def _invalid_cases() -> list[tuple[str, str, object]]:
    return [(name, p.name, bad) for name, cls in sorted(_registry().items()) for p in cls.params for bad in p.invalid_values()]


@pytest.mark.parametrize("name", sorted({**ATTACKS, **DEFENSES}))
def test_declared_parameters_are_the_init_arguments(name):
    """get_params is the declaration; the declaration must be exactly what __init__ takes (so a
    hyper-parameter cannot hide from the cache key under another name)."""
    from apt_core.registry import parameter_names

    cls = _registry()[name]
    accepted, takes_any = parameter_names(cls)
    assert not takes_any, f"{name}: **kwargs would accept undeclared parameters"
    declared = [p.name for p in cls.params]
    assert len(set(declared)) == len(declared), f"{name}: a parameter is declared twice"
    assert sorted(declared) == sorted(accepted), f"{name}: declare every __init__ argument, nothing else"
    obj = _make(name)
    assert list(obj.get_params()) == declared
    assert all(not k.startswith("_") for k in obj.get_params())


def test_parameter_names_cannot_be_private():
    from apt_core.params import Param

    with pytest.raises(ValueError, match="public"):
        Param("_hidden", float, 1.0, "a hyper-parameter stored under an underscore name")


def test_declarations_cover_many_parameters():
    """Sanity check that the generated tests below run over the real declarations."""
    assert len(_declared_cases()) >= 50
    assert all(len(p.invalid_values()) >= 2 for cls in _registry().values() for p in cls.params)


@pytest.mark.parametrize("name,param,bad", _invalid_cases(), ids=lambda v: repr(v)[:30])
def test_every_declared_parameter_refuses_invalid_values(name, param, bad):
    with pytest.raises(ConfigError, match=param):
        _make(name, **{param: bad})
    obj = _make(name)
    before = obj.get_params()
    with pytest.raises(ConfigError, match=param):
        obj.set_params(**{param: bad})
    assert obj.get_params() == before, "a refused value must leave the object as it was"


@pytest.fixture(scope="module")
def keys(sample_data, sample_split):
    from apt_core.experiments.artifacts import Keys

    return Keys(sample_data, sample_split, "cpu", FAST_MF)


@pytest.mark.parametrize("name,param", _declared_cases())
def test_every_declared_parameter_round_trips_and_changes_the_cache_key(name, param, keys):
    obj = _make(name)
    spec = type(obj).param_specs()[param]
    value = spec.other_value(obj.get_params()[param])
    changed = obj.clone().set_params(**{param: value})
    assert changed.get_params()[param] == value
    assert type(obj)(**changed.get_params()).get_params() == changed.get_params(), "clone/constructor round trip"
    assert changed.clone().get_params() == changed.get_params()
    assert obj.get_params()[param] != value, "clone must not share state with the original"
    if name in ATTACKS:
        before, after = (keys.fake(TARGETS, a, N_FAKE, N_FILLER, 0) for a in (obj, changed))
    else:
        before, after = (keys.model("train", d, 0) for d in (obj, changed))
    assert before != after, f"{name}.{param} does not enter the cache key"


def _all_classes() -> dict[str, tuple[str, type]]:
    """Every registered attack, defense and detector: name -> (kind, class)."""
    from apt_core.detection import DETECTORS

    return {**{f"detector:{n}": ("detector", c) for n, c in DETECTORS.items()},
            **{n: ("attack", c) for n, c in ATTACKS.items()}, **{n: ("defense", c) for n, c in DEFENSES.items()}}


def _make_any(key: str, **params):
    from apt_core.detection import make_detector

    kind, _ = _all_classes()[key]
    name = key.split(":", 1)[-1]
    return {"attack": make_attack, "defense": make_defense, "detector": make_detector}[kind](name, **params)


def _numeric_cases() -> list[tuple[str, str]]:
    return [(key, p.name) for key, (_, cls) in sorted(_all_classes().items()) for p in cls.params if p.type in (int, float)]


@pytest.mark.parametrize("key,param", _numeric_cases())
def test_every_numeric_parameter_has_an_upper_bound_it_enforces(key, param):
    """Issue 24: ``--param pcmf.dim=100000000`` tried to allocate 240 GB.  Every number a method
    declares has an upper bound sized for a 2-core, 24 GB machine, and the first value beyond it
    is refused (constructor, ``set_params`` and the CLI's/expander's text) with the bound named."""
    import re

    spec = _all_classes()[key][1].param_specs()[param]
    assert spec.high is not None, f"{key}.{param}: declare an upper bound (docs/cli.md, 'Parameter bounds')"
    beyond = spec.high if spec.high_open else (spec.high + 1 if spec.type is int else spec.high * 1.5 + 1)
    bound = re.escape(f"{spec.high:g}")
    with pytest.raises(ConfigError, match=rf"{param} must be .*{bound}"):
        _make_any(key, **{param: beyond})
    with pytest.raises(ConfigError, match=rf"{param} must be .*{bound}"):
        spec.parse(str(beyond), key)
    _make_any(key, **{param: spec.high if not spec.high_open else spec.default})  # the bound itself is allowed


def _state(obj) -> dict:
    """Everything an estimator holds (its public and private attributes): after set_params it
    must equal a fresh construction's, or a value derived when setting (a preset's solver) hides there."""
    return {k: v for k, v in vars(obj).items()}


def _every_declared_parameter() -> list[tuple[str, str]]:
    return [(key, p.name) for key, (_, cls) in sorted(_all_classes().items()) for p in cls.params]


@pytest.mark.parametrize("key,param", _every_declared_parameter())
def test_set_params_equals_a_fresh_construction(key, param, keys):
    """For every declared parameter of every attack, defense and detector: set_params ->
    get_params round-trips the value; the object then equals a fresh construction with that
    value (get_params, every attribute, cache key); clone equals its original; and setting the
    parameter back restores the original exactly (nothing derived from the old value survives)."""
    obj = _make_any(key)
    spec = type(obj).param_specs()[param]
    original = obj.get_params()[param]
    value = spec.other_value(original)
    changed = obj.clone().set_params(**{param: value})
    fresh = _make_any(key, **{param: value})
    assert changed.get_params()[param] == value
    assert changed.get_params() == fresh.get_params()
    assert _state(changed) == _state(fresh), f"{key}: set_params({param}=...) left state a fresh object does not have"
    for a in (obj, changed):
        twin = a.clone()
        assert type(twin) is type(a) and twin is not a
        assert twin.get_params() == a.get_params() and _state(twin) == _state(a)
    back = changed.clone().set_params(**{param: original})
    assert _state(back) == _state(obj) and back.get_params() == obj.get_params()
    if not key.startswith("detector:"):
        key_of = (lambda x: keys.fake(TARGETS, x, N_FAKE, N_FILLER, 0)) if key in ATTACKS else (lambda x: keys.model("train", x, 0))
        assert key_of(changed) == key_of(fresh) and key_of(back) == key_of(obj)


def _preset_cases() -> list[tuple[str, str, str]]:
    """(defense, preset it starts from, preset it is set to) for every defense with presets."""
    return [(name, start, to) for name, cls in sorted(DEFENSES.items()) if "preset" in cls.param_specs()
            for start in cls.param_specs()["preset"].choices for to in cls.param_specs()["preset"].choices if start != to]


@pytest.mark.parametrize("name,start,to", _preset_cases())
def test_a_preset_change_equals_a_fresh_construction_with_that_preset(name, start, to, small, poisoned, keys):
    """``set_params(preset=X)`` must behave as ``make_defense(name, preset=X)``: the same
    parameters, the same cache key, the same resolved settings and the same fitted model."""
    switched = make_defense(name, preset=start, **FAST_PARAMS.get(name, {})).set_params(preset=to)
    fresh = make_defense(name, preset=to, **FAST_PARAMS.get(name, {}))
    assert switched.get_params() == fresh.get_params() and _state(switched) == _state(fresh)
    assert keys.model("train", switched, 0) == keys.model("train", fresh, 0)
    assert switched.resolved_single_rating_std() == fresh.resolved_single_rating_std()
    if hasattr(fresh, "resolved_solver"):
        assert switched.resolved_solver() == fresh.resolved_solver()
    a, b = (d.fit(poisoned, _context(small, 2)) for d in (switched, fresh))
    assert torch.equal(_real_scores(a, small.n_users), _real_scores(b, small.n_users))
    assert [r.get("solver") for r in a.diagnostics["rounds"]] == [r.get("solver") for r in b.diagnostics["rounds"]]
    assert a.diagnostics["rounds"], "the fast schedule regenerates ERM users (else the solver is never used)"


def test_presets_differ_where_the_preset_test_looks():
    """The preset test above can fail: the presets resolve to different solvers / spreads."""
    paper, v1 = make_defense("apt", preset="paper"), make_defense("apt", preset="lab-v1")
    assert paper.resolved_solver() != v1.resolved_solver()
    assert paper.resolved_single_rating_std() != v1.resolved_single_rating_std()


def _detector_cases():
    from apt_core.detection import DETECTORS

    return [(name, p.name, bad) for name, cls in sorted(DETECTORS.items()) for p in cls.params for bad in p.invalid_values()]


@pytest.mark.parametrize("name,param,bad", _detector_cases(), ids=lambda v: repr(v)[:30])
def test_every_detector_parameter_refuses_invalid_values(name, param, bad):
    from apt_core.detection import make_detector

    with pytest.raises(ConfigError, match=param):
        make_detector(name, **{param: bad})


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detection_leaves_the_detector_as_it_was(name, poisoned):
    """No per-call state on a detector (the seed is an argument): one object may score two data sets at once."""
    from apt_core.detection import make_detector

    det = make_detector(name, **({"epochs": 2} if name == "influence" else {}))
    state = dict(vars(det))
    det.detect(poisoned, 5)
    assert vars(det) == state


def test_detectors_declare_their_parameters_and_round_trip():
    from apt_core.detection import DETECTORS, make_detector
    from apt_core.registry import parameter_names

    for name, cls in DETECTORS.items():
        accepted, takes_any = parameter_names(cls)
        assert not takes_any and sorted(p.name for p in cls.params) == sorted(accepted), name
        det = make_detector(name)
        for p in cls.params:
            value = p.other_value(det.get_params()[p.name])
            changed = det.clone().set_params(**{p.name: value})
            assert changed.get_params()[p.name] == value and det.get_params()[p.name] != value


def test_registry_refuses_empty_and_duplicate_names():
    from apt_core.attacks import register as register_attack
    from apt_core.attacks.random import RandomAttack
    from apt_core.defenses import register as register_defense
    from apt_core.defenses.none import NoDefense

    class Nameless(RandomAttack):
        name = ""

    class Impostor(RandomAttack):
        name = "average"

    class NoneAttack(RandomAttack):
        name = "none"

    class Twin(NoDefense):
        name = "apt"

    for cls, match in ((Nameless, "empty"), (Impostor, "already registered"), (NoneAttack, "reserved")):
        with pytest.raises(ConfigError, match=match):
            register_attack(cls)
    with pytest.raises(ConfigError, match="already registered"):
        register_defense(Twin)
    assert ATTACKS["average"].__name__ == "AverageAttack" and DEFENSES["apt"].__name__ == "APT"
    assert register_attack(ATTACKS["average"]) is ATTACKS["average"], "re-registering the same class is harmless"


@pytest.mark.parametrize("name", sorted({**ATTACKS, **DEFENSES}))
def test_unknown_parameter_is_a_clear_error(name):
    factory = make_attack if name in ATTACKS else make_defense
    with pytest.raises(ConfigError, match="no_such_parameter"):
        factory(name, no_such_parameter=1)
