"""User-named outputs never replace what they point to (issue: --export /dev/full replaced the device node)."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from apt_core.storage.outputs import OutputError, write_output


def test_regular_and_missing_files_are_written_whole(tmp_path):
    path = tmp_path / "t.csv"
    write_output(path, b"a\n")
    write_output(path, b"b,c\n")
    assert path.read_bytes() == b"b,c\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_symlink_stays_a_link_and_its_target_gets_the_data(tmp_path):
    target = tmp_path / "real.csv"
    target.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert write_output(link, b"new") == target
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_fifo_reader_gets_the_data_and_the_fifo_stays(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_output(fifo, b"rows\n")
    reader.join(10)
    assert got == [b"rows\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_is_an_error_and_stays_a_device():
    with pytest.raises(OutputError, match="/dev/full: the device is full"):
        write_output("/dev/full", b"x" * 10000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match="it is a folder"):
        write_output(tmp_path, b"x")


def test_history_export_and_poison_out_keep_a_link_a_link(tmp_path):
    # The two commands the reliability review caught replacing what the path pointed to.
    from apt_core.attacks import make_attack
    from apt_core.attacks.io import save_profiles
    from apt_core.data.split import leave_one_out
    from apt_core.data.loaders import load_sample
    from apt_core.storage.history import RunStore

    store = RunStore(tmp_path / "h.sqlite")
    target = tmp_path / "runs.csv"
    target.write_text("old")
    link = tmp_path / "export-link.csv"
    link.symlink_to(target)
    store.export(link)
    assert link.is_symlink() and target.read_text().startswith("run_id")

    split = leave_one_out(load_sample(), seed=0)
    fake = make_attack("random").run(split.train, [1, 2], n_fake_users=3, n_filler=4, random_state=0).profiles
    poison_target = tmp_path / "fake.csv"
    poison_target.write_text("old")
    poison_link = tmp_path / "poison-link.csv"
    poison_link.symlink_to(poison_target)
    save_profiles(fake, poison_link, split.train.scale, split.item_ids)
    assert poison_link.is_symlink() and poison_target.read_text().startswith("user,item_id,rating")
