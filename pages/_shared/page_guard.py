"""Every page runs through :func:`guard`: through app.py (sidebar and navigation), and with errors
shown as messages, never tracebacks."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

from apt_core.errors import AptError, CancelledError
from pages._shared.settings import safe_mode


def ensure_app(page_file: str) -> None:
    """Send a page that runs without ``app.py`` (a deep link on a fresh server) through it.

    Until the entry script has called ``st.navigation`` once, Streamlit maps a URL such as
    ``/data`` to ``pages/data.py`` alone: no sidebar, no navigation.  app.py marks every run
    it drives; an unmarked page run asks app.py to open this page instead.  (AppTest checks
    of a single page set ``_via_app`` themselves.)
    """
    from streamlit import runtime

    if runtime.exists() and not st.session_state.get("_via_app"):
        st.session_state["_wanted_page"] = Path(page_file).name
        st.session_state["_pending_query"] = st.query_params.to_dict()  # the switch drops the URL's query
        st.switch_page("app.py")


def guard(body: Callable[[], None]) -> None:
    """Run a page body; errors become messages, never tracebacks."""
    ensure_app(body.__code__.co_filename)
    refused = st.session_state.pop("_url_refused", None)
    if refused:
        st.warning(refused)
    try:
        body()
    except CancelledError as exc:
        st.warning(f"Cancelled: {exc}")
    except AptError as exc:
        message = str(exc)
        if safe_mode():
            from apt_core.errors import DataError
            from apt_core.runtime.serving import redact

            if isinstance(exc, DataError):
                message = redact(message)  # field values may be lines of a server file
        st.error(message)
    except Exception as exc:  # noqa: BLE001 -- a dashboard shows every failure as a message
        from pages._shared.url_state import reset_link_values

        if reset_link_values(exc):
            st.rerun()
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}" if not safe_mode() else f"Something went wrong ({type(exc).__name__}).")
