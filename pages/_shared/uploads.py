"""Rating files: an uploaded file checked and kept in this browser session's private folder,
and every data set (named or uploaded) loaded once per server."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import streamlit as st

from apt_core.errors import AptError


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


def shown_name(data) -> str:
    """The data set's name for titles and file names: an upload by its own file name (the stored copy's
    name adds a content hash: "good-3de9c4fa02d9405d" showed in chart titles), never a server path."""
    path = st.session_state.get("uploaded_path")
    if st.session_state.get("dataset") == "uploaded CSV" and path:
        return re.sub(r"-[0-9a-f]{16}$", "", Path(path).stem) or "upload"
    return data.name


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
