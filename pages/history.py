"""History: past runs from the run store; reopen, compare, export."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from apt_core.plots.explore import runs_comparison_figure
from apt_core.plots.history import readable_runs, result_rows
from apt_core.storage.history import RunStore
from pages._shared.display import display_frame, download, fmt_frame
from pages._shared.page_guard import guard
from pages._shared.settings import chart_scale, is_presenter


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
                                                   title="Target HR per method, chosen runs side by side", font_scale=chart_scale()),
                            width="stretch", theme=None)
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
