"""Markdown tables with spreads from per-seed runs: ``lissa_tables.py`` lines or ``run --json`` outputs (issue 26).

    PYTHONPATH=. python scripts/lissa_tables.py ... > OUT.jsonl          # one JSON object per (attack, APT variant)
    python -m apt_core run ... --seeds 3 --json > RUN.json                # or: one run per file
    python scripts/seed_tables.py OUT.jsonl [RUN.json ...] \
        --compare 'APT `paper`, clean' 'APT `lab-v1`, clean'             # a paired test between two rows
    python scripts/seed_tables.py RUN*.json --settings ROW... [--compare A B]  # a row per setting, a summary per defense
    python scripts/seed_tables.py DETECT*.json --detect [--compare A B]       # detect --json: ROC-AUC per detector

Every cell is the mean ± sample sd over the seeds of target HR@50, test HR@50 in parentheses
(:func:`apt_core.stats.mean_sd`); ``--compare A B`` adds a row with the mean per-seed difference
A − B of target HR and its paired t-test (:func:`apt_core.stats.paired_ttest`, seeds paired by
number: the same seed is the same fake profiles and the same initialisation); ``--per-seed``
prints every seed's value below the table.  Nothing is typed by hand; the runs' outputs stay
out of the repository (they are derived from licensed data).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apt_core.stats import mean_sd, paired_ttest  # noqa: E402

ATTACK_ORDER = ("random", "average", "aush", "pga", "tna")
ATTACK_NAMES = {"random": "Random", "average": "Average", "aush": "AUSH", "pga": "PGA", "tna": "TNA"}


@dataclass
class Cell:
    """One (row, attack) of a table: per-seed target and test HR, keyed by seed."""

    target_hr: dict[int, float] = field(default_factory=dict)
    test_hr: dict[int, float] = field(default_factory=dict)
    #: RI from the mean hit ratios and per seed (``run --json`` only; None where the RI rule leaves it undefined)
    ri: float | None = None
    ri_seeds: dict[int, float] = field(default_factory=dict)
    #: real users the phase's detector flagged, mean over the seeds (``run --json`` detection rows only)
    real_flagged: float | None = None


@dataclass
class SeedTable:
    """Cells of one setting (data set and target set): ``cells[row][attack]``; rows and attacks in reading order."""

    dataset: str
    targets: str
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def cell(self, row: str, attack: str) -> Cell:
        return self.cells.setdefault(row, {}).setdefault(attack, Cell())

    def attacks(self) -> list[str]:
        seen = {a for row in self.cells.values() for a in row}
        return [a for a in ATTACK_ORDER if a in seen] + sorted(seen - set(ATTACK_ORDER))


def _put(cell: Cell, target: list | dict, test: list | dict) -> None:
    for store, values in ((cell.target_hr, target), (cell.test_hr, test)):
        items = values.items() if isinstance(values, dict) else enumerate(values)
        for seed, value in items:
            if value is not None:
                store[int(seed)] = float(value)


def read_lissa_line(record: dict, tables: dict[tuple[str, str], SeedTable]) -> None:
    """One ``lissa_tables.py`` line: its attack row and its APT variant's row (seeds 0..n-1 in order)."""
    key = (str(record["dataset"]), ",".join(str(t) for t in record["targets"]))
    table = tables.setdefault(key, SeedTable(*key))
    rows = record["rows"]
    label = f"APT `{record['variant']}`, {record['erm_stats']}"
    for phase, name in (("origin", "origin (clean MF)"), ("attack", "attack (no defense)"), ("apt", label)):
        if phase in rows:
            cell = table.cell(name, record["attack"])
            _put(cell, rows[phase]["target_hr_seeds"], rows[phase]["test_hr_seeds"])


