"""Safe mode of a served dashboard and upload handling (issue 15): nothing exposed, nothing re-parsed."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest_support import ROOT, isolated, page, texts  # noqa: E402,F401 -- isolated: autouse fixture

from apt_core.runtime.serving import RunSlots, check_data_dir, redact, safe_mode_enabled  # noqa: E402

SECRET = "root_password_is_hunter2"

def test_safe_mode_follows_the_server_address():
    assert safe_mode_enabled("0.0.0.0", {}) and safe_mode_enabled("", {}) and safe_mode_enabled(None, {})
    assert safe_mode_enabled("192.168.1.5", {})
    assert not safe_mode_enabled("127.0.0.1", {}) and not safe_mode_enabled("localhost", {}) and not safe_mode_enabled("::1", {})
    assert safe_mode_enabled("127.0.0.1", {"APT_LAB_SAFE_MODE": "1"})
    assert not safe_mode_enabled("0.0.0.0", {"APT_LAB_SAFE_MODE": "off"})


def test_data_folders_only_from_the_allow_list(tmp_path):
    allowed = tmp_path / "data"
    allowed.mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    assert check_data_dir(str(allowed), [allowed.resolve()]) == str(allowed.resolve())
    for other in ("/etc", str(tmp_path), str(tmp_path / "link" / "data" / "..")):
        with pytest.raises(PermissionError):
            check_data_dir(other, [allowed.resolve()])
    assert check_data_dir("", [allowed]) is None


def test_redact_drops_quoted_values():
    message = f"/x/u.data, line 1: user id '{SECRET}' is not an integer"
    assert SECRET not in redact(message) and "line 1" in redact(message)


def test_run_slots_queue_in_order():
    slots = RunSlots(1)
    order, waits = [], []
    release = threading.Event()

    def first():
        with slots.slot():
            order.append("first")
            release.wait(5)

    def second():
        with slots.slot(on_wait=waits.append, poll=0.05):
            order.append("second")

    t1 = threading.Thread(target=first)
    t1.start()
    while slots.running == 0:
        time.sleep(0.01)
    t2 = threading.Thread(target=second)
    t2.start()
    deadline = time.monotonic() + 30
    while not waits and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["first"] and slots.waiting == 1 and waits and waits[0] == 0
    release.set()
    t1.join(5)
    t2.join(5)
    assert order == ["first", "second"] and slots.running == 0 and slots.waiting == 0


def test_a_cancelled_waiter_leaves_the_queue():
    slots = RunSlots(1)

    class Cancelled(Exception):
        pass

    def give_up(ahead):
        raise Cancelled

    with slots.slot():
        with pytest.raises(Cancelled):
            with slots.slot(on_wait=give_up):
                pass
        assert slots.waiting == 0
    with slots.slot():  # the queue still admits
        assert slots.running == 1


def _private_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "private" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(f"{SECRET}\t1\t5\t0\n")
    return folder.parent


def test_served_app_does_not_read_or_echo_arbitrary_folders(tmp_path, monkeypatch):
    private = _private_folder(tmp_path)
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    monkeypatch.delenv("APT_LAB_DATA_DIRS", raising=False)
    monkeypatch.delenv("APT_DATA_DIR", raising=False)
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "cache"))
    at = page("data", dataset="ml-100k", data_dir=str(private)).run()
    assert SECRET not in texts(at)
    # the same folder, once the operator allows it, is read -- and the bad field is not quoted
    monkeypatch.setenv("APT_LAB_DATA_DIRS", str(private))
    at = page("data", dataset="ml-100k", data_dir=str(private)).run()
    assert at.error and "not an integer" in texts(at) and SECRET not in texts(at)


def test_local_app_still_reads_typed_folders(tmp_path, monkeypatch):
    private = _private_folder(tmp_path)
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "0")
    at = page("data", dataset="ml-100k", data_dir=str(private)).run()
    assert "not an integer" in texts(at)


def test_served_history_needs_the_presenter_to_delete(monkeypatch):
    from apt_core.experiments.pipeline import Scenario, run_scenario
    from apt_core.storage.history import RunStore

    RunStore().record(run_scenario(Scenario(epochs=1)), label="test")
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    at = page("history").run()
    assert not at.exception
    assert "hist-del" not in [s.key for s in at.selectbox] and "switched off" in texts(at)
    at = page("history", _presenter=True).run()
    assert "hist-del" in [s.key for s in at.selectbox]


def test_served_heavy_runs_need_the_presenter(monkeypatch):
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    at = page("defense", **{"def-seeds": 3}).run()
    assert not at.exception and "presenter" in texts(at)
    assert not [b for b in at.button if b.key == "run-defense"]


def test_uploads_go_to_a_private_folder_per_session():
    from pages._shared.uploads import UPLOAD_ROOT

    content = (ROOT / "sample_data" / "ratings.csv").read_bytes()
    paths = []
    for _ in range(2):
        at = AppTest.from_string(
            "import streamlit as st\nfrom pages._shared.uploads import save_upload\n"
            "st.session_state['p'] = save_upload('r.csv', st.session_state['content'])\n", default_timeout=120)
        at.session_state["content"] = content
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        paths.append(Path(at.session_state["p"]))
    assert paths[0].parent != paths[1].parent  # two sessions, two folders
    for p in paths:
        assert p.parent.parent == UPLOAD_ROOT and p.parent.name.startswith("session-")
        assert (p.parent.stat().st_mode & 0o077) == 0  # private to the server's user


def test_old_session_folders_are_swept(tmp_path):
    from pages._shared.uploads import sweep_old_uploads

    old, fresh = tmp_path / "session-old", tmp_path / "session-new"
    for f in (old, fresh):
        f.mkdir()
        (f / "x.csv").write_text("1,1,1\n")
    os.utime(old, (time.time() - 10 * 3600, time.time() - 10 * 3600))
    assert sweep_old_uploads(tmp_path, max_age=3600) == 1
    assert not old.exists() and fresh.exists()


def test_an_upload_is_parsed_once(tmp_path, monkeypatch):
    """Reruns (e.g. changing the seed) reuse the parsed upload: keyed by the content hash."""
    import apt_core.data as data_mod
    import pages._shared.uploads as uploads
    from pages._shared.uploads import load_data, save_upload

    monkeypatch.setattr(uploads, "UPLOAD_ROOT", tmp_path)
    calls = []
    real = data_mod.load_csv

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(data_mod, "load_csv", counting)
    import apt_core.data.loaders as loaders

    monkeypatch.setattr(loaders, "load_csv", counting)
    content = (ROOT / "sample_data" / "ratings.csv").read_bytes()
    path = save_upload("r.csv", content, folder=tmp_path / "s")
    for _ in range(3):
        assert save_upload("r.csv", content, folder=tmp_path / "s") == path
    assert load_data(path, None).n_ratings > 0
    assert len(calls) == 1


def test_warnings_reach_the_page(tmp_path, monkeypatch):
    """A run's warnings (here: the cache cannot be written) are shown beside its result."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "file" / "cache"))
    at = page("defense", **{"def-defenses": ["none"]}).run()  # live controls on the sample data: runs with no click
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "cannot be written" in texts(at)


