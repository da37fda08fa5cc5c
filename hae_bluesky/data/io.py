"""Load spectrum images from microscope files (RosettaSciIO) and hAE ``.npy`` files."""

from __future__ import annotations

import logging
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import rsciio

from hae_bluesky.data.spectrum_image import SpectrumImage

logger = logging.getLogger(__name__)

__all__ = ["load_hae_npy", "load_spectrum_image", "read_signals"]

_ENERGY_UNITS = {"ev", "kev"}


def _reader_for(path: Path):
    extension = path.suffix.lstrip(".")
    for plugin in rsciio.IO_PLUGINS:
        if extension in plugin["file_extensions"] and plugin.get("api"):
            return import_module(plugin["api"]).file_reader
    raise ValueError(
        f"no RosettaSciIO reader knows the extension {path.suffix!r} of {path}; "
        "convert the file to .hspy, .dm3/.dm4 or .emd"
    )


def read_signals(path: str | Path) -> list[dict[str, Any]]:
    """Read every signal in a microscope file with RosettaSciIO.

    Parameters
    ----------
    path : str or Path
        Any file RosettaSciIO reads (hspy, dm3, dm4, emd, ...).

    Returns
    -------
    list of dict
        RosettaSciIO signal dictionaries (``data``, ``axes``, ``metadata``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    reader = _reader_for(path)
    try:
        return reader(str(path))
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a {path.suffix} file ({type(error).__name__}: "
            f"{error}); check that it is complete (not truncated by a copy) and of that "
            "format"
        ) from error


def _axis_role(axis: dict[str, Any]) -> str:
    name = str(axis.get("name", "")).strip().lower()
    units = str(axis.get("units", "")).strip().lower()
    if units in _ENERGY_UNITS or "energy" in name:
        return "energy"
    if name in ("x", "y"):
        return name
    return ""


def _spectrum_cube(signal: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """Return spectra ordered (y, x, E), the energy axis in eV, and pixel size in nm."""
    data, axes = np.asarray(signal["data"]), signal["axes"]
    if data.ndim != 3 or len(axes) != 3:
        raise ValueError(
            f"expected a spectrum image with 3 axes (y, x, energy), got data of shape "
            f"{data.shape}"
        )
    roles = [_axis_role(axis) for axis in axes]
    if roles.count("energy") != 1:
        signal_axes = [i for i, axis in enumerate(axes) if not axis.get("navigate", True)]
        if len(signal_axes) != 1:
            raise ValueError(f"cannot tell which axis is energy among {axes}")
        roles = ["" if role == "energy" else role for role in roles]
        roles[signal_axes[0]] = "energy"
    spatial = [i for i, role in enumerate(roles) if role != "energy"]
    if {roles[i] for i in spatial} != {"x", "y"}:
        # Unnamed spatial axes keep the file's order: the slower one is y.
        roles[spatial[0]], roles[spatial[1]] = "y", "x"
    order = [roles.index("y"), roles.index("x"), roles.index("energy")]

    energy = axes[order[2]]
    scale = float(energy.get("scale", 1.0))
    energy_axis = float(energy.get("offset", 0.0)) + scale * np.arange(data.shape[order[2]])
    if str(energy.get("units", "eV")).strip().lower() == "kev":
        energy_axis = energy_axis * 1000.0
    pixel_size_nm = _length_in_nm(axes[order[1]])
    return np.transpose(data, order), energy_axis, pixel_size_nm


def _length_in_nm(axis: dict[str, Any]) -> float:
    factors = {"nm": 1.0, "µm": 1e3, "um": 1e3, "å": 0.1, "a": 0.1, "pm": 1e-3}
    units = str(axis.get("units", "nm")).strip().lower()
    if units not in factors:
        logger.warning("spatial axis unit %r is not a length unit; taking it as nm", units)
    return float(axis.get("scale", 1.0)) * factors.get(units, 1.0)


def _image(signal: dict[str, Any]) -> np.ndarray:
    data, axes = np.asarray(signal["data"]), signal["axes"]
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D HAADF image, got data of shape {data.shape}")
    names = [str(axis.get("name", "")).strip().lower() for axis in axes]
    if names == ["x", "y"]:
        data = data.T
    return data


def _title(signal: dict[str, Any]) -> str:
    return str(signal.get("metadata", {}).get("General", {}).get("title", ""))


def load_spectrum_image(
    path: str | Path,
    haadf_path: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
) -> SpectrumImage:
    """Load a spectrum image, and optionally its HAADF image, from microscope files.

    Axes are put in the order (y, x, energy) from the files' axis metadata,
    whatever order the reader returns (the DigitalMicrograph reader, for one,
    can put energy first). Energies are in eV and the pixel size in nm.

    Parameters
    ----------
    path : str or Path
        File holding the spectrum image (any format RosettaSciIO reads).
    haadf_path : str or Path, optional
        File holding the HAADF image recorded on the same grid. Without it,
        the image is derived as the total counts of each spectrum, and the
        metadata says so (``haadf_derived: True``).
    metadata : dict, optional
        Extra metadata to store with the record.

    Returns
    -------
    SpectrumImage

    Raises
    ------
    ValueError
        When the file holds no 3-D spectrum image or the HAADF grid differs.
    """
    signals = read_signals(path)
    cubes = [signal for signal in signals if np.ndim(signal["data"]) == 3]
    if not cubes:
        raise ValueError(
            f"{path} holds no spectrum image (3-D signal); found shapes "
            f"{[np.shape(signal['data']) for signal in signals]}"
        )
    spectra, energy_axis, pixel_size_nm = _spectrum_cube(cubes[0])

    info: dict[str, Any] = {"source": str(path), "title": _title(cubes[0]),
                            "synthetic": False}
    if haadf_path is not None:
        images = [signal for signal in read_signals(haadf_path)
                  if np.ndim(signal["data"]) == 2]
        if not images:
            raise ValueError(f"{haadf_path} holds no 2-D HAADF image")
        haadf = _image(images[0])
        if haadf.shape != spectra.shape[:2]:
            raise ValueError(
                f"HAADF image {haadf.shape} in {haadf_path} is not on the spectrum image "
                f"grid {spectra.shape[:2]} (ny, nx) of {path}"
            )
        info.update(haadf_source=str(haadf_path), haadf_derived=False)
    else:
        haadf = np.nansum(spectra, axis=2, dtype=float)
        info["haadf_derived"] = True
        logger.info("no HAADF image given for %s: using total counts per pixel", path)
    info.update(metadata or {})
    return SpectrumImage(haadf, spectra, energy_axis, pixel_size_nm, info)


def load_hae_npy(path: str | Path, metadata: dict[str, Any] | None = None) -> SpectrumImage:
    """Load the dictionary ``.npy`` layout of the published hAE scripts.

    The file holds a pickled dict with keys ``image`` (ny, nx),
    ``spectrum image`` (ny, nx, nE), ``energy axis`` (nE,) in eV and
    ``scale`` (pixel size in nm). Loading it unpickles Python objects: open
    only files you trust.

    Raises
    ------
    ValueError
        When the file is not such a dict or a key is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    keys = ("image", "spectrum image", "energy axis", "scale")
    try:
        content = np.load(path, allow_pickle=True)
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a .npy file ({type(error).__name__}: {error}); "
            "check that it is complete (not truncated by a copy)"
        ) from error
    if not isinstance(content, np.ndarray) or content.dtype != object or content.shape != ():
        raise ValueError(f"{path} is not a dictionary .npy file of the hAE layout (a dict "
                         f"with the keys {list(keys)})")
    content = content.item()
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a {type(content).__name__}, not the dict of the hAE "
                         f"layout with the keys {list(keys)}")
    missing = [key for key in keys if key not in content]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}; expected {list(keys)}")
    info = {"source": str(path), "synthetic": False, "haadf_derived": False}
    info.update(metadata or {})
    try:
        return SpectrumImage(content["image"], content["spectrum image"],
                             content["energy axis"], content["scale"], info)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
