"""docs/results.md's Table 2 / Table 3 sections, written from a ``reproduce`` output folder (issue 26).

    python -m apt_core reproduce --dataset ml-100k --data-dir DATA --seeds 5 --out OUT --no-figures --no-detection
    python scripts/reproduce_tables.py OUT                # print the Markdown
    python scripts/reproduce_tables.py OUT --write docs/results.md --name ml-100k
        # replace the text between <!-- reproduce-tables:ml-100k:begin ... --> and <!-- reproduce-tables:ml-100k:end -->

Every cell comes from ``per_seed.csv`` (one row per scenario x phase x seed): mean ± sample sd
over the seeds, APT's RI from ``table2_target_hr.csv`` (the project's RI rule, on the mean hit
ratios) with the range of the per-seed RIs beside it, and paired t-tests over the seeds
(:func:`apt_core.stats.paired_ttest`) where the text compares two rows: APT against the best
other defense of the cell (lowest mean target HR among AT, PCMF, APT-rand) and, for test HR,
APT and AT against the clean model of the same seed.  The paper's numbers come from
:mod:`apt_core.reporting.paper`, never from this script.  Nothing is typed by hand, so the
docs' numbers are the run's; the run's outputs themselves stay out of the repository (they
are derived from licensed data).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apt_core.reporting.paper import ATTACK_LABELS, paper_value  # noqa: E402
from apt_core.stats import mean_sd, paired_ttest  # noqa: E402

OTHER_DEFENSES = ("at", "pcmf", "apt-rand")
LABELS = {"origin": "clean MF", "attack": "attack", "at": "AT", "pcmf": "PCMF", "apt-rand": "APT-rand", "apt": "APT"}


@dataclass(frozen=True)
class RunTables:
    """One ``reproduce`` output folder: its per-seed rows and its long Table 2 (for RI)."""

    dataset: str
    per_seed: pd.DataFrame
    table2: pd.DataFrame

    @classmethod
    def read(cls, folder: Path) -> "RunTables":
        table2 = pd.read_csv(folder / "table2_target_hr.csv")
        return cls(str(table2["dataset"].iloc[0]), pd.read_csv(folder / "per_seed.csv"), table2)

    def values(self, targets: str, attack: str, phase: str, metric: str) -> pd.Series:
        """Per-seed values of one cell, indexed by seed."""
        rows = self.per_seed[(self.per_seed["targets"] == targets) & (self.per_seed["attack"] == attack)
                             & (self.per_seed["phase"] == phase)]
        return rows.set_index("seed")[metric].sort_index()

    def n_seeds(self) -> int:
        return int(self.per_seed["seed"].nunique())


def fmt_mean_sd(values: pd.Series) -> str:
    mean, sd = mean_sd(list(values))
    if mean is None:
        return "n/a"
    digits = 3 if mean >= 0.01 else 4
    if len(values) < 2:
        return f"{mean:.{digits}f} (one seed)"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "no test"
    return f"p {p:.2g}" if p >= 0.001 else "p < 0.001"


def paired(a: pd.Series, b: pd.Series) -> tuple[float | None, float | None]:
    """Mean of a - b over the seeds both have, and the paired test's p."""
    common = a.index.intersection(b.index)
    test = paired_ttest(list(a.loc[common]), list(b.loc[common]))
    return test.mean_diff, test.p_value


def _paper(dataset: str, targets: str, metric: str, attack: str, phase: str) -> str:
    pv = paper_value(dataset, targets, metric, attack, phase)
    return "" if pv is None else f" ({pv})"


def _ri_cell(run: RunTables, targets: str, attack: str) -> str:
    row = run.table2[(run.table2["targets"] == targets) & (run.table2["attack"] == attack) & (run.table2["phase"] == "apt")]
    ri = None if row.empty else row["ri"].iloc[0]
    if ri is None or pd.isna(ri):
        return "– (lift below the RI rule's floor)"
    seeds = run.values(targets, attack, "apt", "ri").dropna()
    spread = f" (seeds {seeds.min():.2f} to {seeds.max():.2f})" if len(seeds) > 1 else ""
    return f"{ri:.2f}{spread}"