def read_run_json(record: dict, tables: dict[tuple[str, str], SeedTable]) -> None:
    """One ``run --json`` output: a row per phase (APT phases named with their item statistics)."""
    cfg = record.get("config", {})
    targets = cfg.get("targets") or ",".join(str(t) for t in record.get("target_ids", []))
    dataset = record["dataset"]["name"] if isinstance(record["dataset"], dict) else record["dataset"]
    key = (str(dataset), str(targets))
    table = tables.setdefault(key, SeedTable(*key))
    attack = str(cfg.get("attack", "?"))
    stats = cfg.get("erm_stats")
    preset = cfg.get("apt_preset")
    by_phase: dict[str, tuple[dict, dict, dict]] = {}
    for row in record["per_seed"]:
        target, test, ri = by_phase.setdefault(row["phase"], ({}, {}, {}))
        target[row["seed"]] = row["target_hr"]
        test[row["seed"]] = row["test_hr"]
        if row.get("ri") is not None:
            ri[int(row["seed"])] = float(row["ri"])
    mean_rows = {row["phase"]: row for row in record.get("rows", [])}
    for phase, (target, test, ri) in by_phase.items():
        cell = table.cell(phase_label(phase, stats, preset), attack)
        _put(cell, target, test)
        cell.ri, cell.ri_seeds = mean_rows.get(phase, {}).get("ri"), ri
        cell.real_flagged = (mean_rows.get(phase, {}).get("detection") or {}).get("real_flagged")


def phase_label(phase: str, stats: str | None, preset: str | None) -> str:
    """APT's own rows depend on the item statistics; every APT-based row on the preset."""
    name = f"{phase}, {stats}" if stats and phase in ("apt", "apt-rand") else phase
    return f"{name} (`{preset}`)" if preset and phase.startswith("apt") else name


def read(paths: list[Path]) -> list[SeedTable]:
    tables: dict[tuple[str, str], SeedTable] = {}
    for path in paths:
        text = path.read_text().strip()
        if not text:
            continue
        records = [json.loads(text)] if text.startswith("{") and "\n{" not in text else [json.loads(line) for line in text.splitlines() if line.strip()]
        for record in records:
            (read_lissa_line if "variant" in record else read_run_json)(record, tables)
    return list(tables.values())


def fmt_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 0.01 else f"{value:.3f}"


def fmt_mean_sd(values: dict[int, float]) -> str:
    mean, sd = mean_sd(list(values.values()))
    if mean is None:
        return "n/a"
    if len(values) < 2:
        return f"{fmt_value(mean)} (one seed)"
    digits = 4 if abs(mean) < 0.01 or sd < 0.001 else 3
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "no test"
    return f"p {p:.2g}" if p >= 0.001 else "p < 0.001"


def compare_cell(a: Cell, b: Cell) -> str:
    """Mean of a − b of target HR over the seeds both have, and the paired test's p."""
    seeds = sorted(set(a.target_hr) & set(b.target_hr))
    test = paired_ttest([a.target_hr[s] for s in seeds], [b.target_hr[s] for s in seeds])
    if test.mean_diff is None:
        return "n/a"
    return f"{test.mean_diff:+.4f} ({fmt_p(test.p_value)})"


def markdown(table: SeedTable, compare: list[tuple[str, str]] = (), per_seed: bool = False) -> str:
    attacks = table.attacks()
    seeds = sorted({s for row in table.cells.values() for c in row.values() for s in c.target_hr})
    lines = [f"{table.dataset}, targets {table.targets}: target HR@50 mean ± sd over seeds {', '.join(map(str, seeds))} "
             "(test HR@50 mean ± sd in parentheses)", "",
             "| | " + " | ".join(ATTACK_NAMES.get(a, a) for a in attacks) + " |", "|---|" + "---|" * len(attacks)]
    for row, cells in table.cells.items():
        lines.append(f"| {row} | " + " | ".join(
            f"{fmt_mean_sd(cells[a].target_hr)} ({fmt_mean_sd(cells[a].test_hr)})" if a in cells else "" for a in attacks) + " |")
    for a_row, b_row in compare:
        if a_row not in table.cells or b_row not in table.cells:
            continue
        lines.append(f"| {a_row} − {b_row} (paired t) | " + " | ".join(
            compare_cell(table.cells[a_row][a], table.cells[b_row][a]) if a in table.cells[a_row] and a in table.cells[b_row] else ""
            for a in attacks) + " |")
    if per_seed:
        lines += ["", "Per seed (target HR@50 / test HR@50, seeds in order):", ""]
        for row, cells in table.cells.items():
            for a in attacks:
                if a in cells:
                    c = cells[a]
                    lines.append(f"- {row}, {ATTACK_NAMES.get(a, a)}: " + "; ".join(
                        f"{s}: {fmt_value(c.target_hr[s])} / {fmt_value(c.test_hr.get(s, float('nan')))}" for s in sorted(c.target_hr)))
    return "\n".join(lines)


