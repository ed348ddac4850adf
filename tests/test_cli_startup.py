"""Start-up: --help and the commands that only read files never import torch (tested by import, not by time)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from proc_support import import_probe

from apt_core.cli import build_parser

PROBE = import_probe("torch")


@pytest.mark.parametrize("argv", [["--help"], ["history", "--limit", "2"], ["cache"], ["data", "--dataset", "sample"], ["bogus"]])
def test_light_commands_never_import_torch(argv, tmp_path):
    env = {"APT_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=300, env=env)
    assert done.stderr.rstrip().endswith("TORCH=False"), done.stderr[-2000:]


def test_params_reads_the_kept_declarations_without_torch(tmp_path):
    """The first ``params`` after an edit reads the registries (torch) and keeps their declarations;
    the next ones print the same from the copy without importing torch."""
    env = {"APT_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    runs = [subprocess.run([sys.executable, "-c", PROBE, "params", *extra], capture_output=True, text=True, timeout=300, env=env)
            for extra in ([], [], ["apt", "--json"])]
    assert [r.stderr.rstrip().endswith("TORCH=False") for r in runs[1:]] == [True, True], runs[1].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and "apt (defense)" in runs[1].stdout
    assert '"r_plus"' in runs[2].stdout
    assert len(list((tmp_path / "declared").glob("*.json"))) == 1


def test_a_kept_declaration_belongs_to_one_source(tmp_path):
    from apt_core.experiments.declared import source_digest

    (tmp_path / "a.py").write_text("x = 1\n")
    before = source_digest(tmp_path)
    assert source_digest(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != before


def test_a_training_command_still_gets_every_argument():
    args = build_parser(["run", "--attack", "average"]).parse_args(["run", "--attack", "average", "--defense", "apt"])
    assert args.attack == "average" and args.defense == ("apt",) and callable(args.func)


def test_the_full_parser_builds_every_subcommand():
    parser = build_parser()
    for argv in (["run"], ["detect"], ["poison", "--out", "x.csv"], ["params"], ["reproduce"], ["sweep", "--values", "1"],
                 ["history"], ["cache"], ["bench"], ["data"]):
        assert callable(parser.parse_args(argv).func)
