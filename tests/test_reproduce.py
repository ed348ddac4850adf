"""reproduce: the paper's numbers table, the Markdown layout, progress output (the Ray engine: test_ray_engine.py)."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from apt_core.reporting.reproduce import PAPER, PaperValue, ReproduceConfig, TextProgress, paper_value, table_markdown


def test_paper_numbers_are_exactly_design_section_7():
    assert paper_value("ml-100k", "unpopular", "target_hr", "average", "attack") == PaperValue(0.9292, 0.9292)
    assert paper_value("ML-100K", "unpopular", "target_hr", "tna", "apt").low == 0.0019
    assert paper_value("ml-100k", "unpopular", "target_hr", "pga", "at").low == 0.5402
    assert paper_value("ml-100k", "unpopular", "target_hr", "aush", "origin").low == 0.0
    rng = paper_value("ml-100k", "random", "target_hr", "pga", "attack")
    assert (rng.low, rng.high) == (0.2366, 0.5774) and not rng.exact and "†" in str(rng)
    assert paper_value("filmtrust", "unpopular", "target_hr", "average", "apt") == PaperValue(0.004, 0.021, rng.note)
    assert paper_value("filmtrust", "random", "test_hr", "average", "origin").low == 0.8539
    # Cells DESIGN does not give stay empty: PCMF and APT-rand everywhere, FilmTrust random targets.
    for phase in ("pcmf", "apt-rand"):
        assert paper_value("ml-100k", "unpopular", "target_hr", "average", phase) is None
    assert paper_value("filmtrust", "random", "target_hr", "average", "attack") is None
    assert paper_value("sample", "random", "target_hr", "average", "attack") is None
    # 3 phases x 5 attacks, unpopular origin, random origin/attack and APT per attack, FilmTrust 2 ranges and
    # its Average/Random attack cells, test HR 6 per target set
    assert len(PAPER) == 15 + 1 + (2 + 5) + (2 + 2) + 2 * 6


def _table():
    rows = []
    for attack in ("average", "random"):
        for phase in ("origin", "attack", "pcmf", "at", "apt-rand", "apt"):
            pv = paper_value("ml-100k", "unpopular", "target_hr", attack, phase)
            rows.append({"targets": "unpopular", "attack": attack, "phase": phase, "mean": 0.5, "sd": 0.01,
                         "ri": 0.9 if phase == "apt" else None, "stars": "**" if phase == "apt" else "",
                         "paper_low": None if pv is None else pv.low, "paper_high": None if pv is None else pv.high})
    return pd.DataFrame(rows)


def test_table_markdown_layout():
    md = table_markdown(_table(), "Target HR@50")
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| attack | origin | attack | pcmf | at | apt-rand | apt | RI (APT) |"
    avg = lines[2]
    assert avg.startswith("| Average | 0.5000 ± 0.0100 (0.0000) | 0.5000 ± 0.0100 (0.9292) | 0.5000 ± 0.0100 |")
    assert "0.5000 ± 0.0100** (0.0009)" in avg and avg.endswith("| 0.900 |")


def test_text_progress_without_terminal_prints_lines():
    stream = io.StringIO()
    p = TextProgress(stream)
    for i in range(101):
        assert p(i / 100, f"step {i}") is True
    lines = stream.getvalue().splitlines()
    assert 15 <= len(lines) <= 22 and lines[-1].startswith("[" + "#" * 30 + "]") and "100.0%" in lines[-1]
    silent = io.StringIO()
    TextProgress(silent, enabled=False)(0.5, "x")
    assert silent.getvalue() == ""


def test_quick_config_and_defaults():
    q = ReproduceConfig.quick_config()
    assert q.dataset == "sample" and q.seeds == 1 and len(q.attacks) == 2 and q.quick
    assert ReproduceConfig.quick_config(seeds=2).seeds == 2
    full = ReproduceConfig()
    assert full.seeds == 5 and full.erm_stats == "clean" and full.resolved_attack_size() == 0.03 and full.resolved_k() == 50
    assert ReproduceConfig(dataset="yelp").resolved_attack_size() == 0.05 and ReproduceConfig(dataset="yelp").resolved_k() == 1000


def test_missing_attacks_are_reported_not_faked(tmp_path, monkeypatch):
    from apt_core.storage.cache import ArtifactCache
    from apt_core.reporting.reproduce import reproduce

    cfg = ReproduceConfig.quick_config(out=str(tmp_path / "o"), attacks=("average", "no-such-attack"), target_sets=("unpopular",),
                                       defenses=("at",), epochs=2)
    cfg.figures = False
    res = reproduce(cfg, cache=ArtifactCache(tmp_path / "c"))
    assert any("no-such-attack" in s for s in res.skipped)
    assert set(res.table2["attack"]) == {"average"}
    # Phases that did not run are empty cells, not zeros.
    apt = res.table2[res.table2["phase"] == "apt"].iloc[0]
    assert pd.isna(apt["mean"])
    report = (tmp_path / "o" / "report.md").read_text()
    assert "not run" in report
    # The clean-data popularity ranking is the last column of both tables: measured, no RI, no paper number.
    for table in (res.table2, res.table3):
        pop = table[table["phase"] == "popularity"].iloc[0]
        assert pop["mean"] is not None and 0.0 <= pop["mean"] <= 1.0 and pd.isna(pop["ri"]) and pd.isna(pop["paper_low"])
    assert list(res.table2["phase"])[-1] == "popularity"
    header = [line for line in report.splitlines() if line.startswith("| attack | origin |")][0]
    assert header == "| attack | origin | attack | pcmf | at | apt-rand | apt | popularity | RI (APT) |"
    # The detection table: every detector on the attack that ran, stealth statistics beside it.
    det = pd.read_csv(tmp_path / "o" / "detection.csv")
    from apt_core.detection import detector_names

    assert set(det["detector"]) == set(detector_names()) and set(det["attack"]) == {"average"}
    assert det.loc[det["detector"] == "cogroup", "auc"].iloc[0] > 0.9
    assert "stealth_mean_corr_fake" in det.columns
    assert "| unpopular | average |" in (tmp_path / "o" / "detection.md").read_text()


def test_one_seed_cells_show_no_spread_and_test_table_has_no_ri():
    t = _table()
    t["n_seeds"] = 1
    md = table_markdown(t, "Test HR@50", show_ri=False)
    header = [line for line in md.splitlines() if line.startswith("|")][0]
    assert "RI" not in header
    rows = [line for line in md.splitlines() if line.startswith("| Average") or line.startswith("| Random")]
    assert rows and not any("±" in line for line in rows)
