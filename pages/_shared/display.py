"""Tables and figures for the screen: rounding, the undefined-value placeholder, CSV downloads, and
views built once per result (a live slider revisits the same few results)."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st


def download(frame: pd.DataFrame, name: str, label: str = "Download this table (CSV)") -> None:
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=name, mime="text/csv", key=f"dl-{name}")


#: what an undefined value shows as (Streamlit would print "None")
PLACEHOLDER = "–"


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def number_text(value: Any) -> str:
    """A cell as text: numbers in their shortest form (the callers round them), anything else as ``str``."""
    if isinstance(value, (bool, np.bool_, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != 0 and abs(v) < 1e-4:
            return f"{v:.2e}"
        return np.format_float_positional(v, precision=6, unique=True, trim="-")
    return str(value)


def display_frame(frame: pd.DataFrame):
    """``frame`` for the screen: an undefined value shows as "–", numbers stay numbers (they sort as numbers).

    The placeholder is a display value (a pandas Styler), not data: a column that mixed numbers
    with the text "–" could not be handed to Arrow, and Streamlit logged a pyarrow traceback for
    every such table before converting it some other way.  A column that already mixes text
    and numbers is turned into text, for the same reason.
    """
    data = frame.copy()
    for col in data.columns:
        if data[col].dtype == object:
            present = [v for v in data[col] if not _is_missing(v)]
            if any(isinstance(v, str) for v in present) and not all(isinstance(v, str) for v in present):
                data[col] = [None if _is_missing(v) else number_text(v) for v in data[col]]
    return data.style.format(number_text, na_rep=PLACEHOLDER)


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


def results_views(result, font_scale: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame, object]:  # noqa: D401
    """(numeric table, display table, rank-shift figure) of a scenario result (built once per result and font scale)."""
    from apt_core.plots.results import format_results_table, rank_shift_boxplot, rank_shift_frame, results_table

    def build():
        table = results_table(result)
        fig = rank_shift_boxplot(rank_shift_frame(result), title="Rank shift of the target items per training method (paper's Fig. 1)",
                                 font_scale=font_scale)
        return table, format_results_table(table), fig

    return per_result(result, f"results_views-{font_scale}", build)
