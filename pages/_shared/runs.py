"""Runs of the pages: finished results kept per scenario (shared by sessions), the Run button with its
progress bar and Cancel, the server's run queue in safe mode, and cache-only reads for live controls.

Results are kept keyed by the JSON of the frozen :class:`~apt_core.experiments.pipeline.Scenario`,
so moving a slider back is instant.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

from pages._shared.history_glue import record_history
from pages._shared.settings import is_presenter, safe_mode


class ResultStore:
    """Finished results by scenario key, least recently used evicted (shared by sessions).

    Not ``st.cache_resource`` around the computation itself: the run updates a progress bar
    created outside it, which Streamlit's cache replay forbids.
    """

    def __init__(self, max_entries: int = 64):
        self.max_entries = max_entries
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    return ResultStore()


def artifact_cache():
    """The experiments' on-disk cache (``$APT_CACHE_DIR``), or None when unavailable."""
    try:
        from apt_core.storage.cache import ArtifactCache

        return ArtifactCache()
    except Exception:  # noqa: BLE001 -- caching is an optimisation, never a reason to fail
        return None


@st.cache_resource(show_spinner=False)
def run_slots():
    """The server's one queue of runs (safe mode): at most ``$APT_LAB_MAX_RUNS`` at once."""
    from apt_core.runtime.serving import RunSlots, max_runs

    return RunSlots(max_runs())


@contextmanager
def budgeted(what: str, memory_bytes: int | None = None, on_wait: Callable[[int], object] | None = None) -> Iterator[None]:
    """A page's computation within the run budget (:class:`apt_core.runtime.serving.RunBudget`).

    Refused before it starts when its estimated memory (``memory_bytes``, where it can be
    estimated) is over the budget; on a served dashboard (safe mode) also queued in the server's
    run slots (``APT_LAB_MAX_RUNS``) and stopped with a message at the time budget (the
    computation calls :func:`apt_core.errors.check_deadline`).  Streamlit elements are drawn only
    by ``on_wait`` (so it may wrap the body of an ``st.cache_data`` function: a cache hit never queues).
    """
    from apt_core.errors import deadline
    from apt_core.runtime.serving import run_budget

    check_memory_budget(what, memory_bytes)
    if not safe_mode():
        yield
        return
    with run_slots().slot(on_wait=on_wait), deadline(run_budget().seconds, what):
        yield


def check_memory_budget(what: str, memory_bytes: int | None) -> None:
    """A :class:`~apt_core.errors.BudgetError` when ``memory_bytes`` (an estimate made before the
    computation) is over the memory one run may use (``APT_LAB_RUN_MEMORY_GB``; locally too)."""
    from apt_core.errors import BudgetError
    from apt_core.runtime.serving import run_budget

    limit = run_budget().memory_bytes
    if memory_bytes is not None and memory_bytes > limit:
        def size(n: float) -> str:
            return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"

        raise BudgetError(f"{what} would need about {size(memory_bytes)}, over the {size(limit)} one run may use "
                          "(APT_LAB_RUN_MEMORY_GB): choose smaller settings")


def is_heavy(kind: str, scenario: Any) -> bool:
    """Sweeps and runs of several seeds: what one visitor could use to occupy a shared server."""
    seeds = getattr(scenario, "seeds", 1)
    return kind == "sweep" or (isinstance(seeds, int) and seeds > 1)


def explore(scenario: Any, progress: Callable) -> Any:
    """The Attack and Profiles pages' run: the experiments' pipeline for one seed, models kept, through the disk cache."""
    from apt_core.experiments.demo import explore_attack

    return explore_attack(scenario, progress, cache=artifact_cache())


def scenario_key(kind: str, scenario: Any) -> str:
    payload = scenario.to_dict() if hasattr(scenario, "to_dict") else scenario
    return kind + ":" + json.dumps(payload, sort_keys=True, default=str)


def is_computed(kind: str, scenario: Any) -> bool:
    return scenario_key(kind, scenario) in result_store()


