"""Live controls (classroom mode).

On the sample data the controls snap to :mod:`apt_core.experiments.grid`'s values; a background thread
fits the whole grid once into the artifact cache, after which a slider move is a cache read.  On a real
data set the presenter can start the same build (:func:`offer_grid`).
"""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Callable

import streamlit as st

from apt_core.errors import CancelledError
from pages._shared.runs import artifact_cache
from pages._shared.settings import is_presenter, settings
from pages._shared.uploads import load_data


class GridBuilder:
    """One background grid build per base scenario, shared by every session of the server.

    ``inputs()`` returns ``(scenarios, data)``; it runs in the build's own thread, so a page that
    starts a build (any page, on a first visit) never waits for the model code to import or the
    data to load.
    """

    def __init__(self, inputs: Callable[[], tuple[list, Any]]) -> None:
        self._inputs = inputs
        self.scenarios: list = []
        self.data = None
        self.fraction = 0.0
        self.text = "starting"
        self.done = False
        self.error: str | None = None
        self.report = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="apt-grid-build")
        self._thread.start()
        # A daemon thread still inside torch when the interpreter exits is killed mid-call, which
        # aborts the process (std::terminate): stop the build and wait for it at exit instead.
        atexit.register(self.stop)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the build (it stops within one training epoch) and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from apt_core.experiments.grid import build_grid

        def progress(fraction: float, text: str) -> bool:
            self.fraction, self.text = fraction, text
            return not self._stop.is_set()

        try:
            self.scenarios, self.data = self._inputs()
            self.report = build_grid(self.scenarios, artifact_cache(), progress, data=self.data)
        except CancelledError:
            self.error = "the grid build was stopped"
        except Exception as exc:  # noqa: BLE001 -- shown on the page; live results still fall back to running
            self.error = f"{type(exc).__name__}: {exc}"
        self.done = True


def _grid_inputs(cfg: dict) -> tuple[list, Any]:
    """The grid's positions and data set (in the build's thread: imports the model code)."""
    from apt_core.experiments.grid import grid_scenarios

    data = load_data(cfg["dataset"], cfg["data_dir"])
    return grid_scenarios(grid_base(cfg), live_spec()), data


@st.cache_resource(show_spinner=False, max_entries=8)
def _grid_builder(grid_key: str, _cfg: dict) -> GridBuilder:
    cfg = dict(_cfg)
    return GridBuilder(lambda: _grid_inputs(cfg))


def live_spec():
    from apt_core.experiments.grid import GridSpec

    return GridSpec().available()


def is_live(cfg: dict | None = None) -> bool:
    """Live controls (no Run button) on the bundled sample data; real data sets keep Run."""
    cfg = cfg or settings()
    return cfg["dataset"] == "sample" or bool(st.session_state.get("grid_built", {}).get(grid_id(cfg)))


def grid_id(cfg: dict) -> str:
    return f"{cfg['dataset']}|{cfg['data_dir']}|{cfg['seed']}|{cfg['device']}"


def grid_base(cfg: dict):
    """The scenario the grid varies (defaults of the Defense page: unpopular targets, 5% ERM);
    the same as ``python -m apt_core grid`` builds, so a grid built before class is this one."""
    from apt_core.experiments.grid import classroom_base

    return classroom_base(cfg["dataset"], cfg["data_dir"], cfg["seed"], cfg["device"])


def start_grid(cfg: dict) -> GridBuilder:
    """This configuration's build, started on the first call (returns at once; see :class:`GridBuilder`)."""
    return _grid_builder(grid_id(cfg), {k: cfg[k] for k in ("dataset", "data_dir", "seed", "device")})


#: the pages that show the build's progress bar themselves (pages/attack.py, pages/defense.py)
PAGES_WITH_PANEL = ("Attack", "Defense")


def start_grid_early(cfg: dict, page_title: str = "") -> None:
    """On a first visit, from any page: start the live controls' grid build (a browser session,
    live data only) and say in the sidebar how far it is, unless the page shows its own bar."""
    if not grid_enabled() or not is_live(cfg):
        return
    builder = start_grid(cfg)
    if page_title in PAGES_WITH_PANEL:
        return
    with st.sidebar:
        if builder.done:
            _grid_panel_static(builder)
        else:
            _grid_status(cfg)


@st.fragment(run_every=2.0)
def _grid_status(cfg: dict) -> None:
    builder = start_grid(cfg)
    if builder.done:
        st.rerun(scope="app")  # the line turns into the finished build's caption
    st.caption(f"Preparing the live controls in the background ({builder.fraction:.0%}): {builder.text}")


@st.fragment(run_every=1.0)
def _grid_panel(cfg: dict) -> None:
    builder = start_grid(cfg)
    if builder.done:
        st.rerun(scope="app")  # the bar goes; the page redraws from the finished grid
    st.progress(float(builder.fraction), text=f"Precomputing every slider position in the background ({builder.text}); "
                                              "positions already computed show at once.")


def grid_enabled() -> bool:
    """Background grid builds run for a browser session of a Streamlit server, unless APT_GRID_BUILD=0.

    A browser's request has headers; AppTest (which has a Streamlit runtime too) has none, so
    page tests never start a build; they test the grid through :func:`apt_core.experiments.grid.build_grid`.
    """
    from streamlit import runtime

    if os.environ.get("APT_GRID_BUILD", "1") == "0" or not runtime.exists():
        return False
    try:
        return bool(st.context.headers)
    except Exception:  # noqa: BLE001 -- no request context (a bare script run): no browser either
        return False


def grid_panel(cfg: dict) -> None:
    """The background build's progress bar (it disappears when the build is done)."""
    if not grid_enabled():
        return
    builder = start_grid(cfg)
    if builder.done:
        _grid_panel_static(builder)
    else:
        _grid_panel(cfg)


def _grid_panel_static(builder: GridBuilder) -> None:
    if builder.error:
        st.caption(f"Precomputing the slider positions stopped: {builder.error}. Moving a control still computes its result.")
    elif builder.report is not None:
        st.caption(f"All {builder.report.n_points} slider positions are precomputed: moving a control updates the figures at once.")


def offer_grid(cfg: dict, seconds_per_fit: float | None) -> None:
    """On a real data set: offer the one-time grid build (with its time estimate) that makes the controls live."""
    if not grid_enabled() or not is_presenter():  # a shared server builds grids for its presenter only
        return
    from apt_core.experiments.grid import estimate_seconds, grid_scenarios

    n_points = len(grid_scenarios(grid_base(cfg), live_spec()))
    if seconds_per_fit:
        minutes = estimate_seconds(grid_scenarios(grid_base(cfg), live_spec()), seconds_per_fit) / 60
        when = f"about {minutes:.0f} min on this machine, estimated from the last run"
    else:
        when = "run once first for a time estimate"
    with st.expander("Make the controls live on this data set"):
        st.markdown(f"Precompute all {n_points} slider positions once ({when}); it runs in the background and is kept on disk. "
                    "Afterwards every control updates the figures at once.")
        if st.button("Precompute every slider position", key="grid-build"):
            st.session_state.setdefault("grid_built", {})[grid_id(cfg)] = True
            st.rerun()
