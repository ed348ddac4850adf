"""Shared machinery of APT and APT-rand: the training schedule with regenerated ERM users.

Both defenses (Wu et al., "Fight Fire with Fire: Towards Robust Recommender Systems via
Adversarial Poisoning Training", SIGIR 2021, Algorithm 1) train MF on the observed data D
for ``T_pre`` epochs, then every ``T_inter`` epochs throw away all "empirical risk
minimisation" (ERM) users and draw new ones, and keep training on D plus those users with
the same optimiser state.  They differ only in how an ERM user's items and ratings are
chosen (:meth:`ERMTraining._generate`): APT samples items of negative influence and draws
their ratings from N(mean + r⁺, std), APT-rand samples items uniformly and draws from N(mean, std).

Where the per-item rating mean and standard deviation come from is the ``erm_stats``
setting (APT's step 6 in docs/algorithms.md):

- ``"clean"``: the training data before poisoning (``context.clean_train``), as the
  authors' code does.  An oracle: a real defender never has the clean data.
- ``"observed"``: the data the defender trains on, fake users included (honest).
- ``"robust"``: the observed data, but each item's median and scaled median absolute
  deviation, which a minority of fake ratings at the maximum moves less than the mean.
- ``"global"``: the observed data's global rating mean and standard deviation for every
  item.  Honest, and no detector: a few percent of fake users move the global mean by a
  few hundredths of a star, while on an unpopular target they *are* the item's ratings
  (85-97% of them at 3% fake users on ML-100K), so no per-item estimate -- mean, median or
  trimmed -- can see past them.
- ``"trusted"``: the observed data without the users a shilling detector flags
  (``detector``, default ``cogroup``; :mod:`apt_core.detection`).  Honest: the detector sees
  only the observed data and decides from it how many users to flag.
"""
from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import asdict, dataclass

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.data.loaders import DATASETS, dataset_spec
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult, Param
from apt_core.detection import DETECTORS
from apt_core.errors import CancelledError, ConfigError, warn
from apt_core.models.mf import MFTrainer
from apt_core.models.victims import make_trainer

ERM_STATS = ("observed", "clean", "robust", "trusted", "global")


@dataclass(frozen=True)
class APTSettings:
    """Per-data-set schedule of APT (the paper's Table 1 / the authors' code)."""

    t: float  # sampling temperature: p(j) ~ exp(-t * scaled influence)
    t_pre: int  # pre-training epochs before the first regeneration
    t_inter: int  # epochs between regenerations
    m_star: int  # items per ERM user
    r_plus: float  # rating lift of APT's ERM users, normalised (0.2 = 1 star of 5)


#: The paper's Table 1 schedule (docs/algorithms.md), from each data set's record
#: (:data:`apt_core.data.loaders.DATASETS`, its ``apt`` entry).  FilmTrust's T_pre is 5 in the
#: paper's text and 4 in the authors' released code: the ``paper`` preset uses 4.
DATASET_SETTINGS: dict[str, APTSettings] = {name: APTSettings(**spec.apt) for name, spec in DATASETS.items() if spec.apt}


def dataset_key(name: str) -> str:
    """Map a data-set name ("ML-100K", "movielens-100k", "ml100k"...) to a settings key ("other" if none)."""
    spec = dataset_spec(name)
    return spec.name if spec is not None and spec.apt else "other"


@dataclass(frozen=True)
class ERMPreset:
    """A named set of APT / APT-rand defaults (each explicit argument overrides its entry).

    ``erm_users`` maps data-set keys to an absolute number of ERM users; on other data sets
    the number is ``round(erm_fraction x real users)`` (docs/algorithms.md, APT step 1: 943 real ML-100K users
    give 5% = 47 ERM users, whatever the number of fake users).
    ``t_pre`` overrides the per-data-set T_pre of :data:`DATASET_SETTINGS`.
    ``single_rating_std`` is the spread of an item rated once: ``"zero"`` (``np.std`` of one
    value, what the authors' code uses) or ``"global"`` (the global standard deviation).
    ``solver`` is APT's influence solver (APT-rand has none).
    """

    name: str
    erm_users: dict
    erm_fraction: float
    t_pre: dict
    single_rating_std: str
    solver: str
    description: str


