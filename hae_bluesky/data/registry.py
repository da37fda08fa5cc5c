"""Public demo data sets, fetched with pooch by URL and SHA-256 into a cache folder.

The cache folder is ``$HAE_DATA_DIR`` when that environment variable is set,
otherwise ``hae-bluesky`` under the user's cache directory. Files are kept
flat in that folder under their registry names, so pointing ``HAE_DATA_DIR``
at a folder that already holds a copy uses the copy and downloads nothing.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import pooch
import requests

from hae_bluesky.data.io import load_spectrum_image
from hae_bluesky.data.spectrum_image import SpectrumImage

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DataUnavailableError",
    "Dataset",
    "data_dir",
    "load_dataset",
    "scalarizer_preset",
]

DATA_DIR_VARIABLE = "HAE_DATA_DIR"


class DataUnavailableError(FileNotFoundError):
    """A registered data file is neither in the cache nor downloadable."""


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: its name in the cache, URL and SHA-256."""

    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    """A public spectrum image: the spectrum image file and its HAADF image.

    ``scalarizers`` names physically meaningful scalarizer specs for the data
    set (see :mod:`hae_bluesky.data.scalarizers`); ``default_scalarizer`` is
    the one the demo uses.
    """

    name: str
    description: str
    spectrum_image: DataFile
    haadf: DataFile | None
    reference: str
    scalarizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_scalarizer: str = ""


_EXSPY_DEMOS = "https://github.com/hyperspy/exspy-demos/raw/927d1f21b3b8/EELS/datasets/"

DATASETS: dict[str, Dataset] = {
    "cuzn": Dataset(
        name="cuzn",
        description=(
            "Cu and ZnO nanoparticles on carbon nanotubes: core-loss EELS spectrum image "
            "(50 x 40 pixels, 700-1988 eV) with its HAADF image; JEOL ARM200F at 200 kV, "
            "Gatan GIF Quantum ER"
        ),
        spectrum_image=DataFile(
            "CuZn_EELS_mapping_tutorial.hspy",
            _EXSPY_DEMOS + "CuZn_EELS_mapping_tutorial.hspy",
            "0405fc47a562ec5edad67576ab5c39331fa904b800026c03c897d23345a67c07",
        ),
        haadf=DataFile(
            "CuZn_HAADF.hspy",
            _EXSPY_DEMOS + "CuZn_HAADF.hspy",
            "1b4ad7125c1be0a9c5ad1666950e2ecd95ea17b07405591a4da1623eb26ccbce",
        ),
        reference="hyperspy/exspy-demos at 927d1f21b3b8; doi 10.1016/j.cattod.2019.02.045",
        scalarizers={
            "cu_l23": {"kind": "edge_intensity", "window": [930, 1000],
                       "background_window": [850, 920]},
            "zn_l23": {"kind": "edge_intensity", "window": [1020, 1100],
                       "background_window": [960, 1010]},
        },
        default_scalarizer="cu_l23",
    ),
}


def data_dir() -> Path:
    """Return the cache folder for demo data (``$HAE_DATA_DIR`` or the user cache)."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("hae-bluesky"))


def _fetch(data_file: DataFile, folder: Path) -> Path:
    local = folder / data_file.name
    present = local.is_file()
    if present and pooch.file_hash(str(local)) == data_file.sha256:
        return local
    try:
        return Path(pooch.retrieve(data_file.url, known_hash=f"sha256:{data_file.sha256}",
                                   fname=data_file.name, path=folder, progressbar=False))
    except Exception as error:
        found = (f"the copy of {data_file.name} in the data cache {folder} does not have the "
                 f"registered SHA-256 {data_file.sha256} (incomplete, corrupt or another "
                 "version), and it") if present else (
                 f"{data_file.name} is not in the data cache {folder} and it")
        raise DataUnavailableError(
            f"{found} could not be downloaded from {data_file.url} "
            f"({_reason(error)}). Download it on a machine with network "
            f"access and copy it into that folder, or set {DATA_DIR_VARIABLE} to a folder "
            "that holds it."
        ) from error


def _reason(error: Exception) -> str:
    """One short line for a failed download (network errors nest whole URLs)."""
    if isinstance(error, requests.ConnectionError):
        return "no connection to the server"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_dataset(name: str = "cuzn") -> SpectrumImage:
    """Load a registered public data set, downloading it once into the cache.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` (``"cuzn"``).

    Returns
    -------
    SpectrumImage
        With metadata naming the data set, its source and reference.

    Raises
    ------
    KeyError
        For an unknown name.
    DataUnavailableError
        When a file is neither cached nor downloadable; the message says how
        to provide it.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; registered: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    folder = data_dir()
    spectrum_file = _fetch(dataset.spectrum_image, folder)
    haadf_file = _fetch(dataset.haadf, folder) if dataset.haadf else None
    logger.info("loading data set %s from %s", name, folder)
    return load_spectrum_image(
        spectrum_file,
        haadf_file,
        metadata={"dataset": name, "description": dataset.description,
                  "reference": dataset.reference},
    )


def scalarizer_preset(name: str, dataset: str = "cuzn") -> dict[str, Any]:
    """Return a copy of a named scalarizer spec of a data set (``"cu_l23"``, ...).

    Raises
    ------
    KeyError
        For an unknown data set or preset; the message lists the known ones.
    """
    if dataset not in DATASETS:
        raise KeyError(f"unknown data set {dataset!r}; registered: {', '.join(DATASETS)}")
    presets = DATASETS[dataset].scalarizers
    if name not in presets:
        raise KeyError(f"data set {dataset!r} has no scalarizer preset {name!r}; "
                       f"known: {', '.join(presets) or 'none'}")
    return copy.deepcopy(presets[name])
