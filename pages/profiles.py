"""Profiles: fake users against real users (factors, ratings, filler popularity, stealth)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from apt_core.experiments.demo import user_factors
from apt_core.plots.explore import (
    basic_profile_stats,
    factor_projection_figure,
    filler_popularity_figure,
    profile_rating_figure,
    profile_stats_frame,
)
from apt_core.evaluation.stealth import stealth_statistics
from pages._shared.display import download, fmt_frame
from pages._shared.grid_panel import is_live
from pages._shared.page_guard import guard
from pages._shared.runs import attack_view
from pages._shared.settings import chart_scale, settings
from pages._shared.uploads import load_data
from pages._shared.widgets import attack_controls


def stealth_table(view):
    """Detector-style statistics from apt_core.evaluation.stealth, fake users beside real ones."""
    stats = stealth_statistics(view.split.train, view.fake, view.targets)
    return pd.DataFrame(stats.rows())[["statistic", "real", "fake"]].rename(columns={"real": "real users", "fake": "fake users"})


def body() -> None:
    st.title("Profiles")
    st.caption("How do the fake users look next to the real ones? Stealthy attacks are hard to tell apart.")
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    scenario = attack_controls(data, prefix="prof")
    if scenario is None:
        return
    view = attack_view(scenario, data, is_live(cfg))
    if view is None:
        st.info("Press the button (same computation as the Attack page; shared cache).")
        return
    train, fake = view.split.train, view.fake
    targets = set(int(t) for t in view.targets)
    is_filler = ~np.isin(fake.items, list(targets))
    factors = user_factors(view.attacked_model)
    scale = chart_scale()
    # Two figures per row, right under the controls (one screen at 1280x720).
    left, right = st.columns(2)
    if factors is not None:
        left.plotly_chart(factor_projection_figure(factors, train.n_real_users, "User factors of the attacked MF, 2-D projection (PCA)", font_scale=scale),
                          width="stretch", theme=None)
        left, right = right, st.columns(2)[0]
    left.plotly_chart(profile_rating_figure(train.ratings, fake.ratings[is_filler], train.scale.grid, font_scale=scale), width="stretch", theme=None)
    right.plotly_chart(filler_popularity_figure(train.item_counts, train.items, fake.items[is_filler], font_scale=scale), width="stretch", theme=None)
    means = train.item_means()
    real = basic_profile_stats(train.users, train.items, train.ratings, means, train.item_counts, train.n_real_users)
    fakes = basic_profile_stats(fake.users[is_filler], fake.items[is_filler], fake.ratings[is_filler], means, train.item_counts, fake.n_fake_users)
    frame = fmt_frame(profile_stats_frame(real, fakes))
    st.subheader("Profile statistics (fillers only for fake users)")
    st.dataframe(frame, hide_index=True, width="stretch")
    download(frame, "profile_statistics.csv")
    st.subheader("Stealth statistics (what a shilling detector looks at)")
    extra = fmt_frame(stealth_table(view))
    st.dataframe(extra, hide_index=True, width="stretch")
    download(extra, "stealth_statistics.csv")


guard(body)
