"""Detection: shilling detectors on the poisoned data -- who gets flagged, real vs fake."""
from __future__ import annotations

import streamlit as st

from apt_core.experiments.detection_run import run_detection
from apt_core.detection import DETECTORS, detector_names
from apt_core.plots.detection import detection_table, flagged_users_frame, precision_recall_figure, precision_recall_points, suspicion_histogram
from pages._shared.display import display_frame, download, fmt_frame
from pages._shared.grid_panel import is_live
from pages._shared.page_guard import guard
from pages._shared.runs import artifact_cache, run_cached
from pages._shared.settings import chart_scale, presenter, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import attack_controls, param_controls


def body() -> None:
    st.title("Detection")
    st.caption(
        "An honest defender sees only the poisoned ratings. Each detector gives every user a suspicion score and "
        "decides from the scores alone how many users to flag; only this evaluation knows who is fake. "
        "The defenses remove-<detector> and apt-trusted build on these flags (Defense page)."
    )
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    url_state(["det-detectors", "det-inspect"])
    scenario = attack_controls(data, prefix="det")
    if scenario is None:
        return
    # The detectors' controls beside the precision-recall figure (one screen at 1280x720).
    controls, chart = st.columns([1, 2], gap="medium")
    chosen = controls.multiselect("Detectors", detector_names(), default=detector_names(), key="det-detectors",
                                  help="; ".join(f"{n}: {DETECTORS[n].summary}" for n in DETECTORS))
    if not chosen:
        chart.info("Choose at least one detector.")
        return
    with controls:
        changed = param_controls(list(chosen), "det", "Advanced: detector parameters")
    if changed is None:
        return
    detector_params: dict = {}
    for name_param, value in changed.items():
        det, _, param = name_param.rpartition(".")
        detector_params.setdefault(det, {})[param] = value
    key = (scenario, tuple(chosen), detector_params)
    with controls:
        report = run_cached("detection", {"scenario": scenario.to_dict(), "detectors": list(chosen), "detector_params": detector_params},
                            lambda _s, progress: run_detection(key[0], list(key[1]), cache=artifact_cache(), progress=progress,
                                                               detector_params=key[2]),
                            label="Run the attack and the detectors", auto=is_live(cfg))  # live: detectors take a second or two
    if report is None:
        chart.info("Press the button: the attack runs, then every chosen detector scores the users of the poisoned data.")
        return
    scale = chart_scale()
    runs = [r for r in report.runs if r.seed == scenario.seed]
    curves = {r.detector: precision_recall_points(r.scores, r.is_fake) for r in runs}
    points = {r.detector: (r.metrics.precision, r.metrics.recall) for r in runs}
    chart.plotly_chart(precision_recall_figure(curves, points, font_scale=scale, height=350 if presenter() else 420), width="stretch", theme=None)  # our projector template, not Streamlit's
    controls.caption("Precision: the share of flagged users that are fake. Recall: the share of fake users that are flagged.")
    table = fmt_frame(detection_table(report.rows()), 3)
    st.subheader("How well each detector separates fake from real users")
    st.dataframe(display_frame(table), hide_index=True, width="stretch", key="det-table")
    download(table, "detection.csv")
    stealth = report.stealth_row()
    if stealth:
        st.caption(
            f"Attack stealth (fake vs real users): correlation of ratings with item means {stealth['mean_corr_fake']:.2f} vs "
            f"{stealth['mean_corr_real']:.2f}; popularity of rated items {stealth['filler_popularity_fake']:.0f} vs "
            f"{stealth['filler_popularity_real']:.0f}; distance to the nearest real user {stealth['nn_distance_fake']:.2f} vs "
            f"{stealth['nn_distance_real']:.2f}. A detector that wins only through such an artefact of the attack's code "
            "says little about real attackers."
        )
    pick, histogram = st.columns([1, 2], gap="medium")
    name = pick.selectbox("Detector to inspect", [r.detector for r in runs], key="det-inspect")
    run = next(r for r in runs if r.detector == name)
    histogram.plotly_chart(suspicion_histogram(run.scores, run.is_fake, run.threshold, name, font_scale=scale), width="stretch", theme=None)
    st.subheader(f"Users flagged by {name} ({int(run.flagged.sum())}; {run.metrics.real_flagged} of them real)")
    if not run.flagged.any():
        st.info("This detector's cut flags nobody here: no block of scores stands apart from the rest.")
        return
    poisoned = report.poisoned[scenario.seed]
    frame = flagged_users_frame(run.scores, run.flagged, run.is_fake, poisoned.users, poisoned.items, poisoned.ratings,
                                poisoned.scale.maximum, titles=data.title, user_ids=data.user_ids)
    st.dataframe(fmt_frame(frame, 3), hide_index=True, width="stretch", key="det-flagged")


guard(body)
