"""Data: statistics of the selected data set and its long tail."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from apt_core.plots.explore import long_tail_figure, rating_histogram_figure, user_activity_figure
from pages._shared.display import download
from pages._shared.page_guard import guard
from pages._shared.settings import chart_scale, settings
from pages._shared.uploads import load_data, shown_name


#: the summary's keys in words
READABLE = {
    "name": "data set", "n_users": "users", "n_items": "items", "n_ratings": "ratings", "density": "density",
    "scale": "rating scale", "mean_rating": "average rating", "ratings_per_user": "ratings per user",
    "items_with_lt5_ratings": "items with < 5 ratings",
}
#: the short labels above fit the narrow column beside the chart; what they mean is said once below the table
LABELS_EXPLAINED = ("Density: the share of user-item pairs that are rated. Ratings per user: the average. "
                    "Items with fewer than 5 ratings are the candidate 'unpopular' targets.")


def body() -> None:
    st.title("Data")
    cfg = settings()
    st.caption("Choose the data set in the sidebar (or upload a CSV there: user,item,rating[,timestamp]).")
    data = load_data(cfg["dataset"], cfg["data_dir"])
    for note in getattr(data, "warnings", []):
        st.warning(note)
    summary = data.summary()
    c = st.columns(4)
    c[0].metric("users", f"{summary['n_users']:,}")
    c[1].metric("items", f"{summary['n_items']:,}")
    c[2].metric("ratings", f"{summary['n_ratings']:,}")
    c[3].metric("density", f"{summary['density']:.2%}")
    shown = {k: v for k, v in summary.items() if k != "source"}  # a file path on the server means nothing to the reader
    frame = pd.DataFrame({"statistic": [READABLE.get(k, k.replace("_", " ")) for k in shown],
                          "value": [f"{v:.4g}" if isinstance(v, float) else str(v) for v in shown.values()]})
    inter = data.interactions
    scale = chart_scale()
    name = shown_name(data)
    # The long tail beside the summary (one screen at 1280x720).
    table, chart = st.columns([1, 1.6], gap="medium")
    table.dataframe(frame, hide_index=True, width="stretch",
                    column_config={"statistic": st.column_config.TextColumn(width="medium")})
    table.caption(LABELS_EXPLAINED)
    with table:
        download(frame, f"{name}_summary.csv")
    chart.plotly_chart(long_tail_figure(inter.item_counts, f"Long tail of {name}: ratings per item", font_scale=scale), width="stretch", theme=None)
    left, right = st.columns(2)
    left.plotly_chart(rating_histogram_figure(inter.ratings, data.scale.grid, f"Rating distribution of {name}", font_scale=scale), width="stretch", theme=None)
    right.plotly_chart(user_activity_figure(inter.user_counts, f"Ratings per user in {name}", font_scale=scale), width="stretch", theme=None)
    top = pd.DataFrame({"item": [data.title(int(i)) for i in inter.item_counts.argsort()[::-1][:10]], "ratings": sorted(inter.item_counts, reverse=True)[:10]})
    st.markdown("**Most popular items**")
    st.dataframe(top, hide_index=True, width="stretch")
    download(top, f"{name}_popular_items.csv", "Download the popular items (CSV)")


guard(body)
