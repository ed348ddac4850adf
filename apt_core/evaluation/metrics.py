"""Evaluation metrics (docs/protocol.md): target HR@K, test HR@K, rank shift, RI, prediction shift.

Ranks are 0-based: the rank of item ``t`` for user ``u`` is the number of items ``u`` has
not rated in train whose score is strictly higher than ``t``'s.  Rated items are masked with
``-inf`` (not multiplied by a 0/1 mask: the authors' multiplication turns negative scores of
rated items into large positives).  A model with a NaN or infinite score is refused
(:class:`~apt_core.errors.DivergedError`): NaN never compares higher, so it would rank every
item first and a diverged model would score HR = 1.0.  Only real users (``u < n_real_users``) are ranked; fake and
ERM users never count.  Users are scored in chunks so memory stays bounded.

RI is defined only where the attack lifted target HR beyond noise (:data:`MIN_RI_LIFT`, and
:data:`RI_LIFT_SD_MULTIPLE` sds of the per-seed lifts with two seeds or more); otherwise it is
None with a reason (:data:`RI_UNDEFINED_REASONS`).  Above 1 it is over-correction: the defense
pushed the targets below their clean level (:class:`RobustnessImprovement` says by how much).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.data.split import Split
from apt_core.errors import DivergedError

DEFAULT_CHUNK_ELEMENTS = 1 << 24  # scores held at once: 16M floats = 64 MB


def rank_items(
    model,
    train: Interactions,
    items: np.ndarray,
    users: np.ndarray | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> np.ndarray:
    """Ranks of ``items`` for each user, among the items the user has not rated in ``train``.

    ``items`` is ``(n_items_to_rank,)`` (the same items for every user) or ``(n_users, k)``
    (per-user items; ``-1`` entries are skipped).  Returns an int64 array ``(n_users, k)``
    with ``-1`` where the pair is undefined (item rated in train, or ``-1`` given).
    Raises :class:`~apt_core.errors.DivergedError` when a ranked user has a NaN or infinite
    score (a diverged model has no ranking to report).
    """
    if users is None:
        users = np.arange(train.n_real_users)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    per_user = items.ndim == 2
    k = items.shape[1] if per_user else len(items)
    out = np.full((len(users), k), -1, dtype=np.int64)
    if len(users) == 0 or k == 0:
        return out
    indptr, indices, _ = train.csr
    device = getattr(model, "device", None) or torch.device("cpu")
    chunk = max(1, chunk_elements // max(1, train.n_items * max(1, min(k, 8))))
    with torch.no_grad():
        for start in range(0, len(users), chunk):
            block = users[start : start + chunk]
            scores = model.score_users(torch.from_numpy(block).to(device)).float().clone()
            if not bool(torch.isfinite(scores).all()):
                _raise_non_finite(scores)
            # Mask what each user rated in train (each user's CSR slice, gathered without a Python loop).
            lengths = indptr[block + 1] - indptr[block]
            rows = np.repeat(np.arange(len(block)), lengths)
            within = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            cols = np.asarray(indices)[np.repeat(indptr[block], lengths) + within]
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = -torch.inf
            if per_user:
                want = items[start : start + chunk]
            else:
                want = np.broadcast_to(items, (len(block), k))
            safe = np.where(want >= 0, want, 0)
            want_t = torch.from_numpy(np.ascontiguousarray(safe)).to(device)
            target_scores = scores.gather(1, want_t)
            # One comparison of the score block per ranked item: the same counts as one
            # (users x k x items) comparison, about 4x faster on a CPU (no k-fold bool tensor).
            higher = torch.stack([(scores > target_scores[:, j: j + 1]).sum(1) for j in range(k)], 1)
            ranks = higher.cpu().numpy()
            undefined = (want < 0) | np.isneginf(target_scores.cpu().numpy())
            ranks[undefined] = -1
            out[start : start + len(block)] = ranks
    return out


def _raise_non_finite(scores: torch.Tensor) -> None:
    kinds = [name for name, present in (("NaN", torch.isnan(scores).any()), ("inf", torch.isinf(scores).any())) if bool(present)]
    # Phrased to follow "the <phase> model diverged: " (the experiment adds the phase).
    raise DivergedError(f"its scores contain {'/'.join(kinds)}, so it has no ranking (training diverged)")


def hit_ratio(ranks: np.ndarray, k: int) -> float:
    """Share of defined pairs (rank >= 0) ranked in the top ``k``; NaN when none is defined."""
    valid = ranks >= 0
    if not valid.any():
        return float("nan")
    return float((ranks[valid] < k).mean())


def predicted_ratings(model, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Model scores (normalised scale) for users x items, shape ``(len(users), len(items))``."""
    device = getattr(model, "device", None) or torch.device("cpu")
    with torch.no_grad():
        s = model.score_users(torch.from_numpy(np.asarray(users, dtype=np.int64)).to(device))
        return s[:, torch.from_numpy(np.asarray(items, dtype=np.int64)).to(device)].cpu().numpy()


