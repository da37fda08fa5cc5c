"""The instrument layer under the ophyd devices: scan geometry and the backend interface.

The ophyd devices in :mod:`hae_bluesky.devices.stem` hold no instrument logic.
Every move and acquisition goes through a :class:`MicroscopeBackend`: the
simulated one reads a recorded spectrum image
(:class:`hae_bluesky.devices.simulated.SimulatedBackend`); a backend for a real
microscope implements the same few blocking methods on top of the control
system of the facility.

Scan geometry convention (used everywhere in this package): pixel
``(row, column)`` of the scan grid has its centre at ``x = column * p``,
``y = row * p`` nm, where ``p`` is the pixel size. The scanned field runs from
the first to the last pixel centre: ``0 <= x <= (nx - 1) p`` and
``0 <= y <= (ny - 1) p``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np
from ophyd.utils import LimitError

__all__ = ["MicroscopeBackend", "OutsideFieldError", "ScanGrid"]

# Positions computed as ``column * pixel_size`` may exceed the last pixel centre
# by a rounding error; this many nm beyond the field still count as inside.
_FIELD_TOLERANCE_NM = 1e-9


class OutsideFieldError(LimitError):
    """A beam position lies outside the scanned field of view.

    A subclass of :class:`ophyd.utils.LimitError` (and so of ``ValueError``),
    raised before the beam moves.
    """


@dataclass(frozen=True)
class ScanGrid:
    """The scan grid of a STEM: its shape and pixel size.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``: number of rows (y) and columns (x).
    pixel_size_nm : float
        Scan step in nm, the same along x and y.

    Notes
    -----
    Pixel ``(row, column)`` is centred at ``(x, y) = (column * p, row * p)`` nm.
    The field of view is the rectangle of pixel centres,
    ``[0, (nx - 1) p] x [0, (ny - 1) p]`` nm.

    Examples
    --------
    >>> grid = ScanGrid((50, 40), 0.5)
    >>> grid.position_of(2, 3)
    (1.5, 1.0)
    >>> grid.nearest_pixel(1.6, 0.9)
    (2, 3)
    """

    shape: tuple[int, int]
    pixel_size_nm: float

    def __post_init__(self) -> None:
        ny, nx = (int(n) for n in self.shape)
        if ny < 1 or nx < 1:
            raise ValueError(f"scan grid needs at least one pixel, got shape {self.shape}")
        if not (math.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0):
            raise ValueError(f"pixel size must be positive (nm), got {self.pixel_size_nm}")
        object.__setattr__(self, "shape", (ny, nx))
        object.__setattr__(self, "pixel_size_nm", float(self.pixel_size_nm))

    @property
    def x_limits(self) -> tuple[float, float]:
        """(low, high) x of the field of view in nm."""
        return 0.0, (self.shape[1] - 1) * self.pixel_size_nm

    @property
    def y_limits(self) -> tuple[float, float]:
        """(low, high) y of the field of view in nm."""
        return 0.0, (self.shape[0] - 1) * self.pixel_size_nm

    def limits(self, axis: str) -> tuple[float, float]:
        """(low, high) of the field of view along ``axis`` ("x" or "y"), in nm."""
        if axis == "x":
            return self.x_limits
        if axis == "y":
            return self.y_limits
        raise ValueError(f"scan axis must be 'x' or 'y', got {axis!r}")

    def position_of(self, row: int, column: int) -> tuple[float, float]:
        """Return the centre ``(x, y)`` in nm of pixel ``(row, column)``."""
        return column * self.pixel_size_nm, row * self.pixel_size_nm

    def nearest_pixel(self, x_nm: float, y_nm: float) -> tuple[int, int]:
        """Return the ``(row, column)`` of the pixel nearest to ``(x, y)`` nm.

        Half-way positions go to the higher index. Positions outside the field
        map to the nearest edge pixel.
        """
        ny, nx = self.shape
        column = math.floor(x_nm / self.pixel_size_nm + 0.5)
        row = math.floor(y_nm / self.pixel_size_nm + 0.5)
        return min(max(row, 0), ny - 1), min(max(column, 0), nx - 1)

    def check_position(self, axis: str, value: float) -> None:
        """Raise unless ``value`` (nm) lies inside the field of view along ``axis``.

        Raises
        ------
        OutsideFieldError
            If the position is not finite or lies outside the field.
        """
        low, high = self.limits(axis)
        if not math.isfinite(value):
            raise OutsideFieldError(f"beam position {axis} = {value} nm is not a finite number")
        if not (low - _FIELD_TOLERANCE_NM <= value <= high + _FIELD_TOLERANCE_NM):
            raise OutsideFieldError(
                f"beam position {axis} = {value:g} nm lies outside the scanned field of view "
                f"{low:g}-{high:g} nm along {axis}; the beam was not moved"
            )


class MicroscopeBackend(abc.ABC):
    """What the ophyd devices need from an instrument.

    Every method blocks until the instrument is done; the devices call them on
    a worker thread and complete their status objects afterwards. Methods
    raise on failure (the device status then fails with that exception).
    Implementations must be safe to call from several threads.
    """

    @property
    @abc.abstractmethod
    def grid(self) -> ScanGrid:
        """The scan grid (shape and pixel size in nm)."""

    @property
    @abc.abstractmethod
    def energy_axis(self) -> np.ndarray:
        """(nE,) energy loss of each spectrometer channel in eV."""

    @property
    def spectrum_dtype(self) -> np.dtype:
        """numpy dtype of the spectra :meth:`acquire_spectrum` returns."""
        return np.dtype("<f8")

    @property
    def image_dtype(self) -> np.dtype:
        """numpy dtype of the images :meth:`acquire_image` returns."""
        return np.dtype("<f8")

    @property
    @abc.abstractmethod
    def beam_position(self) -> tuple[float, float]:
        """The commanded beam position ``(x, y)`` in nm."""

    @abc.abstractmethod
    def move_beam(
        self, *, x_nm: float | None = None, y_nm: float | None = None, settle_time: float = 0.0
    ) -> None:
        """Move the beam and wait ``settle_time`` seconds for the scan to settle.

        An axis given as None keeps its position. Implementations check both
        axes against :attr:`grid` before moving either.
        """

    @abc.abstractmethod
    def acquire_spectrum(self, exposure_time: float) -> np.ndarray:
        """Expose the spectrometer at the beam position for ``exposure_time`` s.

        Returns
        -------
        numpy.ndarray
            (nE,) counts, dtype :attr:`spectrum_dtype`.
        """

    @abc.abstractmethod
    def acquire_image(self, dwell_time: float) -> np.ndarray:
        """Scan the whole grid with ``dwell_time`` s per pixel and return the HAADF image.

        Returns
        -------
        numpy.ndarray
            (ny, nx) image, dtype :attr:`image_dtype`.
        """
