"""scripts/seed_tables.py: docs tables from per-seed runs give mean ± sd and paired tests over the seeds (issue 26)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("seed_tables", ROOT / "scripts" / "seed_tables.py")
st = importlib.util.module_from_spec(_spec)
sys.modules["seed_tables"] = st  # its dataclasses look their module up while the classes are built
_spec.loader.exec_module(st)


def _lissa_line(attack: str, variant: str, apt: list[float], attack_hr: list[float]) -> dict:
    """A line as scripts/lissa_tables.py prints it (only the keys the tables read)."""
    def row(target: list[float]) -> dict:
        return {"target_hr": float(np.mean(target)), "target_hr_seeds": target, "test_hr_seeds": [0.8 + 0.01 * i for i in range(len(target))]}
    return {"dataset": "filmtrust", "targets": [1, 2], "attack": attack, "variant": variant, "erm_stats": "clean",
            "rows": {"origin": row([0.0] * len(apt)), "attack": row(attack_hr), "apt": row(apt)}}


def _write(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_cells_are_mean_and_sample_sd_over_the_seeds(tmp_path):
    rng = np.random.default_rng(1)
    paper = [float(v) for v in rng.uniform(0.02, 0.08, 4)]
    path = _write(tmp_path, [_lissa_line("pga", "paper", paper, [0.8, 0.82, 0.79, 0.81])])
    (table,) = st.read([path])
    md = st.markdown(table)
    assert f"{np.mean(paper):.3f} ± {np.std(paper, ddof=1):.3f}" in md
    assert "seeds 0, 1, 2, 3" in md
    assert md.count("| APT `paper`, clean |") == 1 and md.count("| attack (no defense) |") == 1


def test_compare_adds_the_paired_difference_and_its_p(tmp_path):
    a, b = [0.05, 0.07, 0.04], [0.20, 0.26, 0.18]
    path = _write(tmp_path, [_lissa_line("tna", "paper", a, [0.9] * 3), _lissa_line("tna", "lab-v1", b, [0.9] * 3)])
    (table,) = st.read([path])
    md = st.markdown(table, [("APT `paper`, clean", "APT `lab-v1`, clean")])
    p = stats.ttest_rel(a, b).pvalue
    assert f"{np.mean(np.subtract(a, b)):+.4f} ({st.fmt_p(p)})" in md


def test_per_seed_values_are_printed_and_one_seed_says_so(tmp_path):
    path = _write(tmp_path, [_lissa_line("aush", "paper", [0.274], [0.99])])
    (table,) = st.read([path])
    md = st.markdown(table, per_seed=True)
    assert "0.274 (one seed)" in md
    assert "- APT `paper`, clean, AUSH: 0: 0.274 / 0.800" in md


def test_run_json_rows_name_the_item_statistics_and_preset(tmp_path):
    out = {"dataset": {"name": "ml-100k"}, "config": {"attack": "average", "targets": "unpopular", "erm_stats": "observed",
                                                      "apt_preset": "paper"},
           "per_seed": [{"phase": ph, "seed": s, "target_hr": hr + 0.01 * s, "test_hr": 0.2}
                        for ph, hr in (("attack", 0.9), ("apt", 0.5), ("apt-trusted", 0.0)) for s in range(3)]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(out))
    (table,) = st.read([path])
    assert set(table.cells) == {"attack", "apt, observed (`paper`)", "apt-trusted (`paper`)"}
    assert table.cells["apt, observed (`paper`)"]["average"].target_hr == {0: 0.5, 1: 0.51, 2: 0.52}


def _run_out(attack: str, apt: list[float], trusted: list[float]) -> dict:
    """A run --json output: origin 0, attack 0.9 + seed / 100, two defenses with per-seed RIs."""
    per_seed, rows = [], []
    for phase, hrs in (("origin", [0.0] * 3), ("attack", [0.9, 0.91, 0.92]), ("apt", apt), ("apt-trusted", trusted)):
        for seed, hr in enumerate(hrs):
            ri = None if phase in ("origin", "attack") else 1 - hr / (0.9 + seed / 100)
            per_seed.append({"phase": phase, "seed": seed, "target_hr": hr, "test_hr": 0.2 + 0.01 * seed, "ri": ri})
        rows.append({"phase": phase, "ri": None if phase in ("origin", "attack") else 1 - float(np.mean(hrs)) / 0.91})
    return {"dataset": {"name": "ml-100k"}, "config": {"attack": attack, "targets": "unpopular", "erm_stats": "observed",
                                                      "apt_preset": "paper"}, "per_seed": per_seed, "rows": rows}


def test_settings_summary_gives_per_seed_mean_ri_and_a_paired_test(tmp_path):
    outs = {"average": _run_out("average", [0.5, 0.4, 0.6], [0.0, 0.01, 0.0]), "aush": _run_out("aush", [0.7, 0.8, 0.6], [0.0, 0.0, 0.02])}
    paths = []
    for name, out in outs.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(out))
    tables = st.read(paths)
    apt, trusted = "apt, observed (`paper`)", "apt-trusted (`paper`)"
    md = st.settings_markdown(tables, [apt, trusted])
    assert md.count("| unpopular |") == 2
    summary = st.settings_summary(tables, [apt, trusted], [(trusted, apt)])
    per_seed = {r: [np.mean([outs[a]["per_seed"][i]["ri"] for a in outs for i in range(len(outs[a]["per_seed"]))
                             if outs[a]["per_seed"][i]["phase"] == p and outs[a]["per_seed"][i]["seed"] == s]) for s in range(3)]
                for r, p in ((apt, "apt"), (trusted, "apt-trusted"))}
    assert f"{np.mean(per_seed[apt]):.3f} ± {np.std(per_seed[apt], ddof=1):.3f}" in summary
    p = stats.ttest_rel(per_seed[trusted], per_seed[apt]).pvalue
    assert f"{np.mean(np.subtract(per_seed[trusted], per_seed[apt])):+.3f} ({st.fmt_p(p)})" in summary


def test_detect_mode_gives_auc_mean_sd_and_a_paired_test_between_settings(tmp_path):
    aucs = {"optimised": [0.90, 0.91, 0.92], "average": [0.80, 0.83, 0.79]}
    paths = []
    for fill, values in aucs.items():
        out = {"config": {"targets": "unpopular", "attack": "pga", "params": {"pga.filler_ratings": fill}},
               "per_seed": [{"detector": "rdma", "seed": s, "auc": v} for s, v in enumerate(values)]}
        paths.append(tmp_path / f"{fill}.json")
        paths[-1].write_text(json.dumps(out))
    a, b = "unpopular | pga (pga.filler_ratings=optimised)", "unpopular | pga (pga.filler_ratings=average)"
    md = st.detect_markdown(paths, [(a, b)])
    assert f"| {a} | {np.mean(aucs['optimised']):.3f} ± {np.std(aucs['optimised'], ddof=1):.3f} |" in md
    p = stats.ttest_rel(aucs["optimised"], aucs["average"]).pvalue
    assert f"{np.mean(np.subtract(aucs['optimised'], aucs['average'])):+.4f} ({st.fmt_p(p)})" in md
