"""Generate APT Lab's bundled sample data set (``ratings.csv`` and ``items.csv``).

The data are synthetic and owe nothing to any licensed data set:

* planted preferences: users and items get 8-dimensional latent factors, and the rating of
  a pair is a noisy, rounded function of their dot product plus user and item offsets;
* long-tail item popularity: items are drawn with probability proportional to a Zipf-like
  weight, so a few hits collect many ratings and hundreds of items collect fewer than five
  (the "unpopular" target pool of the paper);
* heavy-tailed user activity: the number of ratings per user is log-normal (at least 8);
* missing-not-at-random: users are more likely to rate items they would like;
* ratings on the 1..5 grid.

Run ``python sample_data/make_sample.py`` to rebuild; the output is byte-identical for a
given ``--seed``.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ADJECTIVES = (
    "Silent Crimson Hidden Broken Golden Distant Frozen Electric Wild Quiet Lonely Burning Velvet "
    "Iron Paper Midnight Hollow Bright Secret Last Northern Lost Endless Gentle Savage Little"
).split()
NOUNS = (
    "Harbor River Empire Garden Signal Voyage Mirror Orchard Station Kingdom Lantern Desert "
    "Archive Circus Comet Valley Bridge Machine Forest Island Letter Horizon Tower Summer Engine"
).split()


def generate(
    n_users: int = 600,
    n_items: int = 1000,
    dim: int = 8,
    seed: int = 2021,
    activity_median: float = 50.0,
    zipf: float = 1.5,
    quality_sd: float = 0.3,
    taste: float = 1.1,
) -> tuple[list, list]:
    """Ratings ``(user, item, rating)`` and titles ``(item, title)``, 1-based ids.

    The defaults were chosen so that the paper's phenomena show (measured with
    ``python -m apt_core run --dataset sample --attack average --targets unpopular``): users
    rate about as many items as in MovieLens relative to the catalogue, hundreds of items
    sit in the 1-4 ratings tail, and tastes are shared enough (item quality spread 0.3 next
    to taste weight 1.1) that 3% Average fake users lift unpopular targets from HR@50 = 0 to
    roughly 0.4.  A larger quality spread makes popular items dominate every top-50 and the
    attack fades; fewer ratings per user leave the fake profiles too short to matter.
    """
    rng = np.random.default_rng(seed)
    user_f = rng.normal(0, 1, (n_users, dim))
    item_f = rng.normal(0, 1, (n_items, dim))
    user_bias = rng.normal(0, 0.35, n_users)
    item_quality = rng.normal(0, quality_sd, n_items)
    # Zipf-like popularity over a random item order.
    pop_rank = rng.permutation(n_items)
    popularity = 1.0 / (pop_rank + 8.0) ** zipf
    activity = np.clip(np.round(rng.lognormal(mean=np.log(activity_median), sigma=0.8, size=n_users)), 8, 250).astype(int)
    affinity = user_f @ item_f.T / np.sqrt(dim)
    rows = []
    for u in range(n_users):
        weights = popularity * np.exp(0.6 * affinity[u] + 0.5 * item_quality)
        weights /= weights.sum()
        items = rng.choice(n_items, size=min(activity[u], n_items), replace=False, p=weights)
        raw = 3.4 + user_bias[u] + item_quality[items] + taste * affinity[u, items] + rng.normal(0, 0.55, len(items))
        ratings = np.clip(np.round(raw), 1, 5).astype(int)
        rows.extend((u + 1, int(i) + 1, int(r)) for i, r in zip(items, ratings))
    titles = []
    used = set()
    for j in range(n_items):
        while True:
            title = f"The {ADJECTIVES[rng.integers(len(ADJECTIVES))]} {NOUNS[rng.integers(len(NOUNS))]}"
            year = int(rng.integers(1950, 2021))
            name = f"{title} ({year})"
            if name not in used:
                used.add(name)
                break
        titles.append((j + 1, name))
    return rows, titles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    rows, titles = generate(seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "ratings.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user", "item", "rating"])
        writer.writerows(rows)
    with open(args.out / "items.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item", "title"])
        writer.writerows(titles)
    print(f"wrote {len(rows)} ratings of {len({r[0] for r in rows})} users on {len({r[1] for r in rows})} items to {args.out}")


if __name__ == "__main__":
    main()
