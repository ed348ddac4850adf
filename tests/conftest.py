"""Shared fixtures.  Small data by default; real data from ../shared/data where it matters."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("APT_NUM_THREADS", "1")
# Page tests play the local single user; the safe mode of a served app is tested explicitly.
os.environ.setdefault("APT_LAB_SAFE_MODE", "0")

# Runs record to a history and use an artifact cache by default: keep the tests' own in a
# fresh folder so no test is answered from a user's ~/.cache or leaves files there.
import tempfile  # noqa: E402

import atexit  # noqa: E402
import shutil  # noqa: E402

_TEST_HOME = tempfile.mkdtemp(prefix="apt-lab-tests-")
atexit.register(shutil.rmtree, _TEST_HOME, ignore_errors=True)  # a test run leaves nothing in the temp folder
os.environ["APT_CACHE_DIR"] = os.path.join(_TEST_HOME, "cache")
os.environ["APT_HISTORY_DB"] = os.path.join(_TEST_HOME, "history.sqlite")
os.environ["APT_LAB_UPLOAD_DIR"] = os.path.join(_TEST_HOME, "uploads")  # the dashboard's per-session upload folders

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from apt_core.data.dataset import Interactions, RatingScale  # noqa: E402

torch.set_num_threads(int(os.environ["APT_NUM_THREADS"]))

SHARED_DATA = Path(os.environ.get("APT_TEST_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_data_dir() -> Path:
    """../shared/data (the real data sets); tests that need it skip with a reason when absent."""
    if not (SHARED_DATA / "ml-100k" / "u.data").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set APT_TEST_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def sample_data():
    from apt_core.data import load_dataset

    return load_dataset("sample")


@pytest.fixture(scope="session")
def sample_split(sample_data):
    from apt_core.data import leave_one_out

    return leave_one_out(sample_data, 0)


@pytest.fixture(scope="session")
def ml100k(data_dir):
    from apt_core.data import load_dataset

    return load_dataset("ml-100k", data_dir)


@pytest.fixture(scope="session")
def ml100k_split(ml100k):
    from apt_core.data import leave_one_out

    return leave_one_out(ml100k, 0)


def make_tiny(n_users: int = 40, n_items: int = 30, density: float = 0.3, seed: int = 0) -> Interactions:
    """A tiny random rating matrix on the 1..5 grid (every user and item has ratings)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    users, items = np.nonzero(mask)
    ratings = rng.integers(1, 6, len(users)).astype(np.float32)
    return Interactions(users, items, ratings, n_users, n_items, RatingScale(1, 5, 1))


@pytest.fixture
def tiny() -> Interactions:
    return make_tiny()
