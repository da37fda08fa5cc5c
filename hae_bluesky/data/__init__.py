"""Spectrum images (load, fetch, validate), patches and scalarizers."""

from hae_bluesky.data.io import load_hae_npy, load_spectrum_image, read_signals
from hae_bluesky.data.patches import Patches, extract_patches
from hae_bluesky.data.registry import (
    DATASETS,
    DataUnavailableError,
    data_dir,
    load_dataset,
    scalarizer_preset,
)
from hae_bluesky.data.scalarizers import Scalarizer, scalarizer_from_spec
from hae_bluesky.data.spectrum_image import SpectrumImage
from hae_bluesky.data.twin import make_plasmonic_twin

__all__ = [
    "DATASETS",
    "DataUnavailableError",
    "Patches",
    "Scalarizer",
    "SpectrumImage",
    "data_dir",
    "extract_patches",
    "load_dataset",
    "load_hae_npy",
    "load_spectrum_image",
    "make_plasmonic_twin",
    "read_signals",
    "scalarizer_from_spec",
    "scalarizer_preset",
]
