"""The run history in words (the History page's tables): one line per run, and a run's result rows
with readable columns and method names.  Pure functions of :meth:`apt_core.storage.history.RunStore.runs`
and :meth:`~apt_core.storage.history.RunStore.get`."""
from __future__ import annotations

import pandas as pd

from apt_core.plots.results import COLUMN_LABELS, PHASE_LABELS


def run_summary(row: pd.Series) -> str:
    """One readable line per run: what was attacked, how, and which defenses ran."""
    if row["attack"] == "file":  # fake users from --poison-file: the file decides how many
        attack = "fake users from a poison file"
    else:
        attack = "no attack" if row["attack"] == "none" else f"{row['attack']} attack, {float(row['attack_size']):.0%} fake users"
    text = f"{attack} on {row['targets']} targets"
    defenses = [d for d in str(row["defenses"]).split(",") if d and d != "none"]
    if defenses:
        text += " → " + ", ".join(PHASE_LABELS.get(d, d) for d in defenses)
        if any(d.startswith("apt") for d in defenses):
            share = row.get("erm_fraction")
            erm = f"{float(share):.0%} ERM users" if share is not None and share == share else "preset ERM users"
            text += f" ({erm}, {row['erm_stats']} statistics)"
    return text


def readable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The run list in words, with a link back to the page that made each dashboard run."""
    labels = runs["label"].fillna("").astype(str)
    pages = [lbl.split(":", 1)[1].split("?", 1)[0] if lbl.startswith("dashboard:") else ("dashboard" if lbl == "dashboard" else "command line")
             for lbl in labels]
    links = ["./" + lbl.split(":", 1)[1] if lbl.startswith("dashboard:") else None for lbl in labels]
    return pd.DataFrame({
        "#": list(range(len(runs), 0, -1)),  # newest first, numbered oldest first: "run 3" below is this row
        "when (UTC)": runs["created_at"].astype(str).str.slice(0, 19).str.replace("T", " "),
        "from": pages,
        "data set": runs["dataset"],
        "what ran": [run_summary(r) for _, r in runs.iterrows()],
        "seeds": runs["seeds"],
        "seconds": runs["wall_seconds"].round(1),
        "reopen": links,
        "run": runs["run_id"],
    })


def result_rows(payload: dict, run_name: str) -> pd.DataFrame:
    """One recorded run's result rows with readable columns and method names."""
    rows = pd.DataFrame(payload["rows"])
    keep = [c for c in COLUMN_LABELS if c in rows.columns and c != "seed"]
    rows = rows[keep].rename(columns=COLUMN_LABELS)
    rows["method"] = [PHASE_LABELS.get(p, p) for p in rows["method"]]
    rows.insert(0, "run", run_name)
    rows.insert(1, "attack", payload["config"]["attack"])
    return rows
