"""The dashboard's one-click demo and the attack walk-through, as plain library functions.

:func:`demo_scenario` picks the demo's scenario from what is registered (attacks and defenses
land one file at a time): the Average attack on unpopular targets, defended by the best
honest defense (APT-trusted: a shilling detector decides which users' ratings to trust),
with APT in the authors' setting (item statistics from the clean data, an oracle no real
defender has) beside it, falling back to the best available of each.  :func:`run_demo` runs it with
:func:`apt_core.experiments.pipeline.run_scenario`.

:func:`explore_attack` is :func:`~apt_core.experiments.pipeline.run_scenario` for one seed with
``keep_models=True`` (models from the artifact cache where it holds them), seen as an
:class:`AttackView`: the fitted models and the fake profiles that the Attack and Profiles
pages need (top-K lists of one user, user factors of fake vs real users).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.attacks import attack_names
from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import RatingData
from apt_core.data.split import Split
from apt_core.defenses import defense_names
from apt_core.errors import ConfigError
from apt_core.experiments.pipeline import Scenario, ScenarioResult, run_scenario
from apt_core.evaluation.metrics import Evaluation

ProgressFn = Callable[[float, str], object]

#: preference order: the paper's headline attack first, then the other heuristics.
DEMO_ATTACKS = ("average", "random", "bandwagon", "aush", "pga", "tna")
#: The best honest defense first (measured: README, "Honest defense"); then the baselines.
DEMO_DEFENSES = ("apt-trusted", "remove-cogroup", "apt", "apt-rand", "at", "pcmf")
#: shown beside the honest defense: APT with the authors' clean item statistics (an oracle)
DEMO_ORACLE = "apt"
#: how the demo labels each phase (the oracle must never read as an honest result)
AUTHORS_SETTING = "APT, authors' setting (clean statistics: an oracle)"


def demo_scenario(dataset: str = "sample", data_dir: str | None = None, seed: int = 0, device: str = "auto") -> Scenario:
    """The one-click demo: clean MF -> an attack on unpopular targets -> the best honest defense,
    and APT in the authors' oracle setting beside it (``erm_stats="clean"`` applies to ``apt`` only)."""
    attacks = [a for a in DEMO_ATTACKS if a in attack_names()] or [a for a in attack_names() if a != "none"]
    if not attacks:
        raise ConfigError("no attack is registered yet, so the demo cannot poison anything")
    defenses = [d for d in DEMO_DEFENSES if d in defense_names()]
    chosen: tuple[str, ...] = (defenses[0],) if defenses else ("none",)
    oracle = defenses[0] != DEMO_ORACLE and DEMO_ORACLE in defenses
    if oracle:
        chosen = (defenses[0], DEMO_ORACLE)
    return Scenario(
        dataset=dataset,
        data_dir=data_dir,
        attack=attacks[0],
        targets="unpopular",
        defenses=chosen,
        erm_stats="clean" if oracle else "observed",
        seed=seed,
        device=device,
    )


def phase_label(scenario: Scenario, name: str) -> str:
    """How the demo names a defense: APT with clean statistics is the authors' setting, never 'honest'."""
    if name == DEMO_ORACLE and scenario.erm_stats == "clean":
        return AUTHORS_SETTING
    return name


def run_demo(scenario: Scenario, progress: ProgressFn | None = None, cache=None) -> ScenarioResult:
    """Run the demo scenario; ``cache`` (an ``ArtifactCache``) makes a repeated demo instant."""
    return run_scenario(scenario, progress, cache=cache)


def demo_steps(result: ScenarioResult) -> list[tuple[str, float]]:
    """(label, target HR) for clean -> attacked -> defended, from the result's rows."""
    rows = {r["phase"]: r for r in result.rows()}
    steps = [("clean MF", rows["origin"]["target_hr"]), (f"attacked ({result.scenario.attack})", rows["attack"]["target_hr"])]
    for name in result.scenario.defenses:
        if name != "none":
            label = phase_label(result.scenario, name)
            steps.append((label if label != name else f"defended ({name})", rows[name]["target_hr"]))
    return steps


