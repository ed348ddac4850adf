"""Download-on-demand cache for public data sets (checksummed, atomic)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from apt_core.errors import DataError
from apt_core.storage.paths import default_cache_root


@dataclass(frozen=True)
class RemoteArchive:
    url: str
    md5: str | None  # published checksum where the host publishes one
    folder: str  # folder name inside the cache (and expected under --data-dir)


# The sources themselves (URL, checksum) are in each data set's record,
# :data:`apt_core.data.loaders.DATASETS`.


def cache_dir() -> Path:
    """Where downloads go: ``$APT_CACHE_DIR`` or ``~/.cache/apt_lab``."""
    return default_cache_root()


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(name: str, required_file: str, archive: RemoteArchive | None, timeout: float = 30.0) -> Path:
    """Return a folder holding ``required_file`` for data set ``name``, downloading ``archive`` if needed.

    The archive is downloaded to a temporary file, checked, then unpacked and moved into
    place, so an interrupted download never leaves a half-written data set in the cache.
    """
    if archive is None:
        raise DataError(f"{name} cannot be downloaded: put its files in a folder and pass --data-dir DIR (or set APT_DATA_DIR)")
    target = cache_dir() / archive.folder
    if (target / required_file).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        zip_path = Path(tmp) / "download.zip"
        try:
            with urllib.request.urlopen(archive.url, timeout=timeout) as resp, open(zip_path, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DataError(
                f"could not download {name} from {archive.url} ({getattr(exc, 'reason', exc)}). "
                f"Without network, put the files in a folder and pass --data-dir DIR "
                f"(or set APT_DATA_DIR): expected DIR/{archive.folder}/{required_file}"
            ) from None
        if archive.md5 and _md5(zip_path) != archive.md5:
            raise DataError(f"download of {name} from {archive.url} failed its checksum (md5 {archive.md5}); try again")
        unpack = Path(tmp) / "unpacked"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(unpack)
        found = next((p.parent for p in unpack.rglob(required_file)), None)
        if found is None:
            raise DataError(f"the {name} archive from {archive.url} does not contain {required_file}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(found, target)
    return target
