"""Shareable state: the controls' values live in the URL, so a copied link reopens the same view, and
in the session, so that leaving a page and coming back (sidebar or the browser's Back) shows the
same view: Streamlit forgets a widget's value once a run does not draw it (another page ran)."""
from __future__ import annotations

import json

import streamlit as st


def url_state(keys: list[str]) -> None:
    """Before a page's widgets: take each key's value from the URL once per session, and
    register the keys so that app.py writes the current values back into the URL.

    Values travel as JSON (numbers, strings, lists).  A copied link therefore reopens the
    same view in another browser.  A key whose widget was forgotten while another page ran gets
    the value it had when this page last ran (kept by :func:`write_url`).
    """
    loaded = st.session_state.setdefault("_url_loaded", set())
    kept = st.session_state.setdefault("_kept_settings", {})
    registered = st.session_state.setdefault("_url_keys", [])
    # A deep link on a fresh session passes through app.py (ensure_app), whose page switch drops
    # the query: ensure_app keeps a copy of it.
    qp = {**st.session_state.get("_pending_query", {}), **st.query_params.to_dict()}
    for key in keys:
        if key not in registered:
            registered.append(key)
        if key in loaded:
            if key not in st.session_state and key in kept:
                st.session_state[key] = kept[key]
            continue
        loaded.add(key)
        if key in qp:
            try:
                st.session_state[key] = json.loads(qp[key])
                st.session_state.setdefault("_url_from_link", set()).add(key)  # pages/_shared/page_guard resets these
            except (ValueError, TypeError):
                pass  # a hand-edited URL: ignore the value, keep the default


#: Streamlit pushes a browser-history entry for every change of the query string, so one Back
#: press stepped through a page's own control changes (and the page switch's stale query) instead
#: of returning to the previous page.  This replaces such same-page entries (page switches still
#: push): Back then returns to the last view of the previous page.  Runs once per browser tab, from
#: a zero-height component frame (same origin, so it reaches the app's window).
_HISTORY_PATCH = """<script>
const w = window.parent;
if (w && !w.__aptHistoryPatched) {
  w.__aptHistoryPatched = true;
  const push = w.history.pushState.bind(w.history);
  w.history.pushState = function (state, title, url) {
    const next = new URL(url, w.location.href);
    if (next.pathname === w.location.pathname) { return w.history.replaceState(state, title, url); }
    return push(state, title, url);
  };
}
</script>"""


def one_entry_per_page() -> None:
    """Install :data:`_HISTORY_PATCH` (app.py calls it in the sidebar, where the empty frame takes no room)."""
    import streamlit.components.v1 as components

    components.html(_HISTORY_PATCH, height=0)


def write_url() -> None:
    """After the page ran: the registered keys' current values into the URL (app.py calls it) and
    into the session's kept settings (restored by :func:`url_state` when the page runs again)."""
    wanted = {}
    kept = st.session_state.setdefault("_kept_settings", {})
    for key in st.session_state.get("_url_keys", []):
        if key in st.session_state:
            kept[key] = st.session_state[key]
            try:
                wanted[key] = json.dumps(st.session_state[key], default=str)
            except (TypeError, ValueError):
                continue
    for key in list(st.query_params):
        if key not in wanted:
            del st.query_params[key]
    for key, value in wanted.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


#: what Streamlit raises when a widget's value (here: from a link) lies outside its range
OUT_OF_RANGE = ("StreamlitValueAboveMaxError", "StreamlitValueBelowMinError", "StreamlitAPIException")


def reset_link_values(exc: Exception) -> bool:
    """After a widget refused a value a link set (``/theory?pt-n=40001``: above the slider's 2000),
    drop the link's values (the controls fall back to their defaults), say so on the next run and
    rerun.  False when the failure did not come from a link's value (nothing to reset)."""
    from_link = st.session_state.get("_url_from_link") or set()
    if type(exc).__name__ not in OUT_OF_RANGE or not from_link:
        return False
    for key in from_link:
        st.session_state.pop(key, None)
    st.session_state["_url_from_link"] = set()
    st.session_state["_url_refused"] = (f"A value in the link was refused ({str(exc)[:120]}); the link's settings "
                                        f"({', '.join(sorted(from_link))}) were reset to their defaults.")
    return True
