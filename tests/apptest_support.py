"""What the page tests share: running one page under AppTest with fresh caches and history."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
#: seconds AppTest waits for a page run (a slow shared CPU trains models inside some)
TIMEOUT = 240


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Fresh caches and a private run history for every test (import it into a test module)."""
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


#: One artifact cache shared by the page tests that only read the default runs' results: the same
#: deterministic fits (clean MF, the attack, APT, AT on the sample data, seed 0) were trained again
#: for each such test.  A test that needs a fresh computation (a broken trainer, a run that must be
#: recorded as computed) keeps the private cache of ``isolated``.
SHARED_ARTIFACTS = str(Path(os.environ.get("APT_CACHE_DIR", tempfile.gettempdir())).parent / "page-tests-artifacts")


def shared_artifacts(monkeypatch) -> None:
    """Use :data:`SHARED_ARTIFACTS` as this test's artifact cache (after ``isolated`` set a private one)."""
    monkeypatch.setenv("APT_CACHE_DIR", SHARED_ARTIFACTS)


def page(name: str, **state) -> AppTest:
    """An AppTest of ``pages/<name>.py`` as app.py's navigation runs it, with ``state`` preset."""
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)
    at.session_state["_via_app"] = True
    for k, v in state.items():
        at.session_state[k] = v
    return at


def no_failures(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def texts(at: AppTest) -> str:
    """Every message and text element of the page, as one string."""
    return " ".join(str(e.value) for kind in ("error", "warning", "info", "caption", "markdown", "exception") for e in at.get(kind))
