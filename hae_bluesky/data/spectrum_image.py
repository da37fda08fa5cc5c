"""The spectrum image record: a HAADF image and an EELS spectrum at every pixel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SpectrumImage"]


@dataclass
class SpectrumImage:
    """A recorded STEM-EELS spectrum image on one scan grid.

    Attributes
    ----------
    haadf : numpy.ndarray
        (ny, nx) HAADF image ``S(x, y)``.
    spectra : numpy.ndarray
        (ny, nx, nE) spectrum image ``A(x, y, E)`` in counts.
    energy_axis : numpy.ndarray
        (nE,) energy loss of each channel in eV, strictly increasing.
    pixel_size_nm : float
        Scan step in nm (the same along x and y).
    metadata : dict
        Free, JSON-able metadata (source, instrument, whether the HAADF image
        was derived, whether the data are synthetic, ...).

    Raises
    ------
    ValueError
        When shapes disagree, the energy axis is not strictly increasing, the
        pixel size is not positive, or the spectra are NaN everywhere.
    """

    haadf: np.ndarray
    spectra: np.ndarray
    energy_axis: np.ndarray
    pixel_size_nm: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.haadf = _real_array(self.haadf, "HAADF image")
        self.spectra = _real_array(self.spectra, "spectra")
        self.energy_axis = _real_array(self.energy_axis, "energy axis").astype(float)
        try:
            self.pixel_size_nm = float(self.pixel_size_nm)
        except (TypeError, ValueError):
            raise ValueError(f"pixel size must be a positive number of nm, got "
                             f"{self.pixel_size_nm!r}") from None
        self.metadata = dict(self.metadata or {})
        self._validate()

    def _validate(self) -> None:
        if self.haadf.ndim != 2:
            raise ValueError(f"HAADF image must be 2-D (ny, nx), got shape {self.haadf.shape}")
        if self.spectra.ndim != 3:
            raise ValueError(
                f"spectra must be 3-D (ny, nx, nE), got shape {self.spectra.shape}"
            )
        if self.spectra.shape[:2] != self.haadf.shape:
            raise ValueError(
                f"spectrum image grid {self.spectra.shape[:2]} (ny, nx) does not match "
                f"the HAADF image {self.haadf.shape}"
            )
        if self.energy_axis.ndim != 1 or self.energy_axis.size != self.spectra.shape[2]:
            raise ValueError(
                f"energy axis has shape {self.energy_axis.shape} but the spectra have "
                f"{self.spectra.shape[2]} channels"
            )
        if 0 in self.spectra.shape:
            raise ValueError(f"spectrum image of shape {self.spectra.shape} (ny, nx, nE) is "
                             "empty: nothing to measure")
        if not np.all(np.isfinite(self.energy_axis)):
            raise ValueError("energy axis must be finite (eV); it holds NaN or inf")
        steps = np.diff(self.energy_axis)
        if np.any(steps <= 0):
            channel = int(np.argmax(steps <= 0)) + 1
            raise ValueError(
                f"energy axis must be strictly increasing (eV): channel {channel} is at "
                f"{self.energy_axis[channel]:g} eV after {self.energy_axis[channel - 1]:g} eV; "
                "sort or flip the spectra with their axis"
            )
        if not (np.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0):
            raise ValueError(f"pixel size must be positive (nm), got {self.pixel_size_nm}")
        if not np.any(np.isfinite(self.spectra)):
            raise ValueError("spectra are NaN or inf everywhere: nothing to measure")
        if not np.any(np.isfinite(self.haadf)):
            raise ValueError("HAADF image is NaN or inf everywhere")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(ny, nx, nE)."""
        return self.spectra.shape  # type: ignore[return-value]

    @property
    def energy_range(self) -> tuple[float, float]:
        """(first, last) channel energy in eV."""
        return float(self.energy_axis[0]), float(self.energy_axis[-1])

    @property
    def is_synthetic(self) -> bool:
        """True for generated data (never to be presented as a measurement)."""
        return bool(self.metadata.get("synthetic", False))

    def spectrum_at(self, row: int, column: int) -> np.ndarray:
        """Return the recorded spectrum at pixel ``(row, column)``.

        Raises
        ------
        ValueError
            If the pixel lies off the image.
        """
        ny, nx = self.haadf.shape
        if not (0 <= row < ny and 0 <= column < nx):
            raise ValueError(
                f"pixel (row={row}, column={column}) lies off the {ny} x {nx} scan grid"
            )
        return self.spectra[row, column]


def _real_array(value: Any, what: str) -> np.ndarray:
    """Return ``value`` as an array of real numbers, or raise naming ``what``."""
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise ValueError(f"{what} is not a regular array of numbers ({error})") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{what} must hold real numbers, got an array of dtype "
                         f"{array.dtype}")
    return array
