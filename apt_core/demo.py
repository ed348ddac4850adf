"""The dashboard's one-click demo and the attack walk-through, as plain library functions.

:func:`demo_scenario` picks the demo's scenario from what is registered (attacks and defenses
land one file at a time): the Average attack on unpopular targets, defended by the best
honest defense (APT-trusted: a shilling detector decides which users' ratings to trust),
with APT in the authors' setting (item statistics from the clean data, an oracle no real
defender has) beside it, falling back to the best available of each.  :func:`run_demo` runs it with
:func:`apt_core.experiment.run_scenario`.

:func:`explore_attack` runs the clean and the attacked MF of one seed exactly as
``run_scenario`` does (same split, targets, seeds, attack call) but keeps the fitted models
and the fake profiles, which the Attack and Profiles pages need (top-K lists of one user,
user factors of fake vs real users).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.attacks import attack_names, make_attack
from apt_core.attacks.base import FakeProfiles
from apt_core.data import leave_one_out, load_dataset
from apt_core.data.dataset import RatingData
from apt_core.data.split import Split, attack_budget
from apt_core.defenses import DefenseContext, defense_names, make_defense
from apt_core.errors import CancelledError, ConfigError
from apt_core.experiment import Scenario, ScenarioResult, _parse_targets, run_scenario
from apt_core.metrics import Evaluation, evaluate
from apt_core.models.mf import MFConfig
from apt_core.runtime import resolve_device

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


def explore_attack(scenario: Scenario, progress: ProgressFn | None = None) -> AttackView:
    """Clean MF, the attack and MF on the poisoned data for ``scenario.seed``; models kept."""
    scenario.validate()
    device = resolve_device(scenario.device)

    def report(fraction: float, stage: str) -> None:
        if progress is not None and progress(min(1.0, fraction), stage) is False:
            raise CancelledError(f"cancelled during: {stage}")

    def sub(lo: float, hi: float, stage: str):
        def inner(fraction: float, detail: str = "") -> bool:
            report(lo + (hi - lo) * fraction, f"{stage}{': ' + detail if detail else ''}")
            return True

        return inner

    report(0.0, "loading data")
    data = load_dataset(scenario.dataset, scenario.data_dir)
    split = leave_one_out(data, scenario.seed)
    targets = _parse_targets(scenario, data, split)
    ctx = DefenseContext(MFConfig(epochs=scenario.epochs), device, scenario.seed, data.name, split.train, sub(0.0, 0.4, "clean MF"))
    clean = make_defense("none").fit(split.train, ctx).model
    clean_eval = evaluate(clean, split, targets, scenario.k)
    fake, n_filler = None, 0
    if scenario.attack != "none":
        budget = attack_budget(split.train, scenario.attack_size, scenario.filler)
        n_filler = budget.n_filler
        report(0.4, f"attack {scenario.attack}")
        fake = make_attack(scenario.attack).generate(split.train, targets, budget.n_fake_users, budget.n_filler, scenario.seed, device, sub(0.4, 0.6, f"attack {scenario.attack}"))
    poisoned = fake.inject(split.train) if fake is not None else split.train
    ctx.progress = sub(0.6, 1.0, "MF on poisoned data")
    attacked = make_defense("none").fit(poisoned, ctx).model if fake is not None else clean
    attacked_eval = evaluate(attacked, split, targets, scenario.k) if fake is not None else clean_eval
    report(1.0, "done")
    return AttackView(scenario, data, split, targets, fake, clean, attacked, clean_eval, attacked_eval, n_filler)


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
