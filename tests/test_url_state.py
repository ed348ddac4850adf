"""Settings live for the whole session (issue 23 item 2): a page's controls keep their values while
another page runs (Streamlit forgets an undrawn widget's value) and are written into the URL."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _two_pages() -> None:
    import streamlit as st

    from pages._shared.url_state import url_state, write_url

    st.session_state["_url_keys"] = []  # as app.py does before each page
    if st.session_state.get("page", "defense") == "defense":
        url_state(["def-erm"])
        st.select_slider("ERM users", [0.01, 0.05, 0.1], value=0.05, key="def-erm")
    else:
        url_state(["atk-topn"])
        st.slider("List length", 5, 50, 10, key="atk-topn")
    write_url()


def test_a_page_keeps_its_settings_while_another_page_runs():
    at = AppTest.from_function(_two_pages).run()
    at.select_slider(key="def-erm").set_value(0.1).run()
    assert at.query_params["def-erm"] in ("0.1", ["0.1"])
    at.session_state["page"] = "attack"
    at.run()
    at.run()  # a second run of the other page: Streamlit has dropped the undrawn widget's state by now
    assert "def-erm" not in at.query_params  # the URL names the page on screen's settings only
    at.session_state["page"] = "defense"
    at.run()
    assert at.select_slider(key="def-erm").value == 0.1
    assert at.query_params["def-erm"] in ("0.1", ["0.1"])


def test_a_link_still_wins_on_a_new_session():
    at = AppTest.from_function(_two_pages)
    at.query_params["def-erm"] = "0.01"
    at.run()
    assert at.select_slider(key="def-erm").value == 0.01