def _ri(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def settings_markdown(tables: list[SeedTable], rows: list[str]) -> str:
    """One line per (data set, targets, attack), one column per defense row: RI (target HR mean ± sd / test HR mean)."""
    head = "| targets | attack | origin: target HR / test HR | attack | " + " | ".join(rows) + " |"
    lines = [head, "|" + "---|" * (4 + len(rows))]
    for table in tables:
        for attack in table.attacks():
            cells = table.cells
            origin, hit = cells["origin"][attack], cells["attack"][attack]
            out = [table.targets, ATTACK_NAMES.get(attack, attack),
                   f"{fmt_mean_sd(origin.target_hr)} / {fmt_mean_sd(origin.test_hr)}", fmt_mean_sd(hit.target_hr)]
            for row in rows:
                c = cells.get(row, {}).get(attack)
                out.append("" if c is None else f"{_ri(c.ri)} ({fmt_mean_sd(c.target_hr)} / {fmt_mean_sd(c.test_hr)})")
            lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def per_seed_summary(tables: list[SeedTable], row: str) -> tuple[list[float], dict[int, float], dict[int, float]]:
    """Over every setting of ``tables``: the RIs from mean hit ratios; per seed, the mean RI over the
    settings where that seed's RI is defined and the mean test HR minus the same seed's origin."""
    cell_ris: list[float] = []
    ri_sum: dict[int, list[float]] = {}
    test_gap: dict[int, list[float]] = {}
    for table in tables:
        for attack, c in table.cells.get(row, {}).items():
            if c.ri is not None:
                cell_ris.append(c.ri)
            for seed, value in c.ri_seeds.items():
                ri_sum.setdefault(seed, []).append(value)
            origin = table.cells["origin"][attack].test_hr
            for seed, value in c.test_hr.items():
                if seed in origin:
                    test_gap.setdefault(seed, []).append(value - origin[seed])
    mean = lambda d: {s: sum(v) / len(v) for s, v in sorted(d.items())}  # noqa: E731
    return cell_ris, mean(ri_sum), mean(test_gap)


def settings_summary(tables: list[SeedTable], rows: list[str], compare: list[tuple[str, str]] = ()) -> str:
    """Per defense: mean RI over the settings (from mean hit ratios), per-seed mean RI (mean ± sd over
    the seeds) and test HR minus origin; ``compare``: per-seed mean RI of A − B, paired t over the seeds."""
    lines = ["| defense | mean RI over the settings (lowest) | per seed: mean RI, mean ± sd over seeds | "
             "test HR − origin, mean ± sd over seeds | real users flagged (most in a setting) |", "|---|---|---|---|---|"]
    per_seed = {}
    for row in rows:
        cell_ris, ri_by_seed, gap_by_seed = per_seed_summary(tables, row)
        per_seed[row] = ri_by_seed
        ri_mean = f"{sum(cell_ris) / len(cell_ris):.3f} ({min(cell_ris):.2f}; {len(cell_ris)} settings)" if cell_ris else "–"
        flagged = [c.real_flagged for t in tables for c in t.cells.get(row, {}).values() if c.real_flagged is not None]
        lines.append(f"| {row} | {ri_mean} | {fmt_mean_sd(ri_by_seed)} | {fmt_mean_sd(gap_by_seed)} | "
                     f"{f'{max(flagged):g}' if flagged else '-'} |")
    for a, b in compare:
        seeds = sorted(set(per_seed.get(a, {})) & set(per_seed.get(b, {})))
        test = paired_ttest([per_seed[a][s] for s in seeds], [per_seed[b][s] for s in seeds])
        if test.mean_diff is not None:
            lines.append(f"| {a} − {b}: per-seed mean RI (paired t over {len(seeds)} seeds) | | {test.mean_diff:+.3f} ({fmt_p(test.p_value)}) | | |")
    return "\n".join(lines)


def detect_auc(record: dict) -> tuple[str, dict[str, dict[int, float]]]:
    """A ``detect --json`` output: its setting in words and each detector's ROC-AUC per seed."""
    cfg = record.get("config", {})
    params = ", ".join(f"{k}={v}" for k, v in sorted((cfg.get("params") or {}).items()))
    setting = f"{cfg.get('targets')} | {cfg.get('attack')}" + (f" ({params})" if params else "")
    aucs: dict[str, dict[int, float]] = {}
    for row in record["per_seed"]:
        if row.get("auc") is not None:
            aucs.setdefault(row["detector"], {})[int(row["seed"])] = float(row["auc"])
    return setting, aucs


def detect_markdown(paths: list[Path], compare: list[tuple[str, str]] = ()) -> str:
    """One line per ``detect --json`` file: each detector's ROC-AUC, mean ± sd over the seeds; ``compare``
    (two settings as their first column reads): the per-seed AUC difference A − B per detector, paired t."""
    settings = dict(detect_auc(json.loads(path.read_text())) for path in paths)
    detectors = list(dict.fromkeys(d for aucs in settings.values() for d in aucs))
    lines = ["| targets | attack | " + " | ".join(detectors) + " |", "|---|---|" + "---|" * len(detectors)]
    for setting, aucs in settings.items():
        lines.append(f"| {setting} | " + " | ".join(fmt_mean_sd(aucs.get(d, {})) for d in detectors) + " |")
    for a, b in compare:
        if a in settings and b in settings:
            lines.append(f"| {a} − {b} (paired t) | | " + " | ".join(
                compare_cell(Cell(target_hr=settings[a].get(d, {})), Cell(target_hr=settings[b].get(d, {}))) for d in detectors) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+", help="lissa_tables.py JSON lines or run --json outputs")
    ap.add_argument("--compare", nargs=2, action="append", default=[], metavar=("ROW_A", "ROW_B"),
                    help="add a row: per-seed target HR of ROW_A minus ROW_B, paired t-test (repeatable)")
    ap.add_argument("--per-seed", action="store_true", help="print every seed's values below each table")
    ap.add_argument("--settings", nargs="+", metavar="ROW",
                    help="instead: one line per setting, a column per ROW (RI, target / test HR), and a summary per ROW")
    ap.add_argument("--detect", action="store_true", help="instead: the files are detect --json outputs; ROC-AUC per detector")
    args = ap.parse_args()
    if args.detect:
        print(detect_markdown(args.files, [tuple(c) for c in args.compare]))
        return
    tables = read(args.files)
    if args.settings:
        by_dataset: dict[str, list[SeedTable]] = {}
        for table in tables:
            by_dataset.setdefault(table.dataset, []).append(table)
        for dataset, group in by_dataset.items():
            print(f"{dataset}:\n\n{settings_markdown(group, args.settings)}\n\n"
                  f"{settings_summary(group, args.settings, [tuple(c) for c in args.compare])}\n")
        return
    for table in tables:
        print(markdown(table, [tuple(c) for c in args.compare], args.per_seed) + "\n")


if __name__ == "__main__":
    main()