def table2_markdown(run: RunTables) -> str:
    """Target HR@50: attack and every defense, mean ± sd, APT's RI, APT against the best other defense."""
    head = ("| targets | attack | attack HR | AT | PCMF | APT-rand | APT (clean stats) | RI of APT (per-seed range) "
            "| APT − best other defense (paired t) |")
    lines = [head, "|" + "---|" * 9]
    for targets in dict.fromkeys(run.per_seed["targets"]):
        for attack in dict.fromkeys(run.per_seed[run.per_seed["targets"] == targets]["attack"]):
            cells = [targets, ATTACK_LABELS.get(attack, attack)]
            for phase in ("attack", "at", "pcmf", "apt-rand", "apt"):
                cells.append(fmt_mean_sd(run.values(targets, attack, phase, "target_hr"))
                             + _paper(run.dataset, targets, "target_hr", attack, phase))
            cells.append(_ri_cell(run, targets, attack))
            best = min(OTHER_DEFENSES, key=lambda d: run.values(targets, attack, d, "target_hr").mean())
            diff, p = paired(run.values(targets, attack, "apt", "target_hr"), run.values(targets, attack, best, "target_hr"))
            cells.append(f"{diff:+.3f} vs {LABELS[best]} ({fmt_p(p)})")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table3_markdown(run: RunTables) -> str:
    """Test HR@50: clean MF, attack and every defense, mean ± sd; APT and AT against clean MF of the same seed."""
    head = "| targets | attack | clean MF | attack | AT | PCMF | APT-rand | APT | APT − clean MF (paired t) | AT − clean MF (paired t) |"
    lines = [head, "|" + "---|" * 10]
    for targets in dict.fromkeys(run.per_seed["targets"]):
        for attack in dict.fromkeys(run.per_seed[run.per_seed["targets"] == targets]["attack"]):
            cells = [targets, ATTACK_LABELS.get(attack, attack)]
            for phase in ("origin", "attack", "at", "pcmf", "apt-rand", "apt"):
                cells.append(fmt_mean_sd(run.values(targets, attack, phase, "test_hr"))
                             + _paper(run.dataset, targets, "test_hr", attack, phase))
            origin = run.values(targets, attack, "origin", "test_hr")
            for phase in ("apt", "at"):
                diff, p = paired(run.values(targets, attack, phase, "test_hr"), origin)
                cells.append(f"{diff:+.3f} ({fmt_p(p)})")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ri_summary(run: RunTables) -> str:
    """Per target set: APT's mean RI over the attacks, and its spread over the seeds (each seed's mean over attacks)."""
    out = []
    for targets in dict.fromkeys(run.per_seed["targets"]):
        part = run.per_seed[(run.per_seed["targets"] == targets) & (run.per_seed["phase"] == "apt")]
        attacks = list(dict.fromkeys(part["attack"]))
        by_seed = part.groupby("seed")["ri"].mean()
        ri_means = run.table2[(run.table2["targets"] == targets) & (run.table2["phase"] == "apt")]["ri"]
        mean, sd = mean_sd(list(by_seed))
        out.append(f"- {targets} targets, APT's RI over {', '.join(ATTACK_LABELS.get(a, a) for a in attacks)}: "
                   f"mean of the cells' RIs {ri_means.mean():.2f} (lowest {ri_means.min():.2f}); "
                   f"per seed (mean over the attacks) {mean:.2f} ± {sd:.2f} over {len(by_seed)} seeds")
    return "\n".join(out)


def markdown(run: RunTables) -> str:
    return "\n\n".join([
        f"Target HR@50 ({run.dataset}, mean ± sample sd over {run.n_seeds()} seeds; the paper's number in parentheses "
        "where it gives one, † a range over its attacks):",
        table2_markdown(run),
        ri_summary(run),
        f"Test HR@50 ({run.dataset}, same runs):",
        table3_markdown(run),
    ])


def replace_between_markers(text: str, name: str, body: str) -> str:
    begin = re.compile(rf"<!-- reproduce-tables:{re.escape(name)}:begin[^>]*-->")
    end = f"<!-- reproduce-tables:{name}:end -->"
    match = begin.search(text)
    if match is None or end not in text[match.end():]:
        raise SystemExit(f"markers for {name!r} not found")
    stop = text.index(end, match.end())
    return text[:match.end()] + "\n" + body + "\n" + text[stop:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a reproduce --out folder (per_seed.csv, table2_target_hr.csv)")
    ap.add_argument("--write", type=Path, help="a Markdown file whose reproduce-tables markers to fill")
    ap.add_argument("--name", help="the markers' name (reproduce-tables:NAME:begin / :end)")
    args = ap.parse_args()
    body = markdown(RunTables.read(args.folder))
    if args.write is None:
        print(body)
        return
    if not args.name:
        raise SystemExit("--write needs --name")
    args.write.write_text(replace_between_markers(args.write.read_text(), args.name, body))


if __name__ == "__main__":
    main()