@dataclass
class Evaluation:
    """Everything measured on one fitted model for one split and target set."""

    k: int
    target_ranks: np.ndarray  # (n_real_users, n_targets), -1 where the user rated the target
    test_ranks: np.ndarray  # (n_real_users,), -1 where the user has no test item
    target_predictions: np.ndarray  # (n_real_users, n_targets) on the data set's scale

    @property
    def target_hr(self) -> float:
        return hit_ratio(self.target_ranks, self.k)

    @property
    def test_hr(self) -> float:
        return hit_ratio(self.test_ranks[:, None], self.k)

    def per_target_hr(self) -> np.ndarray:
        return np.array([hit_ratio(self.target_ranks[:, j : j + 1], self.k) for j in range(self.target_ranks.shape[1])])


def evaluate(model, split: Split, targets: np.ndarray, k: int = 50, scale_max: float | None = None) -> Evaluation:
    """Target HR@K and test HR@K of ``model`` for the real users of ``split``.

    Ranking uses the clean split's train ratings to mask rated items: real users' rows are
    identical in the poisoned data, and fake users are never evaluated.
    """
    train = split.train
    users = np.arange(train.n_real_users)
    targets = np.asarray(targets, dtype=np.int64)
    test_items = split.test_items[: len(users)]
    both = np.concatenate([np.broadcast_to(targets, (len(users), len(targets))), test_items[:, None]], axis=1)
    ranks = rank_items(model, train, both, users)
    scale_max = scale_max if scale_max is not None else train.scale.maximum
    preds = predicted_ratings(model, users, targets) * scale_max if len(targets) else np.zeros((len(users), 0))
    return Evaluation(k, ranks[:, : len(targets)], ranks[:, len(targets)], preds)


def rank_shift(before: Evaluation, after: Evaluation) -> np.ndarray:
    """Rank before minus rank after for every defined (user, target) pair (positive = promoted)."""
    valid = (before.target_ranks >= 0) & (after.target_ranks >= 0)
    return (before.target_ranks - after.target_ranks)[valid]


def prediction_shift(before: Evaluation, after: Evaluation) -> float:
    """Mean change of the targets' predicted rating (data set scale) over defined pairs."""
    valid = (before.target_ranks >= 0) & (after.target_ranks >= 0)
    if not valid.any():
        return float("nan")
    return float((after.target_predictions - before.target_predictions)[valid].mean())


#: the two ways target HR is scored (docs/victims.md, "Scoring conventions"): this project's
#: (real users only, items they rated masked, the default everywhere) and the one much of the
#: poisoning literature's code uses (every user of the poisoned model, fake users included, no masking)
SCORING_CONVENTIONS = ("real-masked", "all-unmasked")


