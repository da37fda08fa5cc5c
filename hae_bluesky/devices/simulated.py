"""A simulated STEM-EELS microscope that replays a recorded spectrum image.

:class:`SimulatedBackend` implements
:class:`~hae_bluesky.devices.backend.MicroscopeBackend` from a
:class:`~hae_bluesky.data.SpectrumImage`; :class:`SimulatedMicroscope` builds
the three ophyd devices (``scan``, ``haadf``, ``eels``) on one shared backend.

The model, with every option off, replays the recording exactly. Options:

- **nearest pixel**: the beam lands on the recorded pixel nearest to its
  (drifted) position, ``(row, column) = round((y + dy) / p, (x + dx) / p)``,
  clipped to the grid. There is no interpolation between pixels.
- **exposure**: the expected spectrum is
  ``lambda(E) = A(x, y, E) * (t / t_rec) * exp(-k D(x, y))`` for exposure ``t``,
  recording exposure ``t_rec``, damage rate ``k`` (1/s) and dose ``D`` (s).
- **noise**: with ``noise=True`` the spectrum is a Poisson draw with mean
  ``max(lambda, 0)`` from a generator seeded by ``seed``; otherwise it is
  ``lambda`` itself.
- **clock**: a simulated instrument clock advances by every exposure, settle
  time and image scan time (``ny * nx * dwell_time``). With
  ``real_time=True`` the backend also sleeps for those durations.
- **drift**: the beam moves off its commanded position by
  ``(dx, dy) = drift_nm_per_s * clock * (cos theta, sin theta)``, a constant
  velocity whose direction ``theta`` is drawn from ``seed``. The commanded
  position (the positioner readback) does not show the drift; the data do.
- **dose damage**: every exposure adds its duration to the dose ``D`` of the
  pixel it was measured at, every HAADF scan adds ``dwell_time`` to every
  pixel. Intensity falls as ``exp(-k D)`` with ``D`` the dose received *before*
  the acquisition, so the first reading at a fresh pixel is undamaged.
- **NaN spectra**: spectra at chosen pixels come back as all-NaN, to rehearse
  a detector glitch.

The HAADF image is ``S(x, y) * exp(-k D(x, y))`` sampled at the drifted grid
(no noise).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from hae_bluesky.data.spectrum_image import SpectrumImage
from hae_bluesky.devices.backend import MicroscopeBackend, ScanGrid
from hae_bluesky.devices.stem import EelsSpectrometer, HaadfDetector, StemScan

__all__ = ["SimulatedBackend", "SimulatedMicroscope"]

logger = logging.getLogger(__name__)

#: Metadata key of a spectrum image that gives its exposure per spectrum in s.
RECORDING_EXPOSURE_KEY = "exposure_time_s"


class SimulatedBackend(MicroscopeBackend):
    """Replays a recorded spectrum image as if it were a microscope.

    See the module docstring for the model (nearest pixel, exposure scaling,
    Poisson noise, clock, drift, dose damage, NaN spectra).

    Parameters
    ----------
    spectrum_image : SpectrumImage
        The recording: HAADF image, spectra, energy axis (eV), pixel size (nm).
    seed : int, optional
        Seed of the noise and of the drift direction. Noise and drift use
        independent streams, so switching one does not change the other.
    noise : bool
        Poisson noise on spectra.
    recording_exposure_time : float, optional
        Exposure of one recorded spectrum in s. Default:
        ``spectrum_image.metadata["exposure_time_s"]`` when present, else
        1.0 s (exposure times are then relative to the recording).
    real_time : bool
        Sleep for exposures, settle times and image scans.
    drift_nm_per_s : float
        Drift speed of the beam in nm per second of instrument clock (>= 0).
    damage_rate : float
        Dose damage rate ``k`` in 1/s (>= 0).
    nan_pixels : iterable of (row, column)
        Pixels whose spectra come back as all-NaN.
    """

    def __init__(
        self,
        spectrum_image: SpectrumImage,
        *,
        seed: int | None = None,
        noise: bool = False,
        recording_exposure_time: float | None = None,
        real_time: bool = False,
        drift_nm_per_s: float = 0.0,
        damage_rate: float = 0.0,
        nan_pixels: Iterable[tuple[int, int]] = (),
    ) -> None:
        what = "recording exposure time"
        if recording_exposure_time is None:
            what = f"recording exposure time (metadata {RECORDING_EXPOSURE_KEY!r})"
            recording_exposure_time = spectrum_image.metadata.get(RECORDING_EXPOSURE_KEY, 1.0)
        _require_positive(what, recording_exposure_time, "s")
        _require_non_negative("drift speed", drift_nm_per_s, "nm/s")
        _require_non_negative("damage rate", damage_rate, "1/s")

        self.spectrum_image = spectrum_image
        self.seed = seed
        self.noise = bool(noise)
        self.recording_exposure_time = float(recording_exposure_time)
        self.real_time = bool(real_time)
        self.drift_nm_per_s = float(drift_nm_per_s)
        self.damage_rate = float(damage_rate)

        self._grid = ScanGrid(spectrum_image.haadf.shape, spectrum_image.pixel_size_nm)
        self._energy_axis = np.array(spectrum_image.energy_axis, dtype="<f8")
        self._energy_axis.flags.writeable = False

        noise_seed, drift_seed = np.random.SeedSequence(seed).spawn(2)
        self._noise_rng = np.random.default_rng(noise_seed)
        theta = np.random.default_rng(drift_seed).uniform(0.0, 2.0 * math.pi)
        self.drift_direction = (math.cos(theta), math.sin(theta))

        self._lock = threading.RLock()
        self._beam = (0.0, 0.0)
        self._clock_s = 0.0
        self._dose_s = np.zeros(self._grid.shape)
        self._nan_pixels: set[tuple[int, int]] = set()
        self.last_pixel: tuple[int, int] | None = None
        self.inject_nan_spectra(nan_pixels)

    # -- MicroscopeBackend -------------------------------------------------

    @property
    def grid(self) -> ScanGrid:
        """Scan grid of the recording."""
        return self._grid

    @property
    def energy_axis(self) -> np.ndarray:
        """(nE,) energy axis of the recording in eV (read-only)."""
        return self._energy_axis

    @property
    def beam_position(self) -> tuple[float, float]:
        """Commanded beam position ``(x, y)`` in nm (without drift)."""
        with self._lock:
            return self._beam

    def move_beam(
        self, *, x_nm: float | None = None, y_nm: float | None = None, settle_time: float = 0.0
    ) -> None:
        """Move the beam (axes given as None stay) and settle ``settle_time`` s."""
        for axis, value in (("x", x_nm), ("y", y_nm)):
            if value is not None:
                self._grid.check_position(axis, value)
        _require_non_negative("settle time", settle_time, "s")

        with self._lock:
            x_old, y_old = self._beam
            self._beam = (
                x_old if x_nm is None else float(x_nm),
                y_old if y_nm is None else float(y_nm),
            )
            self._clock_s += settle_time
        self._wait(settle_time)

    def acquire_spectrum(self, exposure_time: float) -> np.ndarray:
        """Spectrum at the pixel under the (drifted) beam; see the module docstring."""
        _require_positive("exposure time", exposure_time, "s")

        with self._lock:
            row, column = self.beam_pixel()
            recorded = self.spectrum_image.spectra[row, column].astype("<f8")
            attenuation = math.exp(-self.damage_rate * self._dose_s[row, column])
            expected = recorded * (exposure_time / self.recording_exposure_time) * attenuation
            if (row, column) in self._nan_pixels:
                spectrum = np.full_like(expected, np.nan)
            elif self.noise:
                spectrum = self._poisson(expected)
            else:
                spectrum = expected
            self._dose_s[row, column] += exposure_time
            self._clock_s += exposure_time
            self.last_pixel = (row, column)

        logger.debug("spectrum at pixel (%d, %d), exposure %g s", row, column, exposure_time)
        self._wait(exposure_time)
        return spectrum

    def acquire_image(self, dwell_time: float) -> np.ndarray:
        """HAADF image over the (drifted) grid, attenuated by dose damage."""
        _require_positive("dwell time", dwell_time, "s")
        ny, nx = self._grid.shape

        with self._lock:
            dx, dy = self.drift_offset_nm()
            shift_rows = math.floor(dy / self._grid.pixel_size_nm + 0.5)
            shift_columns = math.floor(dx / self._grid.pixel_size_nm + 0.5)
            rows = np.clip(np.arange(ny) + shift_rows, 0, ny - 1)
            columns = np.clip(np.arange(nx) + shift_columns, 0, nx - 1)
            attenuation = np.exp(-self.damage_rate * self._dose_s)
            image = (self.spectrum_image.haadf.astype("<f8") * attenuation)[
                np.ix_(rows, columns)
            ]
            scan_time = ny * nx * dwell_time
            self._dose_s += dwell_time
            self._clock_s += scan_time

        self._wait(scan_time)
        return image

    # -- simulation state ---------------------------------------------------

    @property
    def clock_s(self) -> float:
        """Simulated instrument time in s since the backend was made."""
        with self._lock:
            return self._clock_s

    @property
    def dose_s(self) -> np.ndarray:
        """(ny, nx) copy of the dose map: seconds of beam received per pixel."""
        with self._lock:
            return self._dose_s.copy()

    def drift_offset_nm(self) -> tuple[float, float]:
        """Current drift ``(dx, dy)`` of the beam from its commanded position, nm."""
        with self._lock:
            distance = self.drift_nm_per_s * self._clock_s
        return distance * self.drift_direction[0], distance * self.drift_direction[1]

    def beam_pixel(self) -> tuple[int, int]:
        """``(row, column)`` of the recorded pixel the beam lands on now (with drift)."""
        with self._lock:
            x_nm, y_nm = self._beam
            dx, dy = self.drift_offset_nm()
        return self._grid.nearest_pixel(x_nm + dx, y_nm + dy)

    @property
    def nan_pixels(self) -> list[tuple[int, int]]:
        """Sorted ``(row, column)`` pixels whose spectra come back all-NaN."""
        with self._lock:
            return sorted(self._nan_pixels)

    def inject_nan_spectra(self, pixels: Iterable[tuple[int, int]]) -> None:
        """Make the spectra at ``pixels`` (``(row, column)`` pairs) come back all-NaN.

        Raises
        ------
        ValueError
            If a pixel lies off the scan grid.
        """
        ny, nx = self._grid.shape
        chosen = {_pixel(pixel) for pixel in pixels}
        for row, column in chosen:
            if not (0 <= row < ny and 0 <= column < nx):
                raise ValueError(
                    f"NaN pixel (row={row}, column={column}) lies off the {ny} x {nx} scan grid"
                )
        with self._lock:
            self._nan_pixels |= chosen
        if chosen:
            logger.info("simulated spectrometer returns NaN at %d pixel(s)", len(chosen))

    def _poisson(self, expected: np.ndarray) -> np.ndarray:
        finite = np.isfinite(expected)
        counts = np.full_like(expected, np.nan)
        counts[finite] = self._noise_rng.poisson(np.clip(expected[finite], 0.0, None))
        return counts

    def _wait(self, seconds: float) -> None:
        if self.real_time and seconds > 0:
            time.sleep(seconds)


class SimulatedMicroscope:
    """A simulated STEM-EELS microscope: ``scan``, ``haadf`` and ``eels`` on one backend.

    Parameters
    ----------
    spectrum_image : SpectrumImage
        The recording the simulation replays.
    seed : int, optional
        Seed of noise and drift direction.
    noise : bool
        Poisson noise on spectra.
    exposure_time : float, optional
        Initial EELS exposure per spectrum in s; default: the recording's.
    recording_exposure_time : float, optional
        Exposure of one recorded spectrum in s (see :class:`SimulatedBackend`).
    dwell_time : float
        Initial HAADF dwell time per pixel in s.
    settle_time : float
        Initial settle time after each beam move in s.
    real_time : bool
        Sleep for exposures, settle times and image scans.
    drift_nm_per_s : float
        Beam drift speed in nm/s of instrument clock.
    damage_rate : float
        Dose damage rate in 1/s.
    nan_pixels : iterable of (row, column)
        Pixels whose spectra come back all-NaN.
    names : dict, optional
        Device names by role, default
        ``{"scan": "stem_scan", "haadf": "haadf", "eels": "eels"}``.

    Examples
    --------
    >>> from bluesky import RunEngine, plans as bp, plan_stubs as bps
    >>> microscope = SimulatedMicroscope(spectrum_image)  # doctest: +SKIP
    >>> RE = RunEngine()  # doctest: +SKIP
    >>> x, y = microscope.position_of(row=3, column=7)  # doctest: +SKIP
    >>> RE(bps.mv(microscope.scan, (x, y)))  # doctest: +SKIP
    >>> RE(bp.count([microscope.eels]))  # doctest: +SKIP
    """

    def __init__(
        self,
        spectrum_image: SpectrumImage,
        *,
        seed: int | None = None,
        noise: bool = False,
        exposure_time: float | None = None,
        recording_exposure_time: float | None = None,
        dwell_time: float = 1e-6,
        settle_time: float = 0.0,
        real_time: bool = False,
        drift_nm_per_s: float = 0.0,
        damage_rate: float = 0.0,
        nan_pixels: Iterable[tuple[int, int]] = (),
        names: dict[str, str] | None = None,
    ) -> None:
        self.backend = SimulatedBackend(
            spectrum_image,
            seed=seed,
            noise=noise,
            recording_exposure_time=recording_exposure_time,
            real_time=real_time,
            drift_nm_per_s=drift_nm_per_s,
            damage_rate=damage_rate,
            nan_pixels=nan_pixels,
        )
        names = {"scan": "stem_scan", "haadf": "haadf", "eels": "eels", **(names or {})}
        if exposure_time is None:
            exposure_time = self.backend.recording_exposure_time

        self.scan = StemScan(backend=self.backend, name=names["scan"], settle_time=settle_time)
        self.haadf = HaadfDetector(
            backend=self.backend, name=names["haadf"], dwell_time=dwell_time
        )
        self.eels = EelsSpectrometer(
            backend=self.backend, name=names["eels"], exposure_time=exposure_time
        )

    @property
    def spectrum_image(self) -> SpectrumImage:
        """The recording the simulation replays."""
        return self.backend.spectrum_image

    @property
    def grid(self) -> ScanGrid:
        """Scan grid (shape, pixel size in nm)."""
        return self.backend.grid

    @property
    def devices(self) -> tuple[StemScan, HaadfDetector, EelsSpectrometer]:
        """``(scan, haadf, eels)``."""
        return self.scan, self.haadf, self.eels

    def position_of(self, row: int, column: int) -> tuple[float, float]:
        """Beam position ``(x, y)`` in nm of the centre of pixel ``(row, column)``."""
        return self.grid.position_of(row, column)

    def inject_nan_spectra(self, pixels: Iterable[tuple[int, int]]) -> None:
        """Make the spectra at ``pixels`` (``(row, column)`` pairs) come back all-NaN."""
        self.backend.inject_nan_spectra(pixels)

    def describe_simulation(self) -> dict[str, Any]:
        """The simulation settings as JSON-able metadata for a run's start document."""
        backend = self.backend
        return {
            "simulated": True,
            "seed": backend.seed,
            "noise": backend.noise,
            "recording_exposure_time_s": backend.recording_exposure_time,
            "real_time": backend.real_time,
            "drift_nm_per_s": backend.drift_nm_per_s,
            "damage_rate_per_s": backend.damage_rate,
            "nan_pixels": [list(pixel) for pixel in backend.nan_pixels],
        }


def _pixel(pixel: Any) -> tuple[int, int]:
    try:
        row, column = pixel
        if not all(float(index).is_integer() for index in (row, column)):
            raise ValueError(pixel)
    except (TypeError, ValueError):
        raise ValueError(f"a NaN pixel is a pair (row, column) of whole numbers, got "
                         f"{pixel!r}") from None
    return int(row), int(column)


def _number(value: Any) -> float:
    try:
        return math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return math.nan


def _require_non_negative(what: str, value: Any, units: str) -> None:
    if not (math.isfinite(_number(value)) and _number(value) >= 0):
        raise ValueError(f"{what} must be a finite number >= 0 ({units}), got {value!r}")


def _require_positive(what: str, value: Any, units: str) -> None:
    if not (math.isfinite(_number(value)) and _number(value) > 0):
        raise ValueError(f"{what} must be a positive number ({units}), got {value!r}")
