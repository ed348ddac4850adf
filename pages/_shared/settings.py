"""The shared sidebar's settings and the server's modes: data set, seed, device; safe mode
(served to a network) and presenter mode (a projector: advanced controls hidden)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from apt_core.data.loaders import DATASETS as _DATASET_RECORDS

# The named data sets and their labels come from their records (apt_core.data.loaders.DATASETS).


DATASETS = [*_DATASET_RECORDS, "uploaded CSV"]


DATASET_LABELS = {**{name: spec.label for name, spec in _DATASET_RECORDS.items()}, "uploaded CSV": "uploaded CSV"}


def safe_mode() -> bool:
    """Served to a network (see :mod:`apt_core.runtime.serving`): restrict folders, deletion and heavy runs."""
    from apt_core.runtime.serving import safe_mode_enabled

    try:
        address = st.get_option("server.address")
    except Exception:  # noqa: BLE001 -- no server config (bare script run): decide by the environment
        address = "127.0.0.1"
    return safe_mode_enabled(address)


def presenter_password() -> str | None:
    """``presenter_password`` from ``.streamlit/secrets.toml``, else ``$APT_LAB_PRESENTER_PASSWORD``."""
    from apt_core.runtime.serving import PASSWORD_ENV

    try:
        value = st.secrets.get("presenter_password")
    except Exception:  # noqa: BLE001 -- no secrets file
        value = None
    return value or os.environ.get(PASSWORD_ENV) or None


def is_presenter() -> bool:
    """Everything is allowed outside safe mode; inside it, once the presenter password was given."""
    return (not safe_mode()) or bool(st.session_state.get("_presenter"))


def settings() -> dict:
    """The shared sidebar's values (defaults when a page runs alone, as in tests)."""
    ss = st.session_state
    dataset = ss.get("dataset", "sample")
    if dataset == "uploaded CSV":
        dataset = ss.get("uploaded_path") or "sample"
    data_dir = ss.get("data_dir", os.environ.get("APT_DATA_DIR", "")) or None
    if safe_mode():
        from apt_core.runtime.serving import allowed_data_dirs, check_data_dir

        try:
            data_dir = check_data_dir(data_dir, allowed_data_dirs())
        except PermissionError:
            data_dir = None  # the sidebar offers only allowed folders; anything else is ignored
        own = ss.get("_upload_dir")
        if dataset not in DATASETS and not (own and Path(dataset).resolve().parent == Path(own).resolve()):
            dataset = "sample"  # only this session's own upload
    return {"dataset": dataset, "data_dir": data_dir, "seed": int(ss.get("seed", 0)), "device": ss.get("device", "auto")}


def presenter_locked() -> bool:
    """Safe mode with a presenter password set, not yet given: presenter mode stays off (its
    switch is disabled, a URL's ``?presenter=true`` is ignored).  It hides controls whose values
    then come unchecked from the URL, so a visitor may not turn it on."""
    return safe_mode() and bool(presenter_password()) and not st.session_state.get("_presenter")


def presenter() -> bool:
    """Presenter mode: advanced controls hidden, larger text (the sidebar's switch)."""
    return bool(st.session_state.get("presenter", False)) and not presenter_locked()


def chart_scale() -> float:
    """The figures' font scale (``font_scale=`` of apt_core.plots): presenter mode enlarges the charts too."""
    from apt_core.plots.style import PRESENTER_SCALE

    return PRESENTER_SCALE if presenter() else 1.0


def kept_value(key: str, default: Any, low: float | None = None, high: float | None = None) -> Any:
    """The value of a control that presenter mode hides: its last setting, else ``default``.

    Streamlit forgets a widget's value once a run does not draw it; writing the value back
    each run keeps it (and its URL entry), so leaving presenter mode restores the setting.
    ``low``/``high``: the hidden widget's own range.  The value may have come from a URL that
    no widget checked (``?presenter=true&pt-n=40001`` grew a served dashboard to 4 GB), so a
    number is clamped into the range and anything else falls back to ``default``.
    """
    if key not in st.session_state:
        return default
    value = st.session_state[key]
    if low is not None or high is not None:
        from apt_core.params import clamp_number

        value = clamp_number(value, default, low, high)
    st.session_state[key] = value
    return value