def unmasked_target_hr(model, n_users: int, targets: np.ndarray, k: int, chunk_users: int = 1024) -> float:
    """Target HR@k in the ``all-unmasked`` convention: over all ``n_users`` users of the model
    (fake users included) and every (user, target) pair, the target's rank among all items,
    rated ones included (ties count against the target: strictly higher scores only)."""
    targets = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    device = getattr(model, "device", None) or torch.device("cpu")
    hits, pairs = 0, 0
    with torch.no_grad():
        for start in range(0, int(n_users), chunk_users):
            users = torch.arange(start, min(int(n_users), start + chunk_users), device=device)
            scores = model.score_users(users).float()
            if not bool(torch.isfinite(scores).all()):
                _raise_non_finite(scores)
            t_scores = scores[:, targets.to(device)]
            higher = (scores.unsqueeze(1) > t_scores.unsqueeze(2)).sum(-1)
            hits += int((higher < k).sum())
            pairs += higher.numel()
    return hits / pairs if pairs else float("nan")


#: RI is defined only when the attack lifted the targets' mean HR@K by at least this much (absolute HR).
#: Why 0.01: RI divides by the lift, so a lift near zero turns any difference into any RI (a lift of
#: 0.001 gave RI 11.0).  The floor is a minimum effect size (one point of HR@K, a third of the
#: smallest attack effect the paper reports, 0.03 on FilmTrust), not a noise estimate: one seed has
#: no spread to measure.  The noise is measured by the seed rule below where there are seeds to
#: measure it with (on the sample data the per-seed lifts of a 1% Average attack spread with sd 0.044
#: around 0.065 over 3 seeds: a one-seed RI there is rough).
MIN_RI_LIFT = 0.01
#: with two seeds or more, the mean lift must also exceed this many sample sds of the per-seed lifts
#: (attack HR minus origin HR of the same seed): a lift smaller than its own seed-to-seed spread is noise.
RI_LIFT_SD_MULTIPLE = 1.0

#: why RI is undefined (the ``ri_undefined_reason`` of a result row), in words for legends and pages
RI_UNDEFINED_REASONS: dict[str, str] = {
    "not-a-defense": "origin, attack and reference rows have no RI",
    "hr-undefined": "a hit ratio is undefined (no rankable user-target pair)",
    "attack-did-not-lift": "the attack did not raise target HR above the clean level",
    "lift-below-floor": f"the attack raised target HR by less than {MIN_RI_LIFT} (noise, not an attack effect)",
    "lift-within-noise": "the attack's lift is not larger than the spread of the per-seed lifts",
}

#: the rule in one sentence, for the CLI legend, tables and pages (one wording everywhere)
RI_RULE = (f"RI = 1 - (HR_defense - HR_origin) / (HR_attack - HR_origin), defined only where the attack lifted target HR "
           f"beyond noise: lift = HR_attack - HR_origin >= {MIN_RI_LIFT} and, with 2+ seeds, above "
           + ("the sd" if RI_LIFT_SD_MULTIPLE == 1.0 else f"{RI_LIFT_SD_MULTIPLE:g} x the sd")
           + " of the per-seed lifts; 1 = attack fully undone, 0 = no better than no defense, < 0 = worse than no defense, "
           "> 1 = over-correction (targets pushed below their clean level)")


#: the short notes tables print beside (or instead of) an RI; ``not-a-defense`` needs none
RI_NOTES: dict[str, str] = {
    "hr-undefined": "HR undefined",
    "attack-did-not-lift": "attack did not lift",
    "lift-below-floor": f"lift < {MIN_RI_LIFT}",
    "lift-within-noise": "lift within seed noise",
    "over-correction": "over-correction",
    "worse-than-no-defense": "worse than no defense",
}


def ri_note(ri: float | None, reason: str | None) -> str:
    """The short note for an RI cell: why it is undefined, "over-correction" above 1, "worse than no defense" below 0, else ""."""
    if ri is None or (isinstance(ri, float) and np.isnan(ri)):
        return RI_NOTES.get(reason or "", "")
    if ri > 1.0:
        return RI_NOTES["over-correction"]
    if ri < 0.0:
        return RI_NOTES["worse-than-no-defense"]
    return ""


def _missing(value) -> bool:
    return value is None or bool(np.isnan(value))


