"""History: past runs from the run store; reopen, compare, export."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from apt_core.plots.explore import runs_comparison_figure
from apt_core.plots.results import COLUMN_LABELS, PHASE_LABELS
from apt_core.storage.history import RunStore
from pages._shared.display import display_frame, download, fmt_frame
from pages._shared.page_guard import guard
from pages._shared.settings import is_presenter


def summary(row) -> str:
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
        "what ran": [summary(r) for _, r in runs.iterrows()],
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


def body() -> None:
    st.title("History")
    store = RunStore()
    runs = store.runs()
    if runs.empty:
        st.info("No runs recorded yet: every run you start on the Overview, Lesson, Attack, Defense and Sweeps pages appears here.")
        return
    st.dataframe(readable_runs(runs), hide_index=True, width="stretch",
                 column_config={"reopen": st.column_config.LinkColumn("reopen", display_text="open the page", help="opens the page with this run's settings")})
    ids = runs["run_id"].tolist()
    readable = readable_runs(runs)
    # Runs are numbered oldest first (a number stays with its run as newer ones arrive).
    short = {r: f"run {len(readable) - i} ({w[5:16]}, {f})" for i, (r, w, f) in enumerate(zip(readable["run"], readable["when (UTC)"], readable["from"]))}
    names = {r: f"{short[r]} · {what}" for r, what in zip(readable["run"], readable["what ran"])}
    chosen = st.multiselect("Reopen / compare runs", ids, default=ids[:1], key="hist-runs", format_func=lambda r: names.get(r, r))
    frames = []
    for run_id in chosen:
        payload = store.get(run_id)
        frames.append(result_rows(payload, short.get(run_id, run_id)))
    if frames:
        table = fmt_frame(pd.concat(frames, ignore_index=True))
        if all(store.get(r)["config"].get("seeds", 1) == 1 for r in chosen):  # a spread over one seed is not a spread
            table = table.drop(columns=[c for c in table.columns if c.endswith(" sd")])
        st.subheader("Results of the chosen runs")
        st.dataframe(display_frame(table), hide_index=True, width="stretch")
        download(table, "history_selection.csv", "Download the chosen runs (CSV)")
        if len(chosen) > 1:
            st.plotly_chart(runs_comparison_figure(table, y="target HR", run="run", phase="method",
                                                   title="Target HR per method, chosen runs side by side"), width="stretch", theme=None)
    with tempfile.TemporaryDirectory() as tmp:
        path = store.export(Path(tmp) / "history.csv", "csv")
        st.download_button("Export the whole history (CSV, per seed)", Path(path).read_bytes(), file_name="apt_lab_history.csv", mime="text/csv")
    if not is_presenter():
        st.caption("Deleting runs is switched off on this shared server (the presenter password unlocks it).")
        return
    to_delete = st.selectbox("Delete a run", [""] + ids, key="hist-del")
    if to_delete and st.button("Delete", key="hist-del-btn"):
        store.delete(to_delete)
        st.success(f"deleted {to_delete}")
        st.rerun()


guard(body)
