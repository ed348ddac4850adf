"""Adaptive attack: an attacker who knows the detector (ours; docs/detection.md,
"Attackers who know the detector").

The attacker has the product's own shilling detector (``detector``, any registered one, with
its own cut) and the training data.  It builds candidate variants of the ``subset`` attack
-- ``k`` = n, n-1, ..., 1 targets per pushing account, each without and (when ``decoys`` > 0)
with that share of decoy accounts -- runs the detector on the training data plus each
candidate, and keeps the strongest candidate whose pushing accounts the detector flags none
of (decoys may be flagged: that is what they are for).

Strength (stated rule): the number of target ratings the candidate plants,
``k x pushing accounts``; ties go to the candidate without decoys, then to the larger ``k``.
Candidates are tried strongest first and the search stops at the first one that passes, so
a detector run is spent only where needed.  When every candidate is caught, the one with the
fewest flagged pushing accounts (then the strongest) is returned and ``evaded`` is False in
the diagnostics.  Every candidate is drawn from the same seed, so the variants differ only in
``k`` and decoys, and the whole search is deterministic for a seed.

Threat model: white box on the defense side -- the training data and the detector's code
and cut (as a published detector is).  Budget: the ``subset`` attack's: ``n_fake_users``
accounts (decoys inside it), at most ``n_filler`` non-target items each.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from apt_core.attacks._accounts import divide_budget
from apt_core.attacks.base import Attack, AttackResult, Param, ProgressFn
from apt_core.attacks.subset import subset_profiles
from apt_core.data.dataset import Interactions
from apt_core.detection import DETECTORS, make_detector
from apt_core.errors import CancelledError


@dataclass(frozen=True)
class Candidate:
    """One variant the attacker tried and what the detector made of it."""

    k: int
    decoys: float
    pushers: int
    strength: int
    flagged_pushers: int | None = None
    flagged_other: int | None = None  # decoys and real users the detector flagged


def candidates(n_targets: int, n_fake_users: int, decoys: float) -> list[Candidate]:
    """Every variant, strongest first (see the module docstring for the order)."""
    out = []
    for share in ((0.0, decoys) if decoys > 0 else (0.0,)):
        pushers = divide_budget(n_fake_users, share, 0.0).pushers
        out += [Candidate(k, share, pushers, k * pushers) for k in range(n_targets, 0, -1)]
    return sorted(out, key=lambda c: (-c.strength, c.decoys, -c.k))


class AdaptiveAttack(Attack):
    name = "adaptive"
    summary = "The strongest subset variant (k, decoys) the product's own detector does not flag (ours)"
    paper = "ours (an attacker who knows the detector; docs/detection.md)"
    threat_model = "each item's rating mean and std, plus the detector's code and cut"
    rates_every_target = False
    params = (
        Param("detector", str, "cogroup", "the detector the attacker evades (run with its own cut on the training data plus each candidate)",
              choices=DETECTORS.live_names()),
        Param("decoys", float, 0.4, "share of the accounts spent on decoys in the decoy candidates (0: no decoy candidates)",
              low=0.0, high=1.0, high_open=True),
    )

    def __init__(self, detector: str = "cogroup", decoys: float = 0.4) -> None:
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> AttackResult:
        detector = make_detector(self.detector)
        seed = int(rng.integers(2**31 - 1))
        pending = candidates(len(targets), n_fake_users, self.decoys)
        if n_filler < 2:  # decoy accounts need a pair out of the filler budget
            pending = [c for c in pending if c.decoys == 0]
        tried: list[tuple[Candidate, AttackResult]] = []
        for step, cand in enumerate(pending):
            result = subset_profiles(train, targets, n_fake_users, n_filler, cand.k, decoys=cand.decoys, framing=0.0, framing_pairs=1,
                                     rng=np.random.default_rng(seed))
            flagged = detector.detect(result.profiles.inject(train), random_state=seed).flagged
            fake_flags = flagged[train.n_users:]
            pushers = int(result.diagnostics["pushers"])
            cand = Candidate(cand.k, cand.decoys, cand.pushers, cand.strength,
                             int(fake_flags[:pushers].sum()), int(flagged.sum() - fake_flags[:pushers].sum()))
            tried.append((cand, result))
            if progress is not None and progress((step + 1) / len(pending), f"{self.detector} on variant k={cand.k}, decoys={cand.decoys:g}") is False:
                raise CancelledError("adaptive attack cancelled")
            if cand.flagged_pushers == 0:
                break
        chosen, result = min(tried, key=lambda t: (t[0].flagged_pushers, -t[0].strength))
        diagnostics = {**result.diagnostics, "detector": self.detector, "evaded": chosen.flagged_pushers == 0,
                       "chosen": asdict(chosen), "tried": [asdict(c) for c, _ in tried]}
        return AttackResult(result.profiles, diagnostics)
