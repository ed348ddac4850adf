"""APT Lab dashboard: ``streamlit run app.py``.

Navigation, the shared sidebar (data set, data folder, seed, device badge) and nothing else:
each page lives in ``pages/`` and calls ``apt_core`` for every number it shows.
"""
from __future__ import annotations

import os
import threading

# Before anything imports torch: idle OpenMP workers must not spin on a small shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from apt_core.errors import AptError  # noqa: E402

from pages._shared.grid_panel import start_grid_early  # noqa: E402
from pages._shared.settings import (DATASET_LABELS, DATASETS, kept_value, presenter, presenter_locked,  # noqa: E402
                                     presenter_password, safe_mode, settings)
from pages._shared.uploads import save_upload  # noqa: E402
from pages._shared.url_state import one_entry_per_page, url_state, write_url  # noqa: E402


@st.cache_resource(show_spinner=False)
def _model_code() -> threading.Thread:
    """Import torch and set its threads once per server, in the background: the first paint (this
    sidebar, a page's title and text) waits for neither; a page that needs the model code imports
    it and waits for this import only then."""
    def load() -> None:
        from apt_core.runtime.devices import configure_threads

        configure_threads()

    thread = threading.Thread(target=load, daemon=True, name="apt-model-code")
    thread.start()
    return thread


_model_code()
st.set_page_config(page_title="APT Lab", page_icon=":material/shield:", layout="wide")

# (file in pages/, title, icon); the first is the home page.
PAGE_SPECS = [
    ("overview.py", "Overview", ":material/home:"),
    ("lesson.py", "Lesson", ":material/school:"),
    ("data.py", "Data", ":material/table_chart:"),
    ("attack.py", "Attack", ":material/target:"),
    ("defense.py", "Defense", ":material/shield:"),
    ("sweeps.py", "Sweeps", ":material/show_chart:"),
    ("profiles.py", "Profiles", ":material/group:"),
    ("detection.py", "Detection", ":material/person_search:"),
    ("theory.py", "Theory", ":material/functions:"),
    ("history.py", "History", ":material/history:"),
]
PAGES = {f: st.Page(f"pages/{f}", title=t, icon=i, default=(n == 0)) for n, (f, t, i) in enumerate(PAGE_SPECS)}
nav = st.navigation(list(PAGES.values()))
st.session_state["_via_app"] = True  # pages check it (see pages/_shared/page_guard.ensure_app)
wanted = st.session_state.pop("_wanted_page", None)
if wanted is None and "_pending_query" not in st.session_state:
    st.session_state["_pending_query"] = st.query_params.to_dict()  # this session's first URL (page switches drop it)
if wanted in PAGES:
    st.switch_page(PAGES[wanted])  # a deep link that arrived before navigation existed

st.session_state["_url_keys"] = []  # the page about to run registers its own keys (pages/_shared/url_state.url_state)
url_state(["dataset", "seed", "presenter"])


@st.cache_resource(show_spinner=False)
def _password_gate():
    """The server's one presenter-password gate (a new browser session does not reset its lockout)."""
    from apt_core.runtime.serving import PasswordGate

    return PasswordGate()


def _check_presenter_password() -> None:
    """Check a newly typed presenter password (before the switch it unlocks is drawn).  Each typed
    value is checked once (a rerun re-sends the same text), through the server's one gate, which
    locks out guessing after a few wrong tries."""
    given = st.session_state.get("_presenter_pw")
    if safe_mode() and presenter_password() and given and given != st.session_state.get("_presenter_pw_checked"):
        st.session_state["_presenter_pw_checked"] = given
        st.session_state["_presenter"] = _password_gate().check(given, presenter_password())


