"""A served dashboard's log stays clean (issue 20, item 8): a real browser visits the pages with the
sample data, presses each page's Run button, waits for the page to settle, and the server's
stdout/stderr must hold no traceback and no error line (e.g. pyarrow's "Could not convert '–'",
which Streamlit logs with a traceback when a table column mixes numbers and text).

The full tour of every page is slow (minutes on a shared CPU); the default suite visits the
pages that showed tables with undefined values: Detection and Sweeps, then History (which lists
their runs, RI undefined included).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")

from apptest_support import isolated, no_failures, page  # noqa: E402,F401 -- isolated: autouse fixture
from browser_support import LOG_PROBLEM, PAGES, chromium, click_run_and_settle, need_browser, no_exception, open_page, serve, settle  # noqa: E402


def _tour(tmp_path, pages: list[str], query: str = "") -> dict[str, list[str]]:
    """Visit ``pages`` in order on a fresh server, in one browser session opened at ``/?query`` (the
    controls' values a link carries; the session keeps them for every page) and moving on through the
    sidebar, as a visitor does; returns each page's new problem lines in the log.  (A new session
    per page also ran app.py and the Overview page again for each.)"""
    need_browser()
    found: dict[str, list[str]] = {}
    with serve(tmp_path) as served, chromium() as browser:
        startup = served.problems()  # e.g. a config file that does not parse
        if startup:
            found["(server start)"] = startup
        page = None
        for name in pages:
            seen = len(served.log_text())
            start = time.monotonic()
            title = name.capitalize()
            if page is None:
                page = open_page(browser, f"{served.url}/?{query}" if query else served.url, title)
            elif title != "Overview":
                page.locator(f'[data-testid="stSidebarNavLink"]:has-text("{title}")').first.click()
                page.wait_for_selector(f'h1:has-text("{title}")')
            settle(page)
            click_run_and_settle(page)
            no_exception(page)
            print(f"{name}: {time.monotonic() - start:.0f} s")  # shown with -s: where the time goes
            lines = [line for line in served.log_text()[seen:].splitlines() if LOG_PROBLEM.search(line)]
            if lines:
                found[name] = lines
    return found


@pytest.mark.browser
def test_detection_and_sweeps_leave_no_traceback_in_the_server_log(tmp_path):
    # One sweep value and two detectors keep it short; the attack and origin rows' RI is undefined all the same.
    found = _tour(tmp_path, ["detection", "sweeps", "history"],
                  query="swp-values-attack_size=%220.03%22&det-detectors=%5B%22cogroup%22%2C%22rdma%22%5D")
    assert not found, found


@pytest.mark.browser
@pytest.mark.slow
def test_no_page_leaves_a_traceback_in_the_server_log(tmp_path):
    found = _tour(tmp_path, PAGES)
    assert not found, found


def test_the_log_check_sees_a_pyarrow_fallback():
    """The pattern catches what Streamlit logs when a table cannot be handed to Arrow."""
    logged = ["2026-01-01 00:00:00.000 Serialization of dataframe to Arrow table was unsuccessful. Applying automatic fixes",
              "Traceback (most recent call last):",
              "pyarrow.lib.ArrowInvalid: (\"Could not convert '–' with type str: tried to convert to double\", 'x')"]
    assert all(LOG_PROBLEM.search(line) for line in logged)
    assert not LOG_PROBLEM.search("AptWarning: artifact cache /tmp/x cannot be written; the run goes on without caching")


def test_a_table_with_undefined_values_goes_to_arrow_as_it_is():
    """Numbers stay numbers, "–" is only a display value; a column of text and numbers becomes text."""
    import pyarrow as pa

    from pages._shared.display import PLACEHOLDER, display_frame

    frame = pd.DataFrame({"RI": [0.5, np.nan, 1.25], "method": ["apt", None, "at"], "note": [0.5, "no lift", None]})
    styled = display_frame(frame)
    table = pa.Table.from_pandas(styled.data, preserve_index=False)  # raises on a mixed column
    assert pa.types.is_floating(table.schema.field("RI").type)
    shown = [[cell["display_value"] for cell in row[1:]] for row in styled._translate(False, False)["body"]]
    assert shown == [["0.5", "apt", "0.5"], [PLACEHOLDER, PLACEHOLDER, "no lift"], ["1.25", "at", PLACEHOLDER]]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (" Traceback" if record.exc_info else ""))


def test_pages_with_undefined_values_log_nothing_under_apptest():
    """The same check without a browser: Streamlit's logger while Detection, Sweeps and History
    (which lists the sweep's runs, RI undefined for the attack rows) draw their tables."""
    import streamlit.dataframe_util  # noqa: F401 -- its logger (the one that reports the fallback) exists from here on

    records = _Records()
    # Streamlit's loggers do not propagate: listen to each of them.
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "streamlit"]
    for logger in loggers:
        logger.addHandler(records)
    try:
        # As in the browser test: two detectors and one sweep value (the influence detector's fit and a
        # five-value live sweep add minutes, not tables of another kind).
        state = {"detection": {"det-detectors": ["cogroup", "rdma"]}, "sweeps": {"swp-values-attack_size": "0.03"}, "history": {}}
        for name in ("detection", "sweeps", "history"):
            at = page(name, **state[name]).run()
            no_failures(at)
            assert at.dataframe, name
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    assert not [line for line in records.lines if LOG_PROBLEM.search(line)], records.lines
