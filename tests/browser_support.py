"""What the real-browser tests share: a served ``streamlit run app.py`` with its log in a file,
Debian's Chromium through Playwright, and waiting for a page to settle."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: (file stem, sidebar title) of every page, in the navigation's order
PAGES = ["overview", "lesson", "data", "attack", "defense", "sweeps", "profiles", "detection", "theory", "history"]
#: a server log line that reports a failure: a traceback or a logged stack, an exception's name (pyarrow's
#: ArrowInvalid included), or Streamlit falling back from a table it could not hand to Arrow
#: Every page is opened with ``prefers-reduced-motion: reduce``: Streamlit's animations otherwise
#: keep headless Chromium's software renderer busy (the Defense page cost 11-18 CPU s to draw with
#: them, 6.6-7.3 without, on the shared 2-core machine); the tests check what the page shows, not how it moves.
PAGE_OPTIONS = {"reduced_motion": "reduce"}
LOG_PROBLEM = re.compile(r"Traceback|Stack \(most recent call last\)|\b[A-Z]\w*(Error|Exception)\b|\bArrow[A-Z]\w+|Serialization of dataframe to Arrow table was unsuccessful")


@dataclass
class Served:
    """A running dashboard: its address and the file holding its stdout and stderr."""

    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def problems(self) -> list[str]:
        """The log's lines that report a failure (see :data:`LOG_PROBLEM`)."""
        return [line for line in self.log_text().splitlines() if LOG_PROBLEM.search(line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_browser() -> None:
    """Skip unless Chromium and Playwright are installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright")


@contextmanager
def serve(tmp: Path, **env_overrides: str) -> Iterator[Served]:
    """``streamlit run app.py`` on a free local port, with a private history and cache under ``tmp``.

    The log goes to a file, not a pipe: nobody reads a pipe while the tests run, and a server
    that fills one (64 KiB of log) blocks on its next write.
    """
    port = _free_port()
    # APT_GRID_BUILD=0: no background precomputation competing with the tests for the CPU (the
    # live controls still need no click; scripts/classroom_bench.py measures the grid).
    env = dict(os.environ, APT_HISTORY_DB=str(tmp / "history.sqlite"), APT_CACHE_DIR=str(tmp / "cache"),
               OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT), APT_GRID_BUILD="0")
    env.setdefault("APT_NUM_THREADS", "1")
    env.update(env_overrides)
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{served.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start: {served.log_text()[-2000:]}")
            time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's ``Browser``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def settle(page, timeout_s: float = 240.0) -> None:
    """Wait until the script run is over and the page stops changing (slow shared CPU)."""
    deadline = time.time() + timeout_s
    last, stable = -1, 0
    while time.time() < deadline:
        # A run in progress shows Streamlit's status widget or our Cancel button (a progress bar
        # alone is not enough: the Lesson page's step indicator is one and never goes away).
        running = (page.locator('[data-testid="stStatusWidget"]').count() > 0
                   or page.get_by_role("button", name="Cancel").count() > 0)
        count = page.evaluate("() => document.querySelectorAll('[data-testid]').length")
        stable = stable + 1 if (count == last and not running) else 0
        if stable >= 3:
            return
        last = count
        page.wait_for_timeout(700)


def new_context(browser, height: int = 2400, width: int = 1400):
    """A new browser session (its own cookies, so its own Streamlit session) with :data:`PAGE_OPTIONS`."""
    return browser.new_context(viewport={"width": width, "height": height}, **PAGE_OPTIONS)


def new_page(browser, height: int = 2400, width: int = 1400):
    """A page of its own browser session with :data:`PAGE_OPTIONS` (``Browser.new_page``'s own context)."""
    return browser.new_page(viewport={"width": width, "height": height}, **PAGE_OPTIONS)


def open_page(browser, url: str, title: str | None = None, height: int = 2400, width: int = 1400):
    """Open the app at its root, then go to ``title``'s page through the sidebar.

    Going through the root first matters: on a fresh server the first script run decides
    that the app uses ``st.navigation``; a deep link before that runs the page file alone.
    """
    page = new_page(browser, height, width)
    page.set_default_timeout(180_000)
    page.goto(url)
    page.wait_for_selector("h1")
    page.wait_for_selector('[data-testid="stSidebarNavLink"]:has-text("Overview")')
    if title and title != "Overview":
        page.locator(f'[data-testid="stSidebarNavLink"]:has-text("{title}")').first.click()
        page.wait_for_selector(f'h1:has-text("{title}")')
    return page


def click_run_and_settle(page, timeout_s: float = 600.0) -> None:
    """Press the page's primary (Run) button when it has one, and wait for the result."""
    run = page.locator('[data-testid="stMain"] [data-testid="stBaseButton-primary"]')
    if run.count():
        run.first.click()
        page.wait_for_timeout(1500)
        settle(page, timeout_s)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