with st.sidebar:
    one_entry_per_page()  # the browser's Back returns to the previous page's last view (pages/_shared/url_state.py)
    st.header("APT Lab")
    _check_presenter_password()
    if presenter_locked():
        st.session_state["presenter"] = False  # a URL's ?presenter=true included
    # Streamlit sends a keyed widget's value to the browser only in a run where the script set it:
    # after a page switch the browser redrew the switch at its default (off) while presenter mode,
    # set from the link, stayed on.  Setting it every run keeps the switch showing the mode.
    st.session_state["presenter"] = bool(st.session_state.get("presenter", False))
    st.toggle("Presenter mode", key="presenter", disabled=presenter_locked(),
              help="For a projector: hides advanced controls and enlarges the text."
              + (" This shared server turns it on after the presenter password (below)." if presenter_locked() else ""))
    st.selectbox("Data set", DATASETS, key="dataset", format_func=lambda d: DATASET_LABELS[d])
    if st.session_state.get("dataset") == "uploaded CSV":
        upload = st.file_uploader("Rating file (user,item,rating[,timestamp])", type=["csv", "tsv", "txt", "dat"])
        if upload is not None:
            # Reruns (any widget change) keep the checked file: no re-hash, no re-parse.
            stamp = (upload.file_id, upload.size)
            if st.session_state.get("_upload_stamp") != stamp:
                try:
                    st.session_state["uploaded_path"] = save_upload(upload.name, upload.getvalue())
                    st.session_state["_upload_error"] = None
                except AptError as exc:
                    st.session_state["uploaded_path"] = None
                    st.session_state["_upload_error"] = str(exc)
                except OSError as exc:
                    st.session_state["uploaded_path"] = None
                    st.session_state["_upload_error"] = f"{upload.name[:60]}: cannot be stored ({exc.strerror or exc})"
                st.session_state["_upload_stamp"] = stamp
            if st.session_state.get("_upload_error"):
                st.error(st.session_state["_upload_error"])
            elif st.session_state.get("uploaded_path"):
                st.success(f"{upload.name[:60]} loaded")
                from pages._shared.uploads import load_data

                try:
                    for note in load_data(st.session_state["uploaded_path"], None).warnings:
                        st.warning(note)
                except AptError as exc:
                    st.error(str(exc))
        else:
            st.session_state["_upload_error"] = None  # the file was removed: its error goes with it
            if not st.session_state.get("uploaded_path"):
                st.info("Upload a file; until then the sample data set is used.")
    if safe_mode():
        # Served to a network: only the folders the operator allowed, never a typed path.
        from apt_core.runtime.serving import allowed_data_dirs

        allowed = [str(p) for p in allowed_data_dirs()]
        st.selectbox("Data folder (real data sets)", [""] + allowed, key="data_dir", format_func=lambda p: p or "(none: download or cache)",
                     help="This shared server reads only the folders its operator listed in APT_LAB_DATA_DIRS")
        if presenter_password():
            given = st.text_input("Presenter password", type="password", key="_presenter_pw",
                                  help="unlocks presenter mode, history deletion, sweeps and multi-seed runs")
            if given and not st.session_state.get("_presenter"):
                wait = _password_gate().locked_for()
                st.error(f"too many wrong guesses: try again in {wait:.0f} s" if wait else "wrong presenter password")
        st.caption("Shared server: safe mode is on.")
    else:
        st.text_input("Data folder (real data sets)", value=os.environ.get("APT_DATA_DIR", ""), key="data_dir", help="MovieLens/FilmTrust/Yelp files; defaults to $APT_DATA_DIR")
    if presenter():  # advanced: kept at their last values, named in one line
        st.caption(f"Seed {kept_value('seed', 0)} · device {kept_value('device', 'auto')}")
    else:
        st.number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="seed")
        st.selectbox("Device", ["auto", "cpu", "cuda"], key="device")
    if _model_code().is_alive():
        st.caption("Device: (loading the model code)")
    else:
        from apt_core.runtime.devices import configure_threads, device_label, resolve_device

        configure_threads()
        try:
            badge = device_label(resolve_device(st.session_state.get("device", "auto")))
            st.caption(f"Device: **{badge}**")
        except AptError as exc:
            st.error(str(exc))

if st.session_state.get("dataset") == "uploaded CSV" and st.session_state.get("_upload_error"):
    # A bad upload: say what to fix here, and show no page (no earlier results, no silent sample data).
    st.error("The uploaded rating file cannot be used: " + st.session_state["_upload_error"])
    st.info("Fix the file (one rating per line: user, item, rating and optionally a timestamp, separated by commas or tabs) "
            "and upload it again, or choose another data set in the sidebar.")
    write_url()
    st.stop()
# One screen at 1280x720 (a projector): less empty space above the title and beside the page, so that
# each page's main figure and the controls that move it fit together (tests/test_browser.py measures it).
st.html("<style>[data-testid='stMainBlockContainer'] {padding-top: 2.6rem; padding-bottom: 3rem; padding-left: 2rem; padding-right: 2rem;}"
        " [data-testid='stMainBlockContainer'] h1 {padding-top: 0; padding-bottom: 0.25rem;}</style>")
if presenter():
    st.html("<style>html {font-size: 20px;} [data-testid='stSidebar'] {font-size: 17px;}</style>")
# A first visit to any page starts the live controls' precomputation (a browser session; in the background).
start_grid_early(settings(), nav.title)
nav.run()
write_url()  # the controls' values into the address bar: a copied link reopens this view