def run_cached(kind: str, scenario: Any, fn: Callable, label: str = "Run", auto: bool = False):
    """Return ``fn(scenario, progress)`` from the cache, or offer a Run button and compute it.

    While it runs a progress bar shows the stage; the Cancel button (any click reruns the
    script, which interrupts the run at its next progress update) stops it.  Returns
    ``None`` while nothing is computed for this scenario.
    """
    key = scenario_key(kind, scenario)
    store = result_store()
    cached = store.get(key)
    if cached is not None:
        for note in store.get(key + "#notes") or []:
            st.warning(note)
        return cached
    shared = safe_mode()
    if shared and is_heavy(kind, scenario) and not is_presenter():
        st.info("This shared server runs sweeps and multi-seed runs for the presenter only "
                "(enter the presenter password in the sidebar), or choose one seed.")
        return None
    if st.session_state.get("_running") == key:
        st.warning("The previous run was cancelled (or interrupted by a change of settings).")
        st.session_state["_running"] = None
        auto = False  # a cancelled run does not restart by itself: the Run button brings it back
    clicked = auto or st.button(label, type="primary", key=f"run-{kind}")
    if not clicked:
        return None
    slot = st.empty()  # bar and Cancel in one slot: cleared on failure, so no debris stays under the error
    with slot.container():
        # Cancel above the bar: the bar's text changes length with every update, and a button
        # under it moved with each wrap (hard to click for a person; a browser test timed out).
        st.button("Cancel", key=f"cancel-{kind}", help="stops the run at its next progress update")
        bar = st.progress(0.0, text="starting...")
    st.session_state["_running"] = key

    def progress(fraction: float, stage: str) -> bool:
        bar.progress(float(min(1.0, max(0.0, fraction))), text=f"{stage} ({fraction:.0%})")
        check_deadline()  # safe mode: a run past the time budget stops here, with a message
        return True

    def queued(ahead: int) -> None:
        bar.progress(0.0, text=f"queued: the server runs {run_slots().limit} run(s) at a time; {ahead} waiting before yours")

    from apt_core.errors import check_deadline, collect_warnings

    try:
        with collect_warnings() as notes:
            if shared:
                with budgeted(f"this {kind} run", on_wait=queued):
                    result = fn(scenario, progress)
            else:
                result = fn(scenario, progress)
    except Exception:
        st.session_state["_running"] = None  # a failure is not a cancellation
        slot.empty()
        raise
    saved = list(notes)
    if kind != "defense":  # the Defense page records its own runs (and reports a failure)
        note = record_history(kind, result)
        if note:
            saved.append(note)
    store.put(key + "#notes", saved)  # shown with the result (a cache that cannot be written...)
    store.put(key, result)
    st.session_state["_running"] = None
    # Render again from the cache: the Run/Cancel buttons and the bar disappear.
    st.rerun()


def from_cache_only(kind: str, scenario: Any, data=None, keep_models: bool = False):
    """The scenario's result when the artifact cache answers it without training, else None."""
    key = scenario_key(kind, scenario)
    store = result_store()
    hit = store.get(key)
    if hit is not None:
        for note in store.get(key + "#notes") or []:  # the run's warnings stay with its result
            st.warning(note)
        return hit
    cache = artifact_cache()
    if cache is None:
        return None
    from apt_core.storage.cache import CacheMiss
    from apt_core.experiments.pipeline import run_scenario

    try:
        result = run_scenario(scenario, cache=cache, data=data, cache_only=True, keep_models=keep_models)
    except CacheMiss:
        return None
    store.put(key, result)
    return result


def attack_view(scenario: Any, data, live: bool):
    """The Attack/Profiles pages' view: from the cache when a precomputed position, else run (no click when live)."""
    from apt_core.storage.cache import CacheMiss
    from apt_core.experiments.demo import explore_attack

    key = scenario_key("attack", scenario)
    hit = result_store().get(key)
    if hit is not None:
        return hit
    if artifact_cache() is not None:
        try:
            view = explore_attack(scenario, cache=artifact_cache(), cache_only=True, data=data)
            result_store().put(key, view)
            return view
        except CacheMiss:
            pass
    return run_cached("attack", scenario, explore, label="Run the attack", auto=live)


def remember(kind: str, scenario: Any, result: Any) -> None:
    """Keep the page's last shown result: real data sets show it greyed while a new one is pending."""
    st.session_state[f"_last-{kind}"] = (scenario, result)


def last_shown(kind: str):
    return st.session_state.get(f"_last-{kind}")


def stale_container():
    """A container drawn greyed out (the previous result while the new settings are not run)."""
    st.html("<style>.st-key-stale-result {opacity: 0.45; filter: grayscale(0.6);}</style>")
    return st.container(key="stale-result")
