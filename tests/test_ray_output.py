"""Ray never writes on stdout (``--json`` stays parseable) and an unreachable address fails in seconds."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from apt_core.experiments.engine import EngineError, check_reachable


def test_writes_to_descriptor_1_go_to_stderr_inside_the_block():
    code = (
        "import os, subprocess, sys\n"
        "from apt_core.experiments.engine import stdout_to_stderr\n"
        "print('before', flush=True)\n"
        "with stdout_to_stderr():\n"
        "    os.write(1, b'(raylet) A worker died\\n')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"child noise\")'])\n"
        "    print('python noise')\n"
        "print('{\"json\": 1}', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["before", '{"json": 1}']
    assert "A worker died" in done.stderr and "child noise" in done.stderr and "python noise" in done.stderr


def test_an_address_nobody_listens_on_fails_fast_and_names_it():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(EngineError, match=rf"cannot reach the Ray cluster at '127.0.0.1:{port}'"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("address", ["nonsense", "host:port", "ray://:x"])
def test_a_malformed_address_is_a_clear_error(address):
    with pytest.raises(EngineError, match="expected HOST:PORT"):
        check_reachable(address)


def test_a_listening_address_passes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(f"ray://127.0.0.1:{s.getsockname()[1]}")
