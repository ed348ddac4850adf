"""The reliability review's small cases: each gets a clear answer, never a crash or a silent shift."""
from __future__ import annotations

import subprocess
import sys

import pytest

from apt_core.cli import main
from apt_core.data.loaders import load_csv
from apt_core.errors import AptWarning, DataError


@pytest.mark.parametrize("limit", ["0", "-3", "99999999999999999999999", "ten"])
def test_history_limit_is_bounded(limit, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "--history-db", str(tmp_path / "h.sqlite"), "--limit", limit])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--limit" in err and ("outside 1..1000000" in err or "not a whole number" in err)


def test_history_show_refuses_what_is_no_run_id_and_echoes_little():
    # Through a real process: the argument holds a byte that is not UTF-8 (surrogate-escaped).
    done = subprocess.run([sys.executable, "-m", "apt_core", "history", "--show", b"\xff".decode("utf-8", "surrogateescape")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not a run id" in done.stderr and "Traceback" not in done.stderr
    long = "a" * 100_000
    done = subprocess.run([sys.executable, "-m", "apt_core", "history", "--show", long], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "(100000 characters)" in done.stderr and len(done.stderr) < 1000


def test_unknown_run_id_names_it_briefly(capsys, tmp_path):
    assert main(["history", "--history-db", str(tmp_path / "h.sqlite"), "--show", "20261201-093015-1a2b3c4d"]) == 2
    assert "no run with id '20261201-093015-1a2b3c4d'" in capsys.readouterr().err


def test_string_item_ids_reach_targets(tmp_path):
    from apt_core.cli_args import _targets_arg

    assert _targets_arg("film-3,7") == ("film-3", 7)
    with pytest.raises(Exception, match="not an item id"):
        _targets_arg("a\x00b")


def test_nul_and_overlong_text_ids_are_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\nu1,a\x00b,3\nu2,c,4\n")
    with pytest.raises(DataError, match=r"line 2: item id 'a\\x00b' is not a usable id"):
        load_csv(path)
    path.write_text("user,item,rating\nu1," + "x" * 300 + ",3\nu2,c,4\n")
    with pytest.raises(DataError, match="line 2: item id .* at most 200 characters"):
        load_csv(path)


@pytest.mark.parametrize("rows, line", [(["# my ratings", "1,2,3", "2,2,4"], 1), (["user,item,rating", "1,2,3", "  # note", "2,2,4"], 3)])
def test_a_comment_line_is_named_as_one(tmp_path, rows, line):
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"line {line}: a comment line"):
        load_csv(path)


def test_any_user_without_a_test_rating_is_said(tmp_path):
    from apt_core.data.split import leave_one_out
    from apt_core.experiments.preparation import check_split_usable

    rows = [f"{u},{i},{1 + (u + i) % 5}" for u in range(10) for i in range(6)] + ["99,1,4"]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    data = load_csv(path)
    with pytest.warns(AptWarning, match="1 of 11 users have a single rating"):
        check_split_usable(data, leave_one_out(data, 0))


def test_a_poison_file_for_other_targets_is_warned_about(tmp_path):
    from apt_core.experiments.pipeline import Scenario, run_scenario

    poison = tmp_path / "fake.csv"
    # Items 10 and 11 at the maximum; the run's targets are other items.
    poison.write_text("user,item_id,rating\n" + "".join(f"{u},10,5\n{u},11,5\n{u},12,3\n" for u in range(6)))
    scenario = Scenario(dataset="sample", poison_file=str(poison), targets=(10, 20), n_targets=2, epochs=1)
    with pytest.warns(AptWarning, match=r"fake\.csv: no fake user rates target\(s\) 20 at the scale maximum"):
        run_scenario(scenario)


@pytest.mark.parametrize("value, expected", [(40001, 2000), ("700", 700), (-5, 100), ("nan", 943), ("x", 943),
                                             (float("inf"), 943), (150.6, 151), (None, 943)])
def test_clamp_number_keeps_unchecked_values_in_range(value, expected):
    from apt_core.params import clamp_number

    assert clamp_number(value, 943, 100, 2000) == expected
