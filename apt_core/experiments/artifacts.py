"""Cache keys and payloads of the pipeline's artifacts (see :mod:`apt_core.experiments.pipeline` for what each key covers).

:class:`Keys` builds every key of one scenario run; :func:`model_payload` /
:func:`rebuild_model` store a fitted model and bring it back; :func:`eval_payload` /
:func:`evaluation_from_entry` do the same for an evaluation (ranks and predictions).
"""
from __future__ import annotations

import numpy as np

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import RatingData
from apt_core.data.split import Split
from apt_core.evaluation.metrics import Evaluation
from apt_core.models.mf import MFConfig
from apt_core.experiments.scenario import CACHE_FORMAT


def split_fingerprint(data: RatingData, split: Split) -> str:
    """Content hash of a split: the data set's identity, content and the split seed in one key."""
    from apt_core.storage.cache import array_fingerprint, stable_hash

    t = split.train
    return stable_hash({
        "name": data.name,
        "arrays": array_fingerprint(t.users, t.items, t.ratings, split.test_items, split.test_ratings),
        "shape": [t.n_users, t.n_items, t.n_real_users],
        "scale": [t.scale.minimum, t.scale.maximum, t.scale.step],
    })


def profiles_fingerprint(fake: FakeProfiles) -> str:
    from apt_core.storage.cache import array_fingerprint

    return array_fingerprint(fake.users, fake.items, fake.ratings, np.array([fake.n_fake_users, fake.n_items]))


class Keys:
    """Builds the cache keys of one scenario run (see the module docstring).

    Code enters each key as the fingerprint of the source that artifact runs
    (:func:`apt_core.storage.cache.method_fingerprint`): the attack's or defense's module and
    every apt_core module it imports, read statically at every level of the files, plus the
    code of every registry entry its parameters name (APT-trusted's ``detector``,
    ``remove-cogroup``'s detector) and, for a model, the victim's code.  So editing a detector
    misses the entries of the defenses that run it while the clean models stay cached.
    """

    def __init__(self, data: RatingData, split: Split, device, mf_config: MFConfig, victim=None):
        from apt_core.storage.cache import environment_fingerprint

        self.split = split_fingerprint(data, split)
        self.base = {"format": CACHE_FORMAT, "env": environment_fingerprint(),
                     "device": str(getattr(device, "type", device)), "dataset": data.name}
        self.mf = mf_config
        # Models of another victim (LightGCN, NeuMF) carry its config; MF keys are unchanged.
        self.victim = victim
        self._code: dict = {}

    def code(self, obj) -> str:
        """:func:`~apt_core.storage.cache.method_fingerprint` of an attack or defense (memoised per
        class and named registry entries: a grid asks for the same defense many times)."""
        from apt_core.storage.cache import entries_named_by, method_fingerprint

        cls = obj if isinstance(obj, type) else type(obj)
        memo = (cls, *entries_named_by(obj))
        if memo not in self._code:
            self._code[memo] = method_fingerprint(obj)
        return self._code[memo]

    def _hash(self, **parts) -> str:
        from apt_core.storage.cache import stable_hash

        return stable_hash({**self.base, **parts})

    def fake(self, targets: np.ndarray, attack, n_fake: int, n_filler: int, seed: int) -> str:
        return self._hash(kind="fake", split=self.split, targets=[int(t) for t in targets], attack=attack.name,
                          params=attack.get_params(), n_fake=int(n_fake), n_filler=int(n_filler), seed=int(seed),
                          code=self.code(attack))

    def poisoned(self, fake: FakeProfiles | None) -> str:
        return self.split if fake is None else self._hash(kind="poisoned", split=self.split, fake=profiles_fingerprint(fake))

    def model(self, train_key: str, defense, seed: int) -> str:
        extra = {} if self.victim is None else {"victim": self.victim, "victim_code": self.victim_code()}
        return self._hash(kind="model", train=train_key, clean=self.split, defense=defense.name,
                          params=defense.get_params(), mf=self.mf, seed=int(seed), code=self.code(defense), **extra)

    def popularity(self) -> str:
        """The popularity ranking of the clean training data (no seed, no code but the counting)."""
        from apt_core.storage.cache import code_fingerprint
        from apt_core.models import popularity

        if "popularity" not in self._code:
            self._code["popularity"] = code_fingerprint(popularity)
        return self._hash(kind="popularity", split=self.split, code=self._code["popularity"])

    def victim_code(self) -> str:
        """Fingerprint of the victim's code: the victims registry's entry when there is one
        (a victim registered by a plug-in), else the victims module and all it imports."""
        from apt_core.storage.cache import code_fingerprint

        if "victim" not in self._code:
            self._code["victim"] = code_fingerprint(victim_code_object(self.victim.name))
        return self._code["victim"]

    def evaluation(self, model_key: str, targets: np.ndarray) -> str:
        from apt_core.storage.cache import code_fingerprint
        from apt_core.evaluation import metrics

        if "metrics" not in self._code:
            self._code["metrics"] = code_fingerprint(metrics)
        return self._hash(kind="eval", model=model_key, targets=[int(t) for t in targets], code=self._code["metrics"])


