"""ophyd devices of a STEM-EELS microscope: beam scan, HAADF detector, EELS spectrometer.

The devices are thin: they keep settings and readings in ophyd signals and
hand every move and acquisition to a
:class:`~hae_bluesky.devices.backend.MicroscopeBackend`, on a worker thread,
completing their status object when the backend returns. Data keys in
documents, for device names ``stem_scan``, ``haadf`` and ``eels``:

============================  ======  =====================================
data key                      kind    content
============================  ======  =====================================
``stem_scan_x``               hinted  beam position x, nm (readback)
``stem_scan_y``               hinted  beam position y, nm (readback)
``stem_scan_x_setpoint``      normal  requested x, nm
``stem_scan_y_setpoint``      normal  requested y, nm
``stem_scan_settle_time``     config  wait after each move, s
``haadf_image``               normal  (ny, nx) HAADF image
``haadf_dwell_time``          config  dwell time per pixel, s
``haadf_pixel_size``          config  scan step, nm
``eels_spectrum``             normal  (nE,) spectrum, counts
``eels_exposure_time``        config  exposure per spectrum, s
``eels_energy_axis``          config  (nE,) energy loss of each channel, eV
============================  ======  =====================================
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device
from ophyd.status import DeviceStatus

from hae_bluesky.devices.backend import MicroscopeBackend, ScanGrid
from hae_bluesky.devices.signals import ArraySignal, QuantitySignal

__all__ = ["BeamAxis", "EelsSpectrometer", "HaadfDetector", "StemScan"]

logger = logging.getLogger(__name__)


def _run_in_background(status: DeviceStatus, work: Callable[[], None]) -> DeviceStatus:
    """Run ``work`` on a daemon thread; finish ``status`` with its outcome."""

    def target() -> None:
        try:
            work()
        except Exception as error:
            logger.error("%s failed: %s", status.device.name, error)
            status.set_exception(error)
        else:
            status.set_finished()

    threading.Thread(target=target, name=f"{status.device.name}-worker", daemon=True).start()
    return status


def _position_nm(value: Any, what: str, whole: Any = None) -> float:
    """``value`` as a float, or a ValueError saying ``what`` was expected."""
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    except (TypeError, ValueError):
        shown = value if whole is None else whole
        raise ValueError(f"{what}, got {shown!r}") from None


class BeamAxis(Device):
    """One axis (x or y) of the beam position, in nm, inside a :class:`StemScan`.

    Moves are checked against the scanned field of view before anything
    moves. The readback data key carries the axis name itself (for example
    ``stem_scan_x``), as in :class:`ophyd.sim.SynAxis`.

    Parameters
    ----------
    axis : {"x", "y"}
        Which scan axis this is.
    """

    readback = Cpt(QuantitySignal, value=0.0, units="nm", read_only=True, kind="hinted")
    setpoint = Cpt(QuantitySignal, value=0.0, units="nm", read_only=True, kind="normal")

    egu = "nm"

    def __init__(self, prefix: str = "", *, axis: str, name: str, **kwargs: Any) -> None:
        if axis not in ("x", "y"):
            raise ValueError(f"scan axis must be 'x' or 'y', got {axis!r}")
        self.axis = axis
        super().__init__(prefix, name=name, **kwargs)
        self.readback.name = self.name

    @property
    def _scan(self) -> StemScan:
        if not isinstance(self.parent, StemScan):
            raise TypeError(f"{self.name} must be a component of a StemScan")
        return self.parent

    @property
    def limits(self) -> tuple[float, float]:
        """(low, high) of the field of view along this axis, nm."""
        return self._scan.grid.limits(self.axis)

    @property
    def low_limit(self) -> float:
        """Lowest allowed position, nm."""
        return self.limits[0]

    @property
    def high_limit(self) -> float:
        """Highest allowed position, nm."""
        return self.limits[1]

    @property
    def position(self) -> float:
        """Current beam position along this axis, nm."""
        return self.readback.get()

    def check_value(self, value: float) -> None:
        """Raise :class:`~hae_bluesky.devices.backend.OutsideFieldError` if outside the field."""
        self._scan.grid.check_position(self.axis, self._as_number(value))

    def set(self, value: float, **kwargs: Any) -> DeviceStatus:
        """Move the beam along this axis to ``value`` nm; the other axis stays.

        Raises
        ------
        OutsideFieldError
            Before anything moves, if ``value`` lies outside the field of view.
        """
        return self._scan._move({self.axis: self._as_number(value)})

    def _as_number(self, value: Any) -> float:
        return _position_nm(value, f"{self.name} moves to a position in nm")


class StemScan(Device):
    """The beam position of a STEM: x and y positioners in nm, plus settle time.

    Parameters
    ----------
    prefix : str
        ophyd prefix (unused by the simulated backend).
    backend : MicroscopeBackend
        The instrument that moves the beam.
    name : str
        Device name; data keys start with it (``stem_scan_x``).
    settle_time : float
        Wait after each move before the move counts as done, s (>= 0).
    **kwargs
        Passed to :class:`ophyd.Device`.

    Notes
    -----
    ``bps.mv(scan.x, x)`` moves one axis; ``bps.mv(scan, (x, y))`` moves both
    with a single settle, after checking both against the field of view.
    Positions follow :class:`~hae_bluesky.devices.backend.ScanGrid`: pixel
    ``(row, column)`` is at ``(column * p, row * p)`` nm.
    """

    x = Cpt(BeamAxis, axis="x")
    y = Cpt(BeamAxis, axis="y")
    settle_time = Cpt(QuantitySignal, value=0.0, units="s", minimum=0.0, kind="config")

    def __init__(
        self,
        prefix: str = "",
        *,
        backend: MicroscopeBackend,
        name: str,
        settle_time: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.backend = backend
        super().__init__(prefix, name=name, **kwargs)
        self.settle_time.put(settle_time)
        x_nm, y_nm = backend.beam_position
        for axis, value in ((self.x, x_nm), (self.y, y_nm)):
            axis.setpoint.put(value, force=True)
            axis.readback.put(value, force=True)

    @property
    def grid(self) -> ScanGrid:
        """The scan grid of the backend."""
        return self.backend.grid

    @property
    def position(self) -> tuple[float, float]:
        """Current beam position ``(x, y)`` in nm."""
        return self.x.position, self.y.position

    def check_value(self, value: Sequence[float]) -> None:
        """Raise unless ``value = (x, y)`` nm lies inside the field of view."""
        x_nm, y_nm = self._as_pair(value)
        self.grid.check_position("x", x_nm)
        self.grid.check_position("y", y_nm)

    def set(self, value: Sequence[float], **kwargs: Any) -> DeviceStatus:
        """Move the beam to ``value = (x, y)`` nm.

        Raises
        ------
        OutsideFieldError
            Before anything moves, if either coordinate lies outside the field.
        """
        x_nm, y_nm = self._as_pair(value)
        return self._move({"x": x_nm, "y": y_nm})

    def _as_pair(self, value: Sequence[float]) -> tuple[float, float]:
        what = f"{self.name} moves to a pair (x, y) in nm"
        try:
            x_nm, y_nm = value
        except (TypeError, ValueError):
            raise ValueError(f"{what}, got {value!r}") from None
        return _position_nm(x_nm, what, value), _position_nm(y_nm, what, value)

    def _move(self, targets: dict[str, float]) -> DeviceStatus:
        for axis, value in targets.items():
            self.grid.check_position(axis, value)

        settle_time = self.settle_time.get()
        axes = {"x": self.x, "y": self.y}
        for axis, value in targets.items():
            axes[axis].setpoint.put(value, force=True)

        def work() -> None:
            self.backend.move_beam(
                x_nm=targets.get("x"), y_nm=targets.get("y"), settle_time=settle_time
            )
            x_nm, y_nm = self.backend.beam_position
            self.x.readback.put(x_nm, force=True)
            self.y.readback.put(y_nm, force=True)

        logger.debug("%s moving to %s nm", self.name, targets)
        return _run_in_background(DeviceStatus(self), work)


class HaadfDetector(Device):
    """HAADF detector: one image of the whole scan grid per trigger.

    Parameters
    ----------
    prefix : str
        ophyd prefix (unused by the simulated backend).
    backend : MicroscopeBackend
        The instrument that scans and records the image.
    name : str
        Device name; the image data key is ``<name>_image``.
    dwell_time : float
        Dwell time per pixel, s (> 0).
    **kwargs
        Passed to :class:`ophyd.Device`.
    """

    image = Cpt(ArraySignal, kind="normal")
    dwell_time = Cpt(
        QuantitySignal, value=1e-6, units="s", minimum=0.0, exclusive_minimum=True, kind="config"
    )
    pixel_size = Cpt(QuantitySignal, value=1.0, units="nm", read_only=True, kind="config")

    def __init__(
        self,
        prefix: str = "",
        *,
        backend: MicroscopeBackend,
        name: str,
        dwell_time: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        self.backend = backend
        super().__init__(prefix, name=name, **kwargs)
        self.dwell_time.put(dwell_time)
        self.pixel_size.put(backend.grid.pixel_size_nm, force=True)
        self.image.set_layout(backend.grid.shape, backend.image_dtype)

    def trigger(self) -> DeviceStatus:
        """Scan the grid once; the status completes when the image is stored."""
        dwell_time = self.dwell_time.get()

        def work() -> None:
            self.image.publish(self.backend.acquire_image(dwell_time))

        return _run_in_background(DeviceStatus(self), work)


class EelsSpectrometer(Device):
    """EELS spectrometer: one spectrum at the current beam position per trigger.

    Parameters
    ----------
    prefix : str
        ophyd prefix (unused by the simulated backend).
    backend : MicroscopeBackend
        The instrument that records the spectrum.
    name : str
        Device name; the spectrum data key is ``<name>_spectrum``.
    exposure_time : float
        Exposure per spectrum, s (> 0).
    **kwargs
        Passed to :class:`ophyd.Device`.

    Notes
    -----
    ``describe()`` gives the spectrum shape ``[nE]`` and ``dtype_numpy``
    (``'<f8'`` for the simulated backend); the energy axis (eV) is
    configuration, read once per stream into the event descriptor.
    """

    spectrum = Cpt(ArraySignal, units="counts", kind="normal")
    exposure_time = Cpt(
        QuantitySignal, value=1.0, units="s", minimum=0.0, exclusive_minimum=True, kind="config"
    )
    energy_axis = Cpt(ArraySignal, units="eV", kind="config")

    def __init__(
        self,
        prefix: str = "",
        *,
        backend: MicroscopeBackend,
        name: str,
        exposure_time: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.backend = backend
        super().__init__(prefix, name=name, **kwargs)
        self.exposure_time.put(exposure_time)
        energy_axis = backend.energy_axis
        self.energy_axis.set_layout(energy_axis.shape, "<f8", energy_axis)
        self.spectrum.set_layout(energy_axis.shape, backend.spectrum_dtype)

    def trigger(self) -> DeviceStatus:
        """Expose once; the status completes when the spectrum is stored."""
        exposure_time = self.exposure_time.get()

        def work() -> None:
            self.spectrum.publish(self.backend.acquire_spectrum(exposure_time))

        return _run_in_background(DeviceStatus(self), work)
