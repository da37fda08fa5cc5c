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
        self.haadf = np.asarray(self.haadf)
        self.spectra = np.asarray(self.spectra)
        self.energy_axis = np.asarray(self.energy_axis, dtype=float)
        self.pixel_size_nm = float(self.pixel_size_nm)
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
        steps = np.diff(self.energy_axis)
        if not np.all(np.isfinite(self.energy_axis)) or np.any(steps <= 0):
            raise ValueError("energy axis must be finite and strictly increasing (eV)")
        if not (np.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0):
            raise ValueError(f"pixel size must be positive (nm), got {self.pixel_size_nm}")
        if self.spectra.size and not np.any(np.isfinite(self.spectra)):
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