def test_duplicate_rows_are_shown_on_the_data_page(tmp_path):
    from pages._shared.uploads import save_upload

    rows = "user,item,rating\n" + "".join(f"{u},{i},3\n" for u in range(12) for i in range(10)) + "1,1,5\n"
    path = save_upload("dups.csv", rows.encode(), folder=tmp_path)
    at = page("data", dataset="uploaded CSV", uploaded_path=path).run()
    assert "repeat a (user, item) pair" in texts(at)


def test_defense_page_says_when_a_run_was_not_recorded(tmp_path, monkeypatch):
    (tmp_path / "history-is-a-folder").mkdir()
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "history-is-a-folder"))
    # A seed no other test uses: the run is computed (and recorded), not read from the shared cache.
    at = page("defense", **{"def-defenses": ["none"], "seed": 4242}).run()  # live controls: no click
    at.run()
    assert not at.exception and at.dataframe  # the result is shown ...
    assert "not recorded in the history" in texts(at)  # ... and the missing record is reported


def test_history_page_on_a_broken_history_is_one_message(tmp_path, monkeypatch):
    bad = tmp_path / "h.sqlite"
    bad.write_bytes(b"garbage" * 100)
    monkeypatch.setenv("APT_HISTORY_DB", str(bad))
    at = page("history").run()
    assert not at.exception and len(at.error) == 1 and "not a run history" in at.error[0].value


