"""What makes our AUSH so strong on FilmTrust's unpopular targets (issue 16)?

Generates AUSH's fake profiles, then changes one ingredient at a time and measures plain
MF's target HR@50 on the poisoned data (mean over seeds):

- ``as generated``; ``no selected items`` (the 5 co-rated items dropped);
- ``filler ratings = item mean`` (same items, ratings of an Average attack);
- ``filler ratings = max`` (same items, all at the scale maximum);
- ``random fillers`` (same number of items, drawn uniformly like Random/Average; Average's ratings);
- ``popular fillers`` (each fake user's fillers = the most popular items, Average's ratings);
- ``targets only`` (fake users rate the targets and nothing else).
Also prints the mean popularity (train ratings) of the filler items of each attack.

    PYTHONPATH=. python scripts/aush_ablation.py --dataset DATA/reference-splits/filmtrust \
        --targets 1576,926,942,848,107 --seeds 3

(DATA: a folder holding the APT authors' split files, NAME.train.rating / NAME.test.rating.)
"""
from __future__ import annotations

import argparse

import numpy as np

from apt_core.attacks import make_attack
from apt_core.attacks.base import FakeProfiles
from apt_core.data import leave_one_out, load_dataset, select_targets
from apt_core.data.split import attack_budget
from apt_core.evaluation.metrics import evaluate
from apt_core.models.mf import fit_mf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    split = leave_one_out(data, 0)
    train = split.train
    targets = select_targets(split, [int(t) for t in args.targets.split(",")])
    b = attack_budget(train, 0.03)
    means = train.item_means()
    stds = train.item_stds()
    pop = train.item_counts
    results: dict[str, list[float]] = {}
    popularity: dict[str, list[float]] = {}

    def hr(fake: FakeProfiles, seed: int) -> float:
        return evaluate(fit_mf(fake.inject(train), random_state=seed), split, targets, 50).target_hr

    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        aush = make_attack("aush").generate(train, targets, b.n_fake_users, b.n_filler, seed, "cpu")
        avg = make_attack("average").generate(train, targets, b.n_fake_users, b.n_filler, seed, "cpu")
        for name, f in (("aush", aush), ("average", avg)):
            fill = ~np.isin(f.items, targets)
            popularity.setdefault(name, []).append(float(pop[f.items[fill]].mean()))
        is_t = np.isin(aush.items, targets)
        sel = make_attack("aush").n_selected
        from apt_core.attacks.aush import selected_items
        sel_items = selected_items(train, targets, sel)
        is_sel = np.isin(aush.items, sel_items)
        filler = ~is_t & ~is_sel
        snap = train.scale.snap

        def variant(mask_keep, ratings=None, items=None, users=None) -> FakeProfiles:
            u = aush.users if users is None else users
            i = aush.items if items is None else items
            r = aush.ratings if ratings is None else ratings
            return FakeProfiles(u[mask_keep], i[mask_keep], r[mask_keep], aush.n_fake_users, aush.n_items)

        everything = np.ones(len(aush.items), dtype=bool)
        r_mean = np.where(filler, snap(rng.normal(means[aush.items], stds[aush.items])), aush.ratings)
        r_max = np.where(filler, train.scale.maximum, aush.ratings)
        # random fillers: same count per user, uniform items (not targets / selected), Average ratings
        rand_items = aush.items.copy()
        pool = np.setdiff1d(np.arange(train.n_items), np.concatenate([targets, sel_items]))
        popular = pool[np.argsort(-pop[pool], kind="stable")]
        pop_items = aush.items.copy()
        for u in range(aush.n_fake_users):
            idx = np.flatnonzero((aush.users == u) & filler)
            rand_items[idx] = rng.choice(pool, len(idx), replace=False)
            pop_items[idx] = popular[: len(idx)]
        r_rand = np.where(filler, snap(rng.normal(means[rand_items], stds[rand_items])), aush.ratings)
        r_pop = np.where(filler, snap(rng.normal(means[pop_items], stds[pop_items])), aush.ratings)
        variants = {
            "as generated": variant(everything),
            "no selected items": variant(~is_sel),
            "filler ratings = item mean": variant(everything, r_mean),
            "filler ratings = max": variant(everything, r_max),
            "random fillers (Average ratings)": variant(everything, r_rand, rand_items),
            "popular fillers (Average ratings)": variant(everything, r_pop, pop_items),
            "targets only": variant(is_t),
            "Average attack": avg,
        }
        for name, fake in variants.items():
            results.setdefault(name, []).append(hr(fake, seed))
    print(f"filler popularity (mean train ratings per filler item): AUSH {np.mean(popularity['aush']):.1f}, "
          f"Average {np.mean(popularity['average']):.1f}, all items {pop.mean():.1f}")
    for name, vals in results.items():
        print(f"{name:36} target HR@50 {np.mean(vals):.4f}  seeds {[round(v, 4) for v in vals]}")


if __name__ == "__main__":
    main()
