"""Shared fixtures: the real Cu/ZnO recording and a small synthetic twin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cuzn"


def pytest_configure(config):
    os.environ.setdefault("HAE_DATA_DIR", str(SHARED_DATA))
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def cuzn():
    """The real Cu/ZnO spectrum image, read through the data registry."""
    from hae_bluesky.data import load_dataset

    return load_dataset("cuzn")


@pytest.fixture(scope="session")
def twin():
    """A small SYNTHETIC plasmonic twin (64 x 64 pixels)."""
    from hae_bluesky.data import make_plasmonic_twin

    return make_plasmonic_twin(shape=(64, 64), seed=0)
