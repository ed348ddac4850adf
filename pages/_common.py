"""Shared helpers of the dashboard's pages: sidebar settings, cached runs, error guard.

Pages stay thin: widgets -> one ``apt_core`` call (through :func:`run_cached`) -> a figure
from a pure function.  Results are cached with ``st.cache_resource`` keyed by the JSON of
the frozen :class:`~apt_core.experiments.pipeline.Scenario`, so moving a slider back is instant.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st

from apt_core.data.loaders import DATASETS as _DATASET_RECORDS
from apt_core.errors import AptError, CancelledError

#: plain-language explanations shown as tooltips wherever the term appears
GLOSSARY = {
    "target item": "An item the attacker wants the recommender to push: the fake users all rate it with the top score.",
    "HR@K": "Hit ratio at K: the share of real users who find the item among their K best recommendations "
            "(target HR: averaged over the target items; test HR: the user's own held-out item, i.e. accuracy).",
    "RI": "Robustness improvement: 1 = the defense fully undid the attack, 0 = no better than no defense, "
          "below 0 = worse than no defense.",
    "ERM user": "A fake user that APT adds itself during training. Its ratings lower the model's error on the data it sees, "
                "which dilutes the attacker's fake users.",
    "oracle statistics": "The item averages from the clean data, before any poisoning. A real defender never has them: "
                         "'observed' statistics (from the poisoned data) are the honest setting.",
    "attack size": "Number of fake users as a share of the real users (3% of 600 users = 18 fake users).",
}

# The named data sets and their labels come from their records (apt_core.data.loaders.DATASETS).
DATASETS = [*_DATASET_RECORDS, "uploaded CSV"]
DATASET_LABELS = {**{name: spec.label for name, spec in _DATASET_RECORDS.items()}, "uploaded CSV": "uploaded CSV"}


def safe_mode() -> bool:
    """Served to a network (see :mod:`apt_core.runtime.serving`): restrict folders, deletion and heavy runs."""
    from apt_core.runtime.serving import safe_mode_enabled

    try:
        address = st.get_option("server.address")
    except Exception:  # noqa: BLE001 -- no server config (bare script run): decide by the environment
        address = "127.0.0.1"
    return safe_mode_enabled(address)


def presenter_password() -> str | None:
    """``presenter_password`` from ``.streamlit/secrets.toml``, else ``$APT_LAB_PRESENTER_PASSWORD``."""
    from apt_core.runtime.serving import PASSWORD_ENV

    try:
        value = st.secrets.get("presenter_password")
    except Exception:  # noqa: BLE001 -- no secrets file
        value = None
    return value or os.environ.get(PASSWORD_ENV) or None


def is_presenter() -> bool:
    """Everything is allowed outside safe mode; inside it, once the presenter password was given."""
    return (not safe_mode()) or bool(st.session_state.get("_presenter"))


def settings() -> dict:
    """The shared sidebar's values (defaults when a page runs alone, as in tests)."""
    ss = st.session_state
    dataset = ss.get("dataset", "sample")
    if dataset == "uploaded CSV":
        dataset = ss.get("uploaded_path") or "sample"
    data_dir = ss.get("data_dir", os.environ.get("APT_DATA_DIR", "")) or None
    if safe_mode():
        from apt_core.runtime.serving import allowed_data_dirs, check_data_dir

        try:
            data_dir = check_data_dir(data_dir, allowed_data_dirs())
        except PermissionError:
            data_dir = None  # the sidebar offers only allowed folders; anything else is ignored
        own = ss.get("_upload_dir")
        if dataset not in DATASETS and not (own and Path(dataset).resolve().parent == Path(own).resolve()):
            dataset = "sample"  # only this session's own upload
    return {"dataset": dataset, "data_dir": data_dir, "seed": int(ss.get("seed", 0)), "device": ss.get("device", "auto")}


