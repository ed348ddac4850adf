"""Tables and figures for the screen: rounding, the undefined-value placeholder, CSV downloads, and
views built once per result (a live slider revisits the same few results)."""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import streamlit as st


def download(frame: pd.DataFrame, name: str, label: str = "Download this table (CSV)") -> None:
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=name, mime="text/csv", key=f"dl-{name}")


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for the screen: an undefined value shows as "–" (Streamlit would print "None")."""
    return frame.astype(object).where(frame.notna(), "–")


def fmt_frame(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(digits)
    return out


def per_result(result: Any, name: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per result: a live slider revisits the same few results, and building
    their figures and tables again was most of a move's server time.  Kept on the result
    object itself, so it goes when the result does."""
    memo = result.__dict__.setdefault("_views", {})
    if name not in memo:
        memo[name] = build()
    return memo[name]


def as_arrow(frame: pd.DataFrame):
    """``frame`` as an Arrow table (what st.dataframe sends): converted once with :func:`per_result`
    instead of on every rerun."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def results_views(result) -> tuple[pd.DataFrame, pd.DataFrame, object]:  # noqa: D401
    """(numeric table, display table, rank-shift figure) of a scenario result (built once per result)."""
    from apt_core.plots.results import format_results_table, rank_shift_boxplot, rank_shift_frame, results_table

    def build():
        table = results_table(result)
        fig = rank_shift_boxplot(rank_shift_frame(result), title="Rank shift of the target items per training method (paper's Fig. 1)")
        return table, format_results_table(table), fig

    return per_result(result, "results_views", build)
