"""History: past runs from the run store; reopen, compare, export."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from apt_core.plots.explore import runs_comparison_figure
from apt_core.store import RunStore
from pages._common import download, fmt_frame, guard, is_presenter


def body() -> None:
    st.title("History")
    store = RunStore()
    runs = store.runs()
    if runs.empty:
        st.info("No runs recorded yet: runs from the Defense page (and `python -m apt_core run`) appear here.")
        return
    st.dataframe(runs, hide_index=True, width="stretch")
    ids = runs["run_id"].tolist()
    chosen = st.multiselect("Reopen / compare runs", ids, default=ids[:1], key="hist-runs")
    frames = []
    for run_id in chosen:
        payload = store.get(run_id)
        rows = pd.DataFrame(payload["rows"])
        rows.insert(0, "run_id", run_id)
        rows.insert(1, "attack", payload["config"]["attack"])
        frames.append(rows)
    if frames:
        table = fmt_frame(pd.concat(frames, ignore_index=True))
        st.subheader("Result rows of the chosen runs")
        st.dataframe(table, hide_index=True, width="stretch")
        download(table, "history_selection.csv", "Download the chosen runs (CSV)")
        if len(chosen) > 1:
            st.plotly_chart(runs_comparison_figure(table), width="stretch")
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