#: uploads live in one private folder per browser session under this root
UPLOAD_ROOT = Path(os.environ.get("APT_LAB_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "apt_lab_uploads")
#: a session folder untouched this long belongs to a finished session: removed
UPLOAD_MAX_AGE_S = 6 * 3600


def _safe_stem(name: str, limit: int = 40) -> str:
    """A file-name stem that is safe on any file system: no folders, no dot files, short."""
    stem = Path(str(name).replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:limit]
    return stem or "upload"


def sweep_old_uploads(root: Path = UPLOAD_ROOT, max_age: float = UPLOAD_MAX_AGE_S) -> int:
    """Remove session upload folders not used for ``max_age`` seconds; returns how many."""
    import shutil
    import time

    removed = 0
    if not root.is_dir():
        return 0
    for folder in root.iterdir():
        try:
            if folder.is_dir() and not folder.is_symlink() and time.time() - folder.stat().st_mtime > max_age:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def session_upload_folder() -> Path:
    """This browser session's own upload folder (created on first use, kept fresh while used).

    Sessions never share files: one session cannot read, replace or delete another's upload.
    Folders of ended sessions are removed by age (Streamlit has no reliable end-of-session hook).
    """
    ss = st.session_state
    folder = ss.get("_upload_dir")
    if not folder or not Path(folder).is_dir():
        UPLOAD_ROOT.mkdir(parents=True, exist_ok=True)
        sweep_old_uploads()
        folder = tempfile.mkdtemp(prefix="session-", dir=UPLOAD_ROOT)
        ss["_upload_dir"] = folder
    try:
        os.utime(folder)  # in use: not swept
    except OSError:
        pass
    return Path(folder)


def save_upload(name: str, content: bytes, folder: str | Path | None = None) -> str:
    """Validate an uploaded rating file and keep it on disk (the library loads by path).

    ``folder``: where to keep it (default: this session's upload folder).  The stored name
    is a sanitised, shortened stem plus the content hash, whatever the browser sent.
    Text that is not UTF-8 is refused with the line of the first bad byte, never decoded
    with replacement characters.
    """
    digest = hashlib.sha256(content).hexdigest()[:16]
    stored = f"{_safe_stem(name)}-{digest}.csv"
    try:
        parse_upload(digest, stored, content)
    except AptError as exc:  # DataError with file, line and reason: name the file as the user knows it
        shown = Path(str(name).replace("\\", "/")).name[:60] or "upload"
        raise type(exc)(str(exc).replace(stored, shown)) from None
    folder = Path(folder) if folder is not None else session_upload_folder()
    path = folder / stored
    if not path.is_file():
        from apt_core.storage.cache import atomic_write_bytes

        atomic_write_bytes(path, content)
    return str(path)


@st.cache_resource(show_spinner="Checking the file...", max_entries=4)
def parse_upload(digest: str, name: str, _content: bytes | None = None, _path: str | None = None):
    """Parse an upload once per content hash (reruns, pages and other sessions reuse it);
    the bytes come from ``_content`` or the stored file ``_path`` (neither is hashed)."""
    from apt_core.data import load_csv

    return load_csv(name, text=_content if _content is not None else Path(_path).read_bytes())


_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-]+-([0-9a-f]{16})\.csv$")


@st.cache_resource(show_spinner=False, max_entries=8)
def load_data(name: str, data_dir: str | None):
    from apt_core.data import load_dataset

    path = Path(name)
    match = _UPLOAD_NAME.match(path.name)
    if match and UPLOAD_ROOT.resolve() in path.resolve().parents:
        return parse_upload(match.group(1), path.name, _path=str(path))  # parsed once, when uploaded
    return load_dataset(name, data_dir)


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
        bar = st.progress(0.0, text="starting...")
        st.button("Cancel", key=f"cancel-{kind}", help="stops the run at its next progress update")
    st.session_state["_running"] = key

    def progress(fraction: float, stage: str) -> bool:
        bar.progress(float(min(1.0, max(0.0, fraction))), text=f"{stage} ({fraction:.0%})")
        return True

    def queued(ahead: int) -> None:
        bar.progress(0.0, text=f"queued: the server runs {run_slots().limit} run(s) at a time; {ahead} waiting before yours")

    from apt_core.errors import collect_warnings

    try:
        with collect_warnings() as notes:
            if shared:
                with run_slots().slot(on_wait=queued):
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
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}" if not safe_mode() else f"Something went wrong ({type(exc).__name__}).")