def ri_undefined_reason(hr_origin: float | None, hr_attack: float | None, lift_sd: float | None = None) -> str | None:
    """Why RI is undefined for this origin/attack pair (a key of :data:`RI_UNDEFINED_REASONS`), or None when it is defined.

    ``hr_origin``/``hr_attack``: target HR (means over seeds, or one seed's values);
    ``lift_sd``: sample sd of the per-seed lifts when there are two seeds or more (None otherwise).
    """
    if _missing(hr_origin) or _missing(hr_attack):
        return "hr-undefined"
    lift = hr_attack - hr_origin
    if lift <= 1e-12:
        return "attack-did-not-lift"
    if lift < MIN_RI_LIFT - 1e-12:
        return "lift-below-floor"
    if lift_sd is not None and not np.isnan(lift_sd) and lift <= RI_LIFT_SD_MULTIPLE * lift_sd:
        return "lift-within-noise"
    return None


def robustness_improvement(hr_defense: float, hr_origin: float, hr_attack: float, lift_sd: float | None = None) -> float | None:
    """RI = 1 - (HR_defense - HR_origin) / (HR_attack - HR_origin); None where the attack did not lift target HR beyond noise.

    Beyond noise (:func:`ri_undefined_reason`): a lift of at least :data:`MIN_RI_LIFT`, and above
    :data:`RI_LIFT_SD_MULTIPLE` sds of the per-seed lifts when ``lift_sd`` is given.  Not bounded:
    > 1 is over-correction (the defense pushed the targets below their clean level), < 0 worse
    than no defense.
    """
    if _missing(hr_defense) or ri_undefined_reason(hr_origin, hr_attack, lift_sd) is not None:
        return None
    return float(1.0 - (hr_defense - hr_origin) / (hr_attack - hr_origin))


@dataclass(frozen=True)
class RobustnessImprovement:
    """RI of one defended row with what explains it: why it is undefined, the lift, over-correction.

    ``below_clean``: how far below the clean (origin) target HR the defense pushed the targets,
    max(0, HR_origin - HR_defense), absolute HR; ``below_clean_share``: the same as a share of
    HR_origin (None when HR_origin is 0: nothing lies below 0).  Both are measured whether or not
    RI is defined.
    """

    ri: float | None
    reason: str | None  # a key of RI_UNDEFINED_REASONS, None when ri is defined
    lift: float | None  # HR_attack - HR_origin
    lift_sd: float | None  # sample sd of the per-seed lifts (None with one seed)
    below_clean: float | None
    below_clean_share: float | None

    @property
    def over_correction(self) -> bool:
        """RI above 1: the defense pushed the targets below their clean level (not "better than perfect")."""
        return self.ri is not None and self.ri > 1.0

    def to_row(self) -> dict:
        """The keys a result row adds beside ``ri`` (docs/cli.md)."""
        return {"ri_undefined_reason": self.reason, "ri_note": ri_note(self.ri, self.reason), "attack_lift": self.lift, "attack_lift_sd": self.lift_sd,
                "below_clean": self.below_clean, "below_clean_share": self.below_clean_share,
                "over_correction": self.over_correction}


def lift_spread(origin_hrs, attack_hrs) -> float | None:
    """Sample sd of the per-seed lifts (attack minus origin HR of the same seed); None with fewer than two seeds."""
    lifts = [a - o for o, a in zip(origin_hrs, attack_hrs) if not (_missing(o) or _missing(a))]
    return float(np.std(lifts, ddof=1)) if len(lifts) > 1 else None


def assess_ri(hr_defense: float | None, hr_origin: float | None, hr_attack: float | None,
              lift_sd: float | None = None) -> RobustnessImprovement:
    """:func:`robustness_improvement` with its reason, the lift and the over-correction measures."""
    lift = None if _missing(hr_origin) or _missing(hr_attack) else float(hr_attack - hr_origin)
    reason = ri_undefined_reason(hr_origin, hr_attack, lift_sd)
    if reason is None and _missing(hr_defense):
        reason = "hr-undefined"
    ri = None if reason is not None else robustness_improvement(hr_defense, hr_origin, hr_attack, lift_sd)
    below = share = None
    if not (_missing(hr_defense) or _missing(hr_origin)):
        below = float(max(0.0, hr_origin - hr_defense))
        share = below / hr_origin if hr_origin > 0 else None
    return RobustnessImprovement(ri, reason, lift, lift_sd, below, share)