def test_served_sidebar_offers_only_allowed_folders(tmp_path, monkeypatch):
    allowed = tmp_path / "class-data"
    allowed.mkdir()
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    monkeypatch.setenv("APT_LAB_DATA_DIRS", str(allowed))
    monkeypatch.delenv("APT_DATA_DIR", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    assert not at.exception
    assert not [t for t in at.sidebar.text_input if t.key == "data_dir"]  # no typed paths
    folder = [s for s in at.sidebar.selectbox if s.key == "data_dir"][0]
    assert folder.options == ["(none: download or cache)", str(allowed.resolve())] or str(allowed.resolve()) in str(folder.options)
    assert "safe mode is on" in " ".join(c.value for c in at.sidebar.caption)


def test_redact_a_value_with_both_quote_kinds_and_absolute_folders():
    value = f"it's \"{SECRET}\" tail"
    message = f"/srv/class-data/ml-100k/u.data, line 3: rating {value!r} is not a number"
    out = redact(message)
    assert SECRET not in out and "tail" not in out, out
    assert out.startswith("u.data, line 3:") and "/srv" not in out and "class-data" not in out


def test_password_gate_locks_out_guessing():
    from apt_core.runtime.serving import PasswordGate

    now = [0.0]
    gate = PasswordGate(max_failures=3, lockout_s=10.0, clock=lambda: now[0])
    assert not any(gate.check(f"guess{i}", "right") for i in range(3))
    assert gate.locked_for() == pytest.approx(10.0)
    assert not gate.check("right", "right")  # even the right password waits out the lockout
    now[0] = 10.5
    assert gate.check("right", "right") and gate.locked_for() == 0.0
    assert not any(gate.check(f"again{i}", "right") for i in range(3))
    assert gate.locked_for() == pytest.approx(20.0)  # a second lockout lasts twice as long


# ------------------------------------------------ issue 24: a served dashboard no visitor can exhaust


def test_presenter_mode_needs_the_password_when_one_is_set(monkeypatch):
    """Presenter mode hides controls whose values then come from the URL unchecked: on a served
    dashboard with a password it stays off (a link's ?presenter=true too) until the password."""
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    monkeypatch.setenv("APT_LAB_PRESENTER_PASSWORD", "right")

    def app(**state) -> tuple[AppTest, object]:
        # A fresh session per step (AppTest draws app.py's sidebar on the first run only).
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
        at.session_state["presenter"] = True  # what ?presenter=true sets
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        assert not at.exception
        return at, next(w for w in at.get("toggle") if w.key == "presenter")

    at, switch = app()
    assert switch.disabled and switch.value is False
    at, switch = app(_presenter_pw="wrong")
    assert switch.disabled and switch.value is False and "wrong presenter password" in texts(at)
    at, switch = app(_presenter_pw="right")  # checked before the switch is drawn
    assert not switch.disabled and switch.value is True


def test_a_link_value_outside_a_slider_is_reset_with_a_message():
    # /theory?pt-n=40001 outside presenter mode: the slider (max 2000) refused it with
    # "Something went wrong (StreamlitValueAboveMaxError)"; now the link's values are reset, said so.
    at = page("theory", _url_from_link={"pt-n"}, **{"pt-n": 40001, "pt-trials": 0}).run()
    assert not at.exception and not at.error
    assert "A value in the link was refused" in texts(at) and "pt-n" in texts(at)
    assert at.slider(key="pt-n").value == 943


def test_theory_simulation_runs_in_the_queue_within_the_budget(monkeypatch):
    from pages._shared import runs

    entered = []

    class Slots:
        limit = 1

        def slot(self, on_wait=None):
            from contextlib import contextmanager

            @contextmanager
            def held():
                entered.append(True)
                yield
            return held()

    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    monkeypatch.setattr(runs, "run_slots", lambda: Slots())
    small = {"pt-n": 100, "pt-d": 10, "pt-trials": 1}
    at = page("theory", **small).run()
    assert not at.exception and entered, "the simulation ran outside the run queue"
    monkeypatch.setenv("APT_LAB_RUN_SECONDS", "1e-9")
    at = page("theory", **{**small, "pt-nstar": 48}).run()  # not cached: a new setting
    assert "time budget" in texts(at) and "APT_LAB_RUN_SECONDS" in texts(at)
    monkeypatch.setenv("APT_LAB_RUN_MEMORY_GB", "1e-6")
    at = page("theory", **small).run()
    assert "would need about" in texts(at) and "APT_LAB_RUN_MEMORY_GB" in texts(at)


def test_run_budget_and_deadline():
    from apt_core.errors import BudgetError, check_deadline, deadline
    from apt_core.runtime.serving import RunBudget, run_budget
    from apt_core.theory.bounds import PaperParams, simulation_bytes

    assert run_budget({}) == RunBudget()
    assert run_budget({"APT_LAB_RUN_SECONDS": "30", "APT_LAB_RUN_MEMORY_GB": "0.5"}) == RunBudget(30.0, 2**29)
    for bad in ("x", "-1", "nan", "inf", "0"):
        assert run_budget({"APT_LAB_RUN_SECONDS": bad, "APT_LAB_RUN_MEMORY_GB": bad}) == RunBudget()
    check_deadline()  # no deadline: nothing happens
    with deadline(None, "unbounded"):
        check_deadline()
    with deadline(0.0, "the test computation"):
        time.sleep(0.01)
        with pytest.raises(BudgetError, match="the test computation stopped after 0 s"):
            check_deadline()
    check_deadline()  # the block's deadline ends with it
    # The crafted URL's settings (n = 40001, d = 3000) are over the default budget; the sliders' largest are far below.
    assert simulation_bytes(PaperParams(n=40001, d=3000)) > RunBudget().memory_bytes
    assert simulation_bytes(PaperParams(n=2000, d=300, n_star=500)) < RunBudget().memory_bytes / 50


def test_a_served_run_stops_at_the_time_budget(monkeypatch):
    monkeypatch.setenv("APT_LAB_SAFE_MODE", "1")
    monkeypatch.setenv("APT_LAB_RUN_SECONDS", "1e-9")  # past at the first progress update
    at = page("defense", **{"def-defenses": ["none"], "seed": 4243}).run()  # live controls: no click
    assert not at.exception
    assert "stopped after 1e-09 s" in texts(at) and "APT_LAB_RUN_SECONDS" in texts(at)