def download(frame: pd.DataFrame, name: str, label: str = "Download this table (CSV)") -> None:
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=name, mime="text/csv", key=f"dl-{name}")


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for the screen: an undefined value shows as "–" (Streamlit would print "None")."""
    return frame.astype(object).where(frame.notna(), "–")


def fmt_frame(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(digits)
    return out


def param_controls(names: list[str], prefix: str, title: str = "Advanced: parameters") -> dict | None:
    """An expander with one widget per declared hyper-parameter of the methods ``names`` (attacks, defenses, detectors).

    Generated from the declarations (:mod:`apt_core.params`), so a registered method gets its
    controls without page code.  Returns ``{"NAME.PARAM": value}`` for the values changed from
    the default (what ``Scenario.params`` takes), or None when a typed value is invalid (the
    message is shown in place of a traceback).
    """
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.detection import DETECTORS
    from apt_core.errors import ConfigError

    classes = [(n, ATTACKS.get(n) or DEFENSES.get(n) or DETECTORS.get(n)) for n in names]
    classes = [(n, c) for n, c in classes if c is not None and c.params]
    out: dict = {}
    if not classes:
        return out
    if presenter():
        # Hidden on the projector; the values set before still count (kept, not reset).
        for name, cls in classes:
            for p in cls.params:
                try:
                    value = _param_value(p, kept_value(f"{prefix}-param-{name}-{p.name}", None), name)
                except ConfigError:
                    continue  # an invalid hidden value counts as the default (the expander shows the error)
                if value != p.default:
                    out[f"{name}.{p.name}"] = value
        if out:
            st.caption(f"{title}: {len(out)} changed from the defaults ({', '.join(out)}); presenter mode hides them.")
        return out
    ok = True
    with st.expander(title, expanded=False):
        st.caption("Every hyper-parameter the method declares. "
                   "Blank or 'default' keeps the default; changed values are part of the cache key and the run history.")
        for name, cls in classes:
            st.markdown(f"**{name}** — {cls.summary}")
            cols = st.columns(3)
            for i, p in enumerate(cls.params):
                key = f"{prefix}-param-{name}-{p.name}"
                paper = "" if p.paper is None else f" Paper: {p.paper}."
                help_text = f"{p.help}. Allowed: {p.range_text()}.{paper}"
                col = cols[i % 3]
                if p.type is bool:
                    raw = col.checkbox(p.name, value=bool(p.default), key=key, help=help_text)
                elif p.choices is not None:
                    options = (["default"] if p.optional else []) + list(p.choices)
                    raw = col.selectbox(p.name, options, index=options.index("default" if p.default is None else p.default), key=key, help=help_text)
                else:
                    raw = col.text_input(p.name, value="" if p.default is None else str(p.default), key=key, help=help_text,
                                         placeholder="default")
                try:
                    value = _param_value(p, raw, name)
                except ConfigError as exc:
                    col.error(str(exc))
                    ok = False
                    continue
                if value != p.default:
                    out[f"{name}.{p.name}"] = value
    return out if ok else None


def _param_value(p, raw: Any, name: str) -> Any:
    """A parameter's widget value (checkbox, select box or typed text) as the scenario takes it;
    raises ConfigError for text that does not parse.  Blank or "default" is the default."""
    if raw is None:
        return p.default
    if p.type is bool:
        return bool(raw)
    if p.choices is not None:
        return None if raw == "default" else raw
    text = str(raw).strip()
    if not text or text.lower() == "default":
        return p.default
    return p.parse(text, name)


def attack_controls(data, prefix: str = "atk"):
    """Widgets shared by the Attack and Profiles pages; returns the scenario they describe."""
    from apt_core.attacks import ATTACKS, attack_names
    from apt_core.experiments.pipeline import Scenario

    cfg = settings()
    live = is_live(cfg)
    url_state([f"{prefix}-attack", f"{prefix}-size", f"{prefix}-filler", f"{prefix}-mode"])
    names = [a for a in attack_names() if a != "none"]
    if not names:
        st.warning("No attack is available yet.")
        return None
    c = st.columns(4 if presenter() else 5)
    attack = c[0].selectbox("Attack", names, index=names.index("average") if "average" in names else 0, key=f"{prefix}-attack", help="; ".join(f"{n}: {ATTACKS[n].summary}" for n in names))
    if live:  # snap to the precomputed grid (apt_core.experiments.grid): a move is a cache read
        sizes = list(live_spec().sizes)
        if st.session_state.get(f"{prefix}-size") not in sizes:
            st.session_state.pop(f"{prefix}-size", None)
        size = c[1].select_slider("Attack size (fake users, share of real users)", sizes, value=0.03 if 0.03 in sizes else sizes[0],
                                  format_func=lambda v: f"{v:.0%}", key=f"{prefix}-size", help=GLOSSARY["attack size"])
    else:
        size = c[1].slider("Attack size (fake users, share of real users)", 0.005, 0.20, 0.03, 0.005, format="%.3f", key=f"{prefix}-size", help=GLOSSARY["attack size"])
    victims = {"mf": "MF (the paper's)", "lightgcn": "LightGCN", "neumf": "NeuMF"}
    if presenter():  # advanced controls: the fake profiles' length and the victim model, named in one caption
        filler = int(kept_value(f"{prefix}-filler", 0) or 0)
        victim = kept_value(f"{prefix}-victim", "mf")
        c[2].caption(f"Filler items per fake user: {'average profile length' if not filler else filler}; "
                     f"victim model: {victims.get(victim, victim)}")
    else:
        filler = c[2].number_input("Filler items per fake user (0 = average profile length)", 0, max(1, int(data.n_items) - 10), 0, key=f"{prefix}-filler",
                                   help="Items a fake user rates besides the targets, so that the profile looks like a real one.")
    mode = c[3].selectbox("Target items", ["unpopular", "random", "chosen by title"], key=f"{prefix}-mode", help=GLOSSARY["target item"])
    targets: str | tuple = mode
    if not presenter():
        victim = c[4].selectbox(
            "Victim model", list(victims), key=f"{prefix}-victim", format_func=victims.get,
            help="The recommender that is attacked and defended. MF: explicit ratings, the APT paper's victim. "
                 "LightGCN (BPR) and NeuMF (log loss) read every rating as an interaction, as their papers do; "
                 "they take tens of seconds per fit on ML-100K on a CPU.")
    if mode == "chosen by title":
        counts = data.interactions.item_counts
        order = np.argsort(counts)  # unpopular first: the interesting targets
        labels = {int(i): f"{data.title(int(i))} ({int(counts[i])} ratings)" for i in order}
        chosen = st.multiselect("Choose target items", list(labels), format_func=lambda i: labels[i], max_selections=10, key=f"{prefix}-chosen")
        if not chosen:
            st.info("Choose at least one target item.")
            return None
        targets = tuple(v.item() if hasattr(v, "item") else v for v in data.item_ids[np.asarray(chosen)])
    params = param_controls([attack], prefix, f"Advanced: {attack} parameters")
    if params is None:
        return None
    scenario = Scenario(
        dataset=cfg["dataset"], data_dir=cfg["data_dir"], attack=attack, attack_size=float(size),
        filler=int(filler) or None, targets=targets, seed=cfg["seed"], device=cfg["device"], victim=victim, params=params,
    )
    return small_data_controls(scenario, data, prefix)


def small_data_controls(scenario, data, prefix: str):
    """On a small data set: K and the number of targets adapt (the page says so), with a control for each."""
    from apt_core.experiments.demo import adapt_to_data

    adapted, notes = adapt_to_data(scenario, data)
    if not notes and int(data.n_items) >= 300:
        return scenario
    for note in notes:
        st.info(note)
    n_items = int(data.n_items)
    c = st.columns(2)
    k = c[0].number_input("K: length of the recommendation list that is measured", 1, max(1, n_items - 1), adapted.k, key=f"{prefix}-k",
                          help=GLOSSARY["HR@K"])
    if isinstance(adapted.targets, str):
        n_targets = c[1].number_input("Number of target items", 1, max(1, n_items // 2), adapted.n_targets, key=f"{prefix}-ntargets",
                                      help=GLOSSARY["target item"])
        adapted = dataclasses.replace(adapted, n_targets=int(n_targets))
    return dataclasses.replace(adapted, k=int(k))


def per_result(result: Any, name: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per result: a live slider revisits the same few results, and building
    their figures and tables again was most of a move's server time.  Kept on the result
    object itself, so it goes when the result does."""
    memo = result.__dict__.setdefault("_views", {})
    if name not in memo:
        memo[name] = build()
    return memo[name]


