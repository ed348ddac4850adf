"""Issue 24, item 1: the crafted Theory link ``/theory?presenter=true&pt-n=40001&pt-d=3000`` grew a
served dashboard from 0.4 to 4.0 GB in 44 s (presenter mode took the hidden n and d from the URL
unchecked; the sliders stop at 2000 and 300).  A real browser opens it on a served dashboard and
the server's memory (its peak resident set, from /proc) must stay flat while the values shown are
clamped (presenter mode allowed: no password set) or refused (a password set: presenter mode stays
off, the sliders refuse the values and the link's settings are reset with a message).

``pt-trials=0`` keeps it cheap: the simulation is off, but the page still samples one clean data set
of n x d users (about 2 GB at n = 40001, d = 3000 before the fix).
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from browser_support import chromium, need_browser, new_page, no_exception, open_page, serve, settle  # noqa: E402

CRAFTED = "/theory?presenter=true&pt-n=40001&pt-d=3000&pt-trials=0"
#: growth of the server's peak memory the visit may cause (before the fix: 3.6 GB)
FLAT_BYTES = 300 * 2**20


def _server_memory(url: str) -> dict[str, int]:
    """VmRSS and VmHWM (peak) in bytes of the ``streamlit run`` process serving ``url``."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and port.encode() in args:
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}
    raise AssertionError(f"no streamlit process serves port {port}")


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["safe mode, password set",
                                  # the clamping itself is checked without a browser (tests/test_app.py)
                                  pytest.param("local, no password", marks=pytest.mark.slow)])
def test_the_crafted_theory_link_keeps_the_server_flat(tmp_path, mode):
    need_browser()
    env = ({"APT_LAB_SAFE_MODE": "1", "APT_LAB_PRESENTER_PASSWORD": "a-long-class-password"} if mode.startswith("safe")
           else {"APT_LAB_SAFE_MODE": "0", "APT_LAB_PRESENTER_PASSWORD": ""})
    with serve(tmp_path, **env) as served, chromium() as browser:
        # Warm up: the Theory page once with its defaults (imports, figures), so that what follows is the link's own cost.
        warm = open_page(browser, f"{served.url}/?pt-trials=0", "Theory")
        settle(warm)
        warm.close()
        before = _server_memory(served.url)
        page = new_page(browser)
        page.set_default_timeout(180_000)
        page.goto(served.url + CRAFTED)
        page.wait_for_selector('h1:has-text("Theory")')
        settle(page)
        no_exception(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        after = _server_memory(served.url)
        page.close()
    grown = after["VmHWM"] - before["VmHWM"]
    print(f"{mode}: RSS {before['VmRSS'] / 2**20:.0f} -> {after['VmRSS'] / 2**20:.0f} MB, peak +{grown / 2**20:.0f} MB")
    assert grown < FLAT_BYTES, f"the server's peak memory grew by {grown / 2**20:.0f} MB"
    assert "Something went wrong" not in text
    if mode.startswith("safe"):  # presenter mode stays off: the sliders refuse 40001 and 3000, the link is reset
        assert "A value in the link was refused" in text and "Model settings (presenter mode hides them)" not in text
    else:  # presenter mode: the hidden values are clamped into the sliders' ranges
        assert "real users n = 2000" in text and "dimension d = 300" in text
