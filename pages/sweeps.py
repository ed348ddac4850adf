"""Sweeps: RI and target HR against the attack size and the share of ERM users (Figs. 2-3)."""
from __future__ import annotations

import dataclasses

import streamlit as st

from apt_core.defenses import defense_names
from apt_core.plots.results import COLUMN_LABELS, PHASE_LABELS, sweep_figure, undefined_ri_message
from apt_core.experiments.sweeps import sweep, sweep_reading
from pages._shared.display import display_frame, download, fmt_frame
from pages._shared.grid_panel import is_live, live_spec
from pages._shared.history_glue import record_history
from pages._shared.page_guard import guard
from pages._shared.runs import artifact_cache, run_cached
from pages._shared.settings import chart_scale, presenter, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import attack_controls

PARAMETERS = {"attack_size": "attack size", "erm_fraction": "share of ERM users"}
STATS_WORDS = {"observed": "observed (poisoned) data: an honest defender's view", "clean": "clean data: the authors' oracle",
               "trusted": "observed data without the users a shilling detector flags (honest)"}
DEFAULT_VALUES = {"attack_size": "0.01, 0.03, 0.05, 0.1", "erm_fraction": "0.01, 0.03, 0.05, 0.1"}


def default_values(parameter: str, live: bool) -> str:
    """The values offered first; in live mode the precomputed grid's, so the sweep is a cache read."""
    if live:
        spec = live_spec()
        return ", ".join(f"{v:g}" for v in (spec.sizes if parameter == "attack_size" else spec.erm_fractions))
    return DEFAULT_VALUES[parameter]


def run_sweep(spec: tuple, progress):
    """The sweep; each value's run goes into the run history (a failure to record is one warning)."""
    from apt_core.errors import warn

    base, parameter, values = spec
    failed: list[str] = []

    def record(value, result) -> None:
        note = record_history("sweep", result)
        if note and not failed:
            failed.append(note)
            warn(note)

    return sweep(base, parameter, list(values), progress, cache=artifact_cache(), on_result=record)


class _Spec(tuple):
    def to_dict(self) -> dict:
        base, parameter, values = self
        return {"base": base.to_dict(), "parameter": parameter, "values": list(values)}


def body() -> None:
    st.title("Sweeps")
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    st.caption("The attack settings below hold for every run; the swept parameter overrides its own setting. Error bars: sd over seeds.")
    url_state(["swp-param", "swp-seeds", "swp-defenses", "swp-values-attack_size", "swp-values-erm_fraction"])
    base = attack_controls(data, prefix="swp")
    if base is None:
        return
    names = [d for d in defense_names() if d != "none"]
    # The sweep's controls beside its main figure (one screen at 1280x720).
    controls, chart = st.columns([1, 2], gap="medium")
    c = [controls] * 3
    parameter = c[0].selectbox("Sweep over", list(PARAMETERS), format_func=PARAMETERS.get, key="swp-param")
    live = is_live(cfg)
    raw = c[1].text_input("Values (comma separated shares)", default_values(parameter, live), key=f"swp-values-{parameter}")
    seeds = c[2].number_input("Seeds per value", 1, 10, 1 if live else 2, key="swp-seeds")
    chosen = controls.multiselect("Defenses", names, default=[d for d in ("apt",) if d in names], key="swp-defenses")
    try:
        values = tuple(sorted({float(v) for v in raw.replace(";", ",").split(",") if v.strip()}))
    except ValueError:
        st.error(f"Could not read the values {raw!r}: give numbers separated by commas, e.g. 0.01, 0.03, 0.05")
        return
    if not values:
        st.error("Give at least one value.")
        return
    base = dataclasses.replace(base, defenses=tuple(chosen) or ("none",), seeds=int(seeds))
    # Live (sample data, or a built grid): no Run click; on the grid's values and one seed the
    # sweep is read from the precomputed grid, anything else computes at once with a progress bar.
    with controls:
        frame = run_cached("sweep", _Spec((base, parameter, values)), run_sweep, label="Run the sweep", auto=live)
    if frame is None:
        chart.info(f"Press the button: {len(values)} values x {int(seeds)} seed(s), each a full attack + defense run.")
        return
    label = PARAMETERS[parameter]
    defended = frame[~frame["phase"].isin(["origin", "attack"])]
    scale = chart_scale()
    chart.plotly_chart(sweep_figure(frame, "value", "target_hr", title=f"Target HR against {label}", font_scale=scale,
                                    height=390 if presenter() else 420), width="stretch", theme=None)
    left, right = st.columns(2)
    if len(defended) and defended["ri"].notna().any():
        left.plotly_chart(sweep_figure(defended.dropna(subset=["ri"]), "value", "ri", title=f"RI against {label}", font_scale=scale), width="stretch", theme=None)
    else:
        left.info(undefined_ri_message(defended["ri_undefined_reason"]) if "ri_undefined_reason" in defended else "RI is undefined here.")
    right.plotly_chart(sweep_figure(frame, "value", "test_hr", title=f"Test HR against {label}", font_scale=scale), width="stretch", theme=None)
    for sentence in sweep_reading(frame, label):  # where the numbers defy the story, say so in numbers
        st.info(sentence)
    if any(d.startswith("apt") for d in base.defenses):  # every APT figure names its item statistics
        st.caption(f"APT's ERM users take their item statistics from the {STATS_WORDS.get(base.erm_stats, base.erm_stats)}.")
    shown = fmt_frame(frame)
    readable = shown.drop(columns=["parameter", parameter, "ri_undefined_reason"], errors="ignore").rename(columns={**COLUMN_LABELS, "value": label})
    readable["method"] = [PHASE_LABELS.get(p, p) for p in readable["method"]]
    st.dataframe(display_frame(readable), hide_index=True, width="stretch")
    download(shown, f"sweep_{parameter}.csv")


guard(body)