#: ``paper``: our reading of the authors' released code, taken where the paper's text differs
#: (LiSSA, FilmTrust T_pre 4, 50 ERM users on ML-100K and FilmTrust where the paper says 5%,
#: std 0 for an item rated once).  Elsewhere (no published code settings) 5% of the real users.
#: ``lab-v1``: APT Lab's settings before issue 16 (identity solver, 5% of the real users,
#: the paper's text's T_pre 5 on FilmTrust, global std for an item rated once), kept so that
#: earlier results stay reproducible.
ERM_PRESETS: dict[str, ERMPreset] = {
    "paper": ERMPreset("paper", {"ml-100k": 50, "filmtrust": 50}, 0.05, {"filmtrust": 4}, "zero", "lissa-lanczos",
                       "the authors' code: LiSSA influence, 50 ERM users on ML-100K and FilmTrust, T_pre 4 on FilmTrust, std 0 for items rated once"),
    "lab-v1": ERMPreset("lab-v1", {}, 0.05, {}, "global", "identity",
                        "APT Lab v1: gradient as influence (identity solver), 5% of the real users, T_pre 5 on FilmTrust"),
}
SINGLE_RATING_STD = ("zero", "global")


def get_preset(name: str) -> ERMPreset:
    if name not in ERM_PRESETS:
        raise ConfigError(f"unknown APT preset {name!r}: choose one of {', '.join(ERM_PRESETS)}")
    return ERM_PRESETS[name]