def as_arrow(frame: pd.DataFrame):
    """``frame`` as an Arrow table (what st.dataframe sends): converted once with :func:`per_result`
    instead of on every rerun."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def results_views(result) -> tuple[pd.DataFrame, pd.DataFrame, object]:  # noqa: D401
    """(numeric table, display table, rank-shift figure) of a scenario result (built once per result)."""
    from apt_core.plots.results import format_results_table, rank_shift_boxplot, rank_shift_frame, results_table

    def build():
        table = results_table(result)
        fig = rank_shift_boxplot(rank_shift_frame(result), title="Rank shift of the target items per training method (paper's Fig. 1)")
        return table, format_results_table(table), fig

    return per_result(result, "results_views", build)


# --- Live controls (classroom mode) ---------------------------------------------------------
# On the sample data the controls snap to apt_core.experiments.grid's values; a background thread fits the
# whole grid once into the artifact cache, after which a slider move is a cache read.


class GridBuilder:
    """One background grid build per base scenario, shared by every session of the server."""

    def __init__(self, scenarios: list, data) -> None:
        self.scenarios = scenarios
        self.data = data
        self.fraction = 0.0
        self.text = "waiting"
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
            self.report = build_grid(self.scenarios, artifact_cache(), progress, data=self.data)
        except CancelledError:
            self.error = "the grid build was stopped"
        except Exception as exc:  # noqa: BLE001 -- shown on the page; live results still fall back to running
            self.error = f"{type(exc).__name__}: {exc}"
        self.done = True


@st.cache_resource(show_spinner=False, max_entries=8)
def _grid_builder(base_json: str, _base, _data, _spec) -> GridBuilder:
    from apt_core.experiments.grid import grid_scenarios

    return GridBuilder(grid_scenarios(_base, _spec), _data)


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
    """The scenario the grid varies (defaults of the Defense page: unpopular targets, 5% ERM)."""
    from apt_core.experiments.pipeline import Scenario

    return Scenario(dataset=cfg["dataset"], data_dir=cfg["data_dir"], attack="average", attack_size=0.03, targets="unpopular",
                    defenses=("apt",), erm_fraction=0.05, seed=cfg["seed"], device=cfg["device"])


def start_grid(cfg: dict) -> GridBuilder:
    base = grid_base(cfg)
    data = load_data(cfg["dataset"], cfg["data_dir"])
    return _grid_builder(scenario_key("grid", base), base, data, live_spec())


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


def remember(kind: str, scenario: Any, result: Any) -> None:
    """Keep the page's last shown result: real data sets show it greyed while a new one is pending."""
    st.session_state[f"_last-{kind}"] = (scenario, result)


