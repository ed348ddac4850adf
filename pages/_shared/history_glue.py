"""The run history from the dashboard: every page's runs recorded with a link back to the page and its controls."""
from __future__ import annotations

import json
from typing import Any

import streamlit as st


#: which page a run_cached kind belongs to (the link back from the History page)
KIND_PAGES = {"demo": "overview", "attack": "attack", "defense": "defense", "lesson": "lesson", "lesson-oracle": "lesson", "sweep": "sweeps"}


def history_label(kind: str) -> str:
    """``dashboard:<page>?<query>``: the page and its controls, so the History page can link back."""
    from urllib.parse import urlencode

    query = {}
    for key in ["dataset", "seed", *st.session_state.get("_url_keys", [])]:
        if key in st.session_state:
            try:
                query[key] = json.dumps(st.session_state[key], default=str)
            except (TypeError, ValueError):
                continue
    return f"dashboard:{KIND_PAGES.get(kind, kind)}?{urlencode(query)}"


def record_history(kind: str, result: Any) -> str | None:
    """Keep a newly computed run in the run history; returns a note when that failed (the result is kept anyway)."""
    # Scenario runs only (they have per-seed hit ratios): a sweep records each of its points
    # itself (pages/sweeps.py), a detection report has no hit ratios to record.
    res = result if hasattr(result, "per_seed_metrics") else getattr(result, "result", None)
    if res is None or not hasattr(res, "per_seed_metrics"):
        return None
    try:
        from apt_core.storage.history import RunStore

        RunStore().record(res, label=history_label(kind))
    except Exception as exc:  # noqa: BLE001 -- history is a convenience
        return f"This run was not recorded in the history: {exc}"
    return None