def settings_for(dataset: str, n_items: int, preset: str | None = None) -> APTSettings:
    key = dataset_key(dataset)
    spec = dataset_spec(dataset)
    if spec is not None and spec.apt:  # the data set's record (a data set added later counts too)
        base = APTSettings(**spec.apt)
    else:
        base = APTSettings(20.0, 15, 2, max(1, min(400, n_items // 4)), 0.2)
    if preset is not None and key in get_preset(preset).t_pre:
        base = APTSettings(base.t, int(get_preset(preset).t_pre[key]), base.t_inter, base.m_star, base.r_plus)
    return base


def item_statistics(data: Interactions, kind: str, single_rating_std: str = "global") -> tuple[np.ndarray, np.ndarray]:
    """Per-item (centre, spread) of raw ratings; unrated items get the global mean and std.

    An item rated once has spread 0 with ``single_rating_std="zero"`` (the authors' code),
    the global std with ``"global"``.
    """
    if single_rating_std not in SINGLE_RATING_STD:
        raise ConfigError(f"single_rating_std must be one of {', '.join(SINGLE_RATING_STD)}, got {single_rating_std!r}")
    if kind in ("observed", "clean"):
        stds = data.item_stds()
        if single_rating_std == "zero":
            stds = np.where(data.item_counts == 1, 0.0, stds)
        return data.item_means(), stds
    if kind == "global":
        mean = float(data.ratings.mean()) if len(data) else 0.0
        std = float(data.ratings.std()) if len(data) else 0.0
        return np.full(data.n_items, mean), np.full(data.n_items, std)
    # robust: median and 1.4826 * MAD (the normal-consistent scale), per item, vectorised.
    order = np.lexsort((data.ratings, data.items))
    items, ratings = data.items[order], data.ratings[order].astype(np.float64)
    counts = np.bincount(items, minlength=data.n_items)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    lo = starts + (counts - 1) // 2
    hi = starts + counts // 2
    median = np.full(data.n_items, float(np.median(data.ratings)) if len(data) else 0.0)
    median[has] = (ratings[lo[has]] + ratings[hi[has]]) / 2
    dev = np.abs(ratings - median[items])
    order2 = np.lexsort((dev, items))
    dev = dev[order2]
    mad = np.full(data.n_items, float(data.ratings.std()) if len(data) else 0.0)
    mad[has] = 1.4826 * (dev[lo[has]] + dev[hi[has]]) / 2
    # A MAD of 0 (all ratings equal, or one rating) would make every ERM rating identical;
    # fall back to the item's std, then the global std.
    std = data.item_stds()
    mad = np.where(mad > 0, mad, std)
    return median, mad


@dataclass
class ERMBatch:
    """One generation of ERM users: local user ids, items, raw ratings."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    extra: dict


#: The parameters APT and APT-rand share (None: the preset's / the data set's schedule entry).
ERM_PARAMS: tuple[Param, ...] = (
    Param("erm_fraction", float, None, "ERM users as a share of the real users: n* = round(erm_fraction x real users) (None: the preset's count)",
          low=0.0, high=1.0, optional=True, paper=0.05),
    Param("erm_stats", str, "observed", "where ERM ratings' item mean/std come from: observed (honest), clean (the authors' oracle), "
          "robust (median/MAD), trusted (users a detector flags left out), global (global mean/std)",
          choices=ERM_STATS, paper="clean"),
    Param("t", float, None, "sampling temperature: p(item) ~ exp(-t x scaled influence) (None: the data set's)",
          low=0.0, high=1000.0, optional=True, paper="40 FilmTrust, 20 ML-100K/ML-1M, 10 Yelp"),
    Param("t_pre", int, None, "plain-MF epochs before the first regeneration (None: the data set's)",
          low=0, high=1000, optional=True, paper="5 FilmTrust (code: 4), 15 ML-100K/ML-1M, 10 Yelp"),
    Param("t_inter", int, None, "epochs between regenerations (None: the data set's)",
          low=1, high=1000, optional=True, paper="3 FilmTrust, 2 elsewhere"),
    Param("m_star", int, None, "items per ERM user (None: the data set's)",
          low=1, high=10_000, optional=True, paper="100 FilmTrust, 400 ML-100K, 700 ML-1M, 2500 Yelp"),
    Param("r_plus", float, None, "rating lift of ERM users, normalised: 0.2 = one star of five (None: the data set's)",
          low=-1.0, high=1.0, optional=True, paper="0.25 FilmTrust, 0.2 elsewhere"),
    Param("erm_users", int, None, "ERM users as a count, instead of erm_fraction (None: the preset's count)",
          low=0, high=100_000, optional=True, paper="50 on ML-100K and FilmTrust (authors' code)"),
    Param("preset", str, "paper", "defaults: paper (the authors' code) or lab-v1 (APT Lab before LiSSA)",
          choices=tuple(ERM_PRESETS), paper="paper"),
    Param("single_rating_std", str, None, "spread of an item rated once: zero (authors' code) or global std (None: the preset's)",
          choices=SINGLE_RATING_STD, optional=True, paper="zero"),
    Param("detector", str, "cogroup", "erm_stats=trusted: the shilling detector whose flagged users are left out of the statistics",
          choices=DETECTORS.live_names()),
)


class ERMTraining(Defense):
    """Common schedule of APT / APT-rand; subclasses choose the ERM profiles."""

    params = ERM_PARAMS

    def __init__(
        self,
        erm_fraction: float | None = None,
        erm_stats: str = "observed",
        t: float | None = None,
        t_pre: int | None = None,
        t_inter: int | None = None,
        m_star: int | None = None,
        r_plus: float | None = None,
        erm_users: int | None = None,
        preset: str = "paper",
        single_rating_std: str | None = None,
        detector: str = "cogroup",
    ):
        # Validated from ERM_PARAMS; None stays None = the preset's / data set's value, resolved
        # when fitting (n_erm_users, resolved_settings, resolved_single_rating_std), so that
        # set_params(preset=...) behaves exactly as a fresh construction with that preset.
        self._set_declared(locals())

    def check_params(self) -> None:
        if self.erm_users is not None and self.erm_fraction is not None:
            raise ConfigError(f"{self.name}: give either erm_users (a count) or erm_fraction (a share of the real users), not both")

    def resolved_single_rating_std(self) -> str:
        """``single_rating_std``, or the preset's when None (read at fit time, never stored)."""
        return self.single_rating_std if self.single_rating_std is not None else get_preset(self.preset).single_rating_std

    def n_erm_users(self, n_real_users: int, dataset: str = "") -> int:
        """n*: the explicit ``erm_users``, or round(``erm_fraction`` x real users), else the
        preset's count for ``dataset``, else the preset's share of the real users.

        Real users only (docs/algorithms.md, APT step 1): the budget is a share of the service's own
        user base, so the attack's size does not buy the defender extra ERM users."""
        if self.erm_users is not None:
            if self.erm_users > n_real_users:  # the declared bound is the machine's; this one is the data's
                raise ConfigError(f"{self.name}.erm_users {self.erm_users} exceeds the {n_real_users} real users: at most "
                                  f"{n_real_users} (n* is a share of the real users, as erm_fraction <= 1)")
            return self.erm_users
        if self.erm_fraction is not None:
            return int(round(self.erm_fraction * n_real_users))
        p = get_preset(self.preset)
        key = dataset_key(dataset)
        if key in p.erm_users:
            return int(p.erm_users[key])
        return int(round(p.erm_fraction * n_real_users))

    def resolved_settings(self, dataset: str, n_items: int) -> APTSettings:
        base = settings_for(dataset, n_items, self.preset)
        t, r_plus = getattr(self, "t", None), getattr(self, "r_plus", None)  # APT-rand has neither
        return APTSettings(
            float(t) if t is not None else base.t,
            int(self.t_pre) if self.t_pre is not None else base.t_pre,
            int(self.t_inter) if self.t_inter is not None else base.t_inter,
            min(n_items, int(self.m_star) if self.m_star is not None else base.m_star),
            float(r_plus) if r_plus is not None else base.r_plus,
        )

    def _statistics(self, train: Interactions, context: DefenseContext) -> FitStatistics:
        """The ERM users' item statistics for this fit (and the detection behind them, if any).

        Returned, never stored on ``self``: one defense object may be fitted from two threads
        at once (the dashboard's background grid)."""
        single = self.resolved_single_rating_std()
        if self.erm_stats == "trusted":
            means, stds, detection = trusted_statistics(train, self.detector, context.random_state, single, context)
            return FitStatistics(means, stds, detection)
        if self.erm_stats == "clean":
            if context.clean_train is None:
                raise ConfigError("erm_stats='clean' needs the clean training data (context.clean_train); use 'observed'")
            source = context.clean_train
            if source.n_items != train.n_items:
                raise ConfigError("the clean training data has a different number of items than the observed data")
            return FitStatistics(*item_statistics(source, "clean", single))
        return FitStatistics(*item_statistics(train, self.erm_stats, single))

    @abstractmethod
    def _generate(self, state: "RoundState") -> ERMBatch:
        ...

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        return self._train(train, context, self._statistics(train, context), context.real_user_count(train))

    def _train(self, train: Interactions, context: DefenseContext, stats: "FitStatistics", n_real_users: int) -> DefenseResult:
        """Algorithm 1 on ``train`` with the ERM statistics ``stats``; n* counts ``n_real_users``.

        Everything of this fit lives in locals and ``RoundState``: nothing is written to ``self``."""
        t_start = time.perf_counter()
        cfg = context.mf_config
        settings = self.resolved_settings(context.dataset, train.n_items)
        n_obs = train.n_users
        # n* = erm_users, or erm_fraction x real users (docs/algorithms.md).  The real users are the
        # service's own accounts before the attack; which of today's accounts are fake stays
        # unknown to the defense (n_real_users only sizes the budget, as the service's own count).
        n_erm = self.n_erm_users(n_real_users, context.dataset)
        means, stds = stats.means, stats.stds
        rng = np.random.default_rng([int(context.random_state), 7411])
        # MF, or the context's other victim (same schedule; its own loss and optimiser).
        trainer = make_trainer(n_obs, train.n_items, context)
        d_users, d_items, d_ratings = trainer.tensors(train)
        users, items, ratings = d_users, d_items, d_ratings
        state = RoundState(self, train, context, settings, trainer, d_users, d_items, d_ratings, means, stds, rng, n_erm)
        rounds: list[dict] = []
        seconds_regen = 0.0
        for epoch in range(cfg.epochs):
            if n_erm > 0 and epoch >= settings.t_pre and (epoch - settings.t_pre) % settings.t_inter == 0:
                t0 = time.perf_counter()
                # ERM rows are added at the first regeneration (a no-op later), so the
                # pre-training is exactly plain MF with the same seed (a clean baseline).
                trainer.grow_users(n_obs + n_erm)
                state.epoch = epoch
                batch = self._generate(state)
                e_users = torch.from_numpy(batch.users + n_obs).to(trainer.device)
                e_items = torch.from_numpy(batch.items).to(trainer.device)
                e_ratings = torch.from_numpy(train.scale.normalise(batch.ratings)).to(trainer.device)
                users = torch.cat([d_users, e_users])
                items = torch.cat([d_items, e_items])
                ratings = torch.cat([d_ratings, e_ratings])
                seconds = time.perf_counter() - t0
                seconds_regen += seconds
                rounds.append({
                    "epoch": epoch,
                    # every ERM user rates the same number of items: one row per user
                    "erm_items": batch.items.reshape(n_erm, -1).astype(np.int32),
                    "erm_ratings_mean": float(batch.ratings.mean()) if len(batch.ratings) else float("nan"),
                    "seconds": seconds,
                    **batch.extra,
                })
                state.last_batch = batch
            trainer.train_epochs(users, items, ratings, 1)
            if context.progress is not None and context.progress((epoch + 1) / max(1, cfg.epochs), f"{self.name}: epoch {epoch + 1}/{cfg.epochs}") is False:
                raise CancelledError("training cancelled")
        diagnostics = fit_diagnostics(self, cfg.epochs, settings, n_erm, rounds, state, stats, seconds_regen,
                                      time.perf_counter() - t_start, trainer.last_loss)
        return DefenseResult(trainer.model(), diagnostics)


@dataclass(frozen=True)
class FitStatistics:
    """Per-item centre and spread for one fit's ERM ratings, and the detection they came from (if any)."""

    means: np.ndarray
    stds: np.ndarray
    detection: object | None = None


@dataclass
class RoundState:
    """What a regeneration may look at (passed to :meth:`ERMTraining._generate`)."""

    defense: ERMTraining
    train: Interactions
    context: DefenseContext
    settings: APTSettings
    trainer: MFTrainer  # or a neural victim's trainer (apt_core.models.victims)
    d_users: torch.Tensor
    d_items: torch.Tensor
    d_ratings: torch.Tensor
    means: np.ndarray
    stds: np.ndarray
    rng: np.random.Generator
    n_erm: int
    epoch: int = 0
    last_batch: ERMBatch | None = None
    cache: dict | None = None


def without_users(train: Interactions, drop: np.ndarray) -> Interactions:
    """``train`` minus every rating of the users where ``drop`` is True (user ids unchanged)."""
    keep = ~np.asarray(drop, dtype=bool)[train.users]
    return Interactions(train.users[keep], train.items[keep], train.ratings[keep], train.n_users, train.n_items, train.scale, train.n_real_users)


def compact_users(train: Interactions, drop: np.ndarray) -> tuple[Interactions, np.ndarray]:
    """``train`` without the dropped users, the kept ones renumbered ``0..k-1`` in order.

    Returns the compact data and the kept users' original ids.  Training on it is training
    on what the defender keeps: the dropped accounts no longer exist, so they take no rows
    (and no draws of the initialiser's random stream) in the model.
    """
    drop = np.asarray(drop, dtype=bool)
    kept_ids = np.flatnonzero(~drop)
    new_id = np.full(train.n_users, -1, dtype=np.int64)
    new_id[kept_ids] = np.arange(len(kept_ids))
    keep = ~drop[train.users]
    n_real = int((kept_ids < train.n_real_users).sum())
    compact = Interactions(new_id[train.users[keep]], train.items[keep], train.ratings[keep], len(kept_ids), train.n_items, train.scale, n_real)
    return compact, kept_ids


def expand_users(model, kept_ids: np.ndarray, n_users: int):
    """A model over all ``n_users`` ids from one fitted on the kept users only.

    A dropped user (flagged, its ratings unused) gets the mean of the kept users' factors:
    it is recommended what an average user would be.  Any victim (MF, LightGCN, NeuMF):
    :func:`apt_core.models.victims.expand_user_rows`.
    """
    from apt_core.models.victims import expand_user_rows

    return expand_user_rows(model, kept_ids, n_users)


def trusted_statistics(train: Interactions, detector: str, random_state: int = 0, single_rating_std: str = "global",
                       context: DefenseContext | None = None):
    """Item (mean, std) over the users the detector does not flag, plus the detection
    (through ``context.detect``, i.e. the run's artifact cache, when a context is given)."""
    from apt_core.detection import make_detector

    det = make_detector(detector)
    detection = context.detect(det, train) if context is not None else det.detect(train, random_state)
    kept = without_users(train, detection.flagged)
    # An item rated only by flagged users falls back to the global statistics of the kept data.
    means, stds = item_statistics(kept, "observed", single_rating_std)
    return means, stds, detection


def fit_diagnostics(defense: "ERMTraining", epochs: int, settings, n_erm: int, rounds: list, state: RoundState,
                    stats: "FitStatistics", seconds_regen: float, seconds_total: float, final_loss: float) -> dict:
    """What one ERM fit reports (one by one or in a batch), with a warning when no round ever ran."""
    last = state.last_batch
    diagnostics = {
        "defense": defense.name,
        "erm_stats": defense.erm_stats,
        "preset": defense.preset,
        "n_erm_users": n_erm,
        "settings": asdict(settings),
        "rounds": rounds,
        "last_erm": None if last is None else {"users": last.users.astype(np.int32), "items": last.items.astype(np.int32), "ratings": last.ratings},
        "seconds_regeneration": seconds_regen,
        "seconds_total": seconds_total,
        "final_loss": final_loss,
    }
    if stats.detection is not None:
        diagnostics.update(detection_diagnostics(stats.detection))
    if not rounds:
        diagnostics["note"] = f"no regeneration happened: {epochs} epochs <= T_pre = {settings.t_pre} (or no ERM users); this was plain MF"
        if n_erm > 0:
            # Said aloud: the row would otherwise equal the attack row with no word why.
            warn(f"{defense.name}: {epochs} training epochs <= T_pre = {settings.t_pre}, so no ERM users were ever added and "
                 f"this row is plain MF; train more epochs or lower --param {defense.name}.t_pre")
    return diagnostics


def detection_diagnostics(detection) -> dict:
    """What a detection-based defense reports (the evaluation turns it into metrics)."""
    return {
        "detector": detection.detector,
        "detection_cut": detection.cut,
        "detection_threshold": detection.threshold,
        "flagged_users": np.flatnonzero(detection.flagged).astype(np.int32),
        "suspicion": detection.scores.astype(np.float32),
    }


def sample_without_replacement(logits: np.ndarray, n_rows: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n_rows`` independent draws of ``k`` distinct columns with p ∝ exp(logits), vectorised.

    Gumbel-top-k (Efraimidis-Spirakis): the top ``k`` of ``logits + Gumbel noise`` has the
    distribution of ``k`` successive draws without replacement, i.e. what the authors'
    per-user ``np.random.choice(..., replace=False, p=p)`` loop draws.
    """
    logits = np.asarray(logits, dtype=np.float64)
    k = min(int(k), logits.shape[-1])
    keys = logits[None, :] + rng.gumbel(size=(n_rows, logits.shape[-1]))
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return part


def draw_ratings(items: np.ndarray, centre: np.ndarray, spread: np.ndarray, lift: float, train: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Ratings ~ N(centre_j + lift, spread_j) on the raw scale, rounded to the grid and clipped."""
    raw = rng.normal(centre[items] + lift, spread[items])
    return train.scale.snap(raw)