def last_shown(kind: str):
    return st.session_state.get(f"_last-{kind}")


def stale_container():
    """A container drawn greyed out (the previous result while the new settings are not run)."""
    st.html("<style>.st-key-stale-result {opacity: 0.45; filter: grayscale(0.6);}</style>")
    return st.container(key="stale-result")


# --- Shareable state: the controls live in the URL ------------------------------------------


def url_state(keys: list[str]) -> None:
    """Before a page's widgets: take each key's value from the URL once per session, and
    register the keys so that app.py writes the current values back into the URL.

    Values travel as JSON (numbers, strings, lists).  A copied link therefore reopens the
    same view in another browser.
    """
    loaded = st.session_state.setdefault("_url_loaded", set())
    registered = st.session_state.setdefault("_url_keys", [])
    # A deep link on a fresh session passes through app.py (ensure_app), whose page switch drops
    # the query: ensure_app keeps a copy of it.
    qp = {**st.session_state.get("_pending_query", {}), **st.query_params.to_dict()}
    for key in keys:
        if key not in registered:
            registered.append(key)
        if key in loaded:
            continue
        loaded.add(key)
        if key in qp:
            try:
                st.session_state[key] = json.loads(qp[key])
            except (ValueError, TypeError):
                pass  # a hand-edited URL: ignore the value, keep the default


def write_url() -> None:
    """After the page ran: the registered keys' current values into the URL (app.py calls it)."""
    wanted = {}
    for key in st.session_state.get("_url_keys", []):
        if key in st.session_state:
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


def presenter() -> bool:
    """Presenter mode: advanced controls hidden, larger text (the sidebar's switch)."""
    return bool(st.session_state.get("presenter", False))


def kept_value(key: str, default: Any) -> Any:
    """The value of a control that presenter mode hides: its last setting, else ``default``.

    Streamlit forgets a widget's value once a run does not draw it; writing the value back
    each run keeps it (and its URL entry), so leaving presenter mode restores the setting.
    """
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]
        return st.session_state[key]
    return default


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


# --- History: runs of every page, with a link back --------------------------------------------

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
