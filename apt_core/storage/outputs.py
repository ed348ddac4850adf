"""Writing a file a user named (``--out``, ``--export``): one rule for every command.

- A missing path or a regular file: written to a temporary file beside it, then renamed onto
  it (a crash never leaves half a table where a whole one was); missing folders are made.
- A symbolic link: followed to its final target, and that target gets the same rule; the link
  itself stays a link (renaming onto the link's own name would have replaced it by a file).
- A FIFO or a character device (``/dev/stdout``, a named pipe a reader waits on): written in
  place as a stream, never replaced (a rename would swap the pipe or device node for a file).
  A device that refuses the data (``/dev/full``) is an error naming it.
- Anything else (a folder, a socket, a block device): refused with a message naming it.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from apt_core.errors import AptError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; exported tables should be readable like any written file.
        # (Not via os.umask: reading it means setting it, which races with other threads.)
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class OutputError(AptError):
    """A user-named output could not be written; the message names the path and why."""


_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISSOCK: "a socket", stat.S_ISBLK: "a block device"}


def _kind(mode: int) -> str:
    for test, name in _KINDS.items():
        if test(mode):
            return name
    return "not a regular file"


def write_output(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to the user-named ``path`` by the module's rule; return the path written."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        if mode is None or stat.S_ISREG(mode):
            atomic_write_bytes(target, data)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            with open(target, "wb") as fh:  # a stream: written in place, never renamed over
                fh.write(data)
                fh.flush()
        else:
            raise OutputError(f"refusing to write {path}: it is {_kind(mode)}, not a file")
    except OutputError:
        raise
    except OSError as exc:
        reason = "the device is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise OutputError(f"cannot write {path}: {reason}") from None
    return target
