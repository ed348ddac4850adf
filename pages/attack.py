"""Attack: poison the data, then see the target items rise (HR, rank shift, one user's top-K)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from apt_core.experiments.demo import top_k_items
from apt_core.evaluation.metrics import rank_shift
from apt_core.plots.explore import hit_ratio_steps_figure, per_target_frame, rank_shift_histogram, top_k_frame
from pages._shared.display import as_arrow, download, fmt_frame, per_result
from pages._shared.glossary import GLOSSARY
from pages._shared.grid_panel import grid_panel, is_live
from pages._shared.page_guard import guard
from pages._shared.runs import attack_view
from pages._shared.settings import chart_scale, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import attack_controls


def body() -> None:
    st.title("Attack")
    st.caption("White-box poisoning of plain MF: fake users rate every target with the scale maximum plus filler items.")
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    live = is_live(cfg)
    if live:
        grid_panel(cfg)
    url_state(["atk-topn", "atk-user"])
    scenario = attack_controls(data)
    if scenario is None:
        return
    view = attack_view(scenario, data, live)
    if view is None:
        st.info("Press the button to train clean MF, generate the fake users and retrain on the poisoned data.")
        return
    k = scenario.k
    before, after = view.clean_eval, view.attacked_eval
    scale = chart_scale()
    # The figures first, right under the controls that move them (one screen at 1280x720); the numbers below.
    left, right = st.columns(2)
    # Each view's figures and tables are built once (per_result): a live slider revisits them.
    left.plotly_chart(per_result(view, f"hr-steps-{scale}", lambda: hit_ratio_steps_figure([("clean MF", before.target_hr), ("attacked", after.target_hr)], k,
                                                                                            font_scale=scale)), width="stretch", theme=None)
    right.plotly_chart(per_result(view, f"rank-shift-{scale}", lambda: rank_shift_histogram(rank_shift(before, after), font_scale=scale)),
                       width="stretch", theme=None)
    c = st.columns(4)
    c[0].metric(f"target HR@{k} before", f"{before.target_hr:.3f}", help=GLOSSARY["HR@K"])
    # A rise in target HR is the attack succeeding: red (inverse), never a green "improvement".
    c[1].metric(f"target HR@{k} after", f"{after.target_hr:.3f}", f"{after.target_hr - before.target_hr:+.3f}", delta_color="inverse")
    c[2].metric(f"test HR@{k} after", f"{after.test_hr:.3f}", f"{after.test_hr - before.test_hr:+.3f}")
    c[3].metric("fake users x fillers", f"{view.fake.n_fake_users if view.fake else 0} x {view.n_filler}")
    titles = per_result(view, "titles", lambda: [view.data.title(i) for i in range(view.data.n_items)])
    per_target = per_result(view, "per-target", lambda: fmt_frame(per_target_frame(titles, view.targets, view.split.train.item_counts,
                                                                                    before.per_target_hr(), after.per_target_hr())))
    st.markdown("**Target items**")
    st.dataframe(per_result(view, "per-target-arrow", lambda: as_arrow(per_target)), hide_index=True, width="stretch")
    download(per_target, "attack_targets.csv")

    st.subheader("One user's recommendations before and after")
    n_real = view.split.train.n_real_users
    controls, table = st.columns([1, 2], gap="medium")  # the list's controls beside the list
    top_n = controls.slider("List length", 5, 50, 10, key="atk-topn")
    # Start with a user who now sees a target in the list (when there is one): the point of the attack.
    reached = np.flatnonzero(((after.target_ranks >= 0) & (after.target_ranks < top_n)).any(axis=1))
    user = controls.number_input("Real user (number)", 0, n_real - 1, int(reached[0]) if len(reached) else 0, key="atk-user",
                           help=f"{len(reached)} real users see a target in their top-{top_n} after the attack")
    frame = per_result(view, f"top-{top_n}-{int(user)}", lambda: top_k_frame(
        titles, top_k_items(view.clean_model, view.split, int(user), top_n), top_k_items(view.attacked_model, view.split, int(user), top_n), view.targets))

    def highlight(row: pd.Series) -> list[str]:
        style = "background-color: #FDD9B5; font-weight: bold"
        return [style if (col == "before the attack" and row["target (before)"]) or (col == "after the attack" and row["target (after)"]) else "" for col in row.index]

    table.dataframe(frame.style.apply(highlight, axis=1), hide_index=True, width="stretch")
    controls.caption("Target items are highlighted in orange.")
    controls.caption(f"Real user number {int(user)} is user **{view.data.user_ids[int(user)]}** in the data set's own ids.")
    download(frame, f"top{top_n}_user{view.data.user_ids[int(user)]}.csv")


guard(body)