def victim_code_object(name: str):
    """What holds victim ``name``'s code: its trainer class in the victims registry (a victim a
    plug-in registered included), or, where victims are no registry, the module that builds
    every victim (its imports bring them all)."""
    from apt_core.models import victims

    victim_class = getattr(victims, "victim_class", None)
    return victim_class(name) if callable(victim_class) else victims


#: Diagnostics no page, table or report reads back from a cached evaluation: the last ERM users
#: (the Lesson shows them from its own run, which keeps its models and so their full diagnostics)
#: and, per regeneration round, each ERM user's items and the influence ranking (the pages
#: rank the stored influence vector themselves).  On the sample grid they were 90% of the
#: evaluations' bytes.  A kept model's entry keeps the diagnostics whole.
UNREAD_DIAGNOSTICS = ("last_erm",)
UNREAD_ROUND_DIAGNOSTICS = ("erm_items", "influence_rank")


def keeps_model(cache, defense_name: str, asked: bool = False) -> bool:
    """Whether a fitted model's tensors go into the cache (the numbers always do, as its evaluation).

    Kept: every model when the cache keeps models (``ArtifactCache(store_models=True)``, the
    CLI's ``--keep-models``); a model the caller asked for (``run_scenario(keep_models=True)``:
    the pages that show a user's top-K list); and always the undefended MF models (``origin``,
    ``attack``): few, shared by every defense of a scenario and by other target sets, and the
    ones the Attack, Profiles and Lesson pages rank items with.  Defended models (the bulk of
    a grid or a sweep) are not kept: their evaluations answer every table and figure.
    """
    return bool(asked or getattr(cache, "store_models", False) or defense_name == "none")


def kept_diagnostics(diagnostics: dict) -> dict:
    """``diagnostics`` without :data:`UNREAD_DIAGNOSTICS` and :data:`UNREAD_ROUND_DIAGNOSTICS`
    (what an evaluation entry stores; ``diagnostics`` itself is not changed)."""
    out = {k: v for k, v in (diagnostics or {}).items() if k not in UNREAD_DIAGNOSTICS}
    rounds = out.get("rounds")
    if isinstance(rounds, list):
        out["rounds"] = [{k: v for k, v in r.items() if k not in UNREAD_ROUND_DIAGNOSTICS} if isinstance(r, dict) else r
                         for r in rounds]
    return out


def model_payload(model, seconds: float, diagnostics: dict, store_model: bool) -> dict:
    from apt_core.storage.cache import storable_subset

    diag, dropped = storable_subset(diagnostics or {})
    payload = {"seconds": float(seconds), "diagnostics": diag, "dropped_diagnostics": dropped, "state": None, "model_class": None}
    cls = type(model)
    # Only models that can rebuild themselves from tensors are stored (MFModel and any
    # defense model exposing state_dict()/from_state_dict()); others get their evaluation cached.
    if store_model and hasattr(model, "state_dict") and hasattr(cls, "from_state_dict") and cls.__module__.startswith("apt_core."):
        try:
            state = model.state_dict()
            if isinstance(state, dict):
                payload["state"] = state
                payload["model_class"] = f"{cls.__module__}:{cls.__qualname__}"
        except Exception:  # a model that cannot export itself is still evaluated and cached by its ranks
            payload["state"] = None
    return payload


def rebuild_model(entry: dict, device):
    import importlib

    path = entry.get("model_class")
    if not path or entry.get("state") is None:
        return None
    module, _, qualname = path.partition(":")
    if not module.startswith("apt_core."):
        return None
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj.from_state_dict(entry["state"], device)
    except Exception:  # class renamed or changed: treat as a miss
        return None


def evaluation_from_entry(entry: dict, k: int) -> Evaluation:
    return Evaluation(k, np.asarray(entry["target_ranks"]), np.asarray(entry["test_ranks"]), np.asarray(entry["target_predictions"]))


def eval_payload(ev: Evaluation, seconds: float, diagnostics: dict) -> dict:
    """An evaluation entry: the ranks and predictions every metric is computed from, the fit's
    time and the diagnostics the pages read (:func:`kept_diagnostics`)."""
    return {"target_ranks": ev.target_ranks, "test_ranks": ev.test_ranks, "target_predictions": ev.target_predictions,
            "seconds": float(seconds), "diagnostics": kept_diagnostics(diagnostics)}
