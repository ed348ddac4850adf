"""Shared helpers of the dashboard's pages: sidebar settings, cached runs, error guard.

Pages stay thin: widgets -> one ``apt_core`` call (through :func:`run_cached`) -> a figure
from a pure function.  Results are cached with ``st.cache_resource`` keyed by the JSON of
the frozen :class:`~apt_core.experiment.Scenario`, so moving a slider back is instant.
"""
from __future__ import annotations

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

# The named data sets and their labels come from their records (apt_core.data.loaders.DATASETS).
DATASETS = [*_DATASET_RECORDS, "uploaded CSV"]
DATASET_LABELS = {**{name: spec.label for name, spec in _DATASET_RECORDS.items()}, "uploaded CSV": "uploaded CSV"}


def safe_mode() -> bool:
    """Served to a network (see :mod:`apt_core.serving`): restrict folders, deletion and heavy runs."""
    from apt_core.serving import safe_mode_enabled

    try:
        address = st.get_option("server.address")
    except Exception:  # noqa: BLE001 -- no server config (bare script run): decide by the environment
        address = "127.0.0.1"
    return safe_mode_enabled(address)


def presenter_password() -> str | None:
    """``presenter_password`` from ``.streamlit/secrets.toml``, else ``$APT_LAB_PRESENTER_PASSWORD``."""
    from apt_core.serving import PASSWORD_ENV

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
        from apt_core.serving import allowed_data_dirs, check_data_dir

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
        from apt_core.cache import atomic_write_bytes

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
        from apt_core.cache import ArtifactCache

        return ArtifactCache()
    except Exception:  # noqa: BLE001 -- caching is an optimisation, never a reason to fail
        return None


@st.cache_resource(show_spinner=False)
def run_slots():
    """The server's one queue of runs (safe mode): at most ``$APT_LAB_MAX_RUNS`` at once."""
    from apt_core.serving import RunSlots, max_runs

    return RunSlots(max_runs())


def is_heavy(kind: str, scenario: Any) -> bool:
    """Sweeps and runs of several seeds: what one visitor could use to occupy a shared server."""
    seeds = getattr(scenario, "seeds", 1)
    return kind == "sweep" or (isinstance(seeds, int) and seeds > 1)


def explore(scenario: Any, progress: Callable) -> Any:
    """The Attack and Profiles pages' run: the experiments' pipeline for one seed, models kept, through the disk cache."""
    from apt_core.demo import explore_attack

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
    clicked = auto or st.button(label, type="primary", key=f"run-{kind}")
    if not clicked:
        return None
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
        raise
    store.put(key + "#notes", list(notes))  # shown with the result (a cache that cannot be written...)
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
            from apt_core.serving import redact

            if isinstance(exc, DataError):
                message = redact(message)  # field values may be lines of a server file
        st.error(message)
    except Exception as exc:  # noqa: BLE001 -- a dashboard shows every failure as a message
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}" if not safe_mode() else f"Something went wrong ({type(exc).__name__}).")


def download(frame: pd.DataFrame, name: str, label: str = "Download this table (CSV)") -> None:
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=name, mime="text/csv", key=f"dl-{name}")


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
    ok = True
    with st.expander(title, expanded=False):
        st.caption("Every hyper-parameter the method declares (`python -m apt_core params NAME` lists the same). "
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
                    value = col.checkbox(p.name, value=bool(p.default), key=key, help=help_text)
                elif p.choices is not None:
                    options = (["default"] if p.optional else []) + list(p.choices)
                    picked = col.selectbox(p.name, options, index=options.index("default" if p.default is None else p.default), key=key, help=help_text)
                    value = None if picked == "default" else picked
                else:
                    text = col.text_input(p.name, value="" if p.default is None else str(p.default), key=key, help=help_text,
                                          placeholder="default")
                    if not text.strip() or text.strip().lower() == "default":
                        value = p.default
                    else:
                        try:
                            value = p.parse(text, name)
                        except ConfigError as exc:
                            col.error(str(exc))
                            ok = False
                            continue
                if value != p.default:
                    out[f"{name}.{p.name}"] = value
    return out if ok else None


def attack_controls(data, prefix: str = "atk"):
    """Widgets shared by the Attack and Profiles pages; returns the scenario they describe."""
    from apt_core.attacks import ATTACKS, attack_names
    from apt_core.experiment import Scenario

    cfg = settings()
    names = [a for a in attack_names() if a != "none"]
    if not names:
        st.warning("No attack is registered yet in apt_core.attacks.")
        return None
    c = st.columns(5)
    attack = c[0].selectbox("Attack", names, index=names.index("average") if "average" in names else 0, key=f"{prefix}-attack", help="; ".join(f"{n}: {ATTACKS[n].summary}" for n in names))
    size = c[1].slider("Attack size (fake users, share of real users)", 0.005, 0.20, 0.03, 0.005, format="%.3f", key=f"{prefix}-size")
    filler = c[2].number_input("Filler items per fake user (0 = average profile length)", 0, max(1, int(data.n_items) - 10), 0, key=f"{prefix}-filler")
    mode = c[3].selectbox("Target items", ["unpopular", "random", "chosen by title"], key=f"{prefix}-mode")
    targets: str | tuple = mode
    victim = c[4].selectbox(
        "Victim model", ["mf", "lightgcn", "neumf"], key=f"{prefix}-victim",
        format_func={"mf": "MF (the paper's)", "lightgcn": "LightGCN", "neumf": "NeuMF"}.get,
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
    return Scenario(
        dataset=cfg["dataset"], data_dir=cfg["data_dir"], attack=attack, attack_size=float(size),
        filler=int(filler) or None, targets=targets, seed=cfg["seed"], device=cfg["device"], victim=victim, params=params,
    )


def results_views(result) -> tuple[pd.DataFrame, pd.DataFrame, object]:  # noqa: D401
    """(numeric table, display table, rank-shift figure) of a scenario result."""
    from apt_core.plots.results import format_results_table, rank_shift_boxplot, rank_shift_frame, results_table

    table = results_table(result)
    shown = format_results_table(table)
    fig = rank_shift_boxplot(rank_shift_frame(result), title="Rank shift of the target items per training method (paper's Fig. 1)")
    return table, shown, fig