@dataclass
class AttackView:
    """Everything the Attack and Profiles pages show for one seed."""

    scenario: Scenario
    data: RatingData
    split: Split
    targets: np.ndarray
    fake: FakeProfiles | None
    clean_model: object
    attacked_model: object
    clean_eval: Evaluation
    attacked_eval: Evaluation
    n_filler: int
    #: the run behind the view (origin and attack rows), e.g. for the run history
    result: ScenarioResult | None = None


def explore_attack(scenario: Scenario, progress: ProgressFn | None = None, cache=None, cache_only: bool = False, data=None) -> AttackView:
    """Clean MF, the attack and MF on the poisoned data for ``scenario.seed``; models kept.

    The same pipeline as every other run (:func:`~apt_core.experiments.pipeline.run_scenario`, one seed,
    no defense), so its numbers are the ``origin`` and ``attack`` rows of that run;
    ``cache`` (an ``ArtifactCache``) shares its models and fake profiles with them;
    ``cache_only`` raises :class:`apt_core.storage.cache.CacheMiss` instead of training.
    """
    result = run_scenario(dataclasses.replace(scenario, seeds=1, defenses=("none",)), progress, cache=cache, keep_models=True,
                          cache_only=cache_only, data=data)
    models = result.models[0]
    fake = result.fake_profiles[0]
    if result.budget is not None:
        n_filler = result.budget.n_filler
    elif fake is not None:  # a poison file: fillers are what a fake user rates besides the targets
        n_filler = int(round((~np.isin(fake.items, result.targets)).sum() / max(1, fake.n_fake_users)))
    else:
        n_filler = 0
    return AttackView(scenario, result.data, result.split, result.targets, fake, models["origin"], models["attack"],
                      result.phase("origin").evaluations[0], result.phase("attack").evaluations[0], n_filler, result)


def top_k_items(model, split: Split, user: int, k: int) -> np.ndarray:
    """The user's top-K among items not rated in train (what the recommender would show)."""
    device = getattr(model, "device", None) or torch.device("cpu")
    with torch.no_grad():
        scores = model.score_users(torch.tensor([user], device=device)).float().cpu().numpy()[0]
    scores[split.train.user_items(user)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
    return top[np.argsort(-scores[top], kind="stable")]


def user_factors(model) -> np.ndarray | None:
    """User factor matrix of an MF model (``None`` for models without one)."""
    factors = getattr(model, "P", None)
    if factors is None:
        return None
    return factors.detach().float().cpu().numpy() if isinstance(factors, torch.Tensor) else np.asarray(factors)


def adapt_to_data(scenario: Scenario, data: RatingData) -> tuple[Scenario, list[str]]:
    """A scenario that fits a small data set, and what was changed, in words.

    K must stay below the catalogue (else every list holds every item and every hit ratio is
    1); "unpopular" targets need enough items with 1-4 ratings (else random targets are used);
    the number of targets stays a small share of the items.
    """
    notes: list[str] = []
    n_items = int(data.n_items)
    k, n_targets, targets = scenario.k, scenario.n_targets, scenario.targets
    if k >= max(2, n_items // 2):
        k = max(1, n_items // 5)
        notes.append(f"K lowered from {scenario.k} to {k}: the data set has only {n_items} items, and a top-K list must be a small part of them.")
    if isinstance(targets, str):
        cap = max(1, n_items // 10)
        if n_targets > cap:
            n_targets = cap
            notes.append(f"{n_targets} target item(s) instead of {scenario.n_targets}: the data set has only {n_items} items.")
        if targets == "unpopular":
            counts = data.interactions.item_counts
            pool = int(((counts >= 1) & (counts < 5)).sum())
            if pool < n_targets:
                # Offer what exists: the least popular fifth (tail) when it holds enough items, else random ones.
                from apt_core.data.split import TAIL_SHARE

                rated = counts[counts >= 1]
                targets = "tail" if int(np.ceil(TAIL_SHARE * len(rated))) >= n_targets else "random"
                fewest = f"; the least rated item has {int(rated.min())}" if len(rated) else ""
                what = "drawn from the least popular fifth of the items (tail)" if targets == "tail" else "random items"
                notes.append(f"No 'unpopular' targets here: only {pool} item(s) have 1 to 4 ratings{fewest}. "
                             f"The targets are {what} instead.")
    if not notes:
        return scenario, notes
    return dataclasses.replace(scenario, k=k, n_targets=n_targets, targets=targets), notes
