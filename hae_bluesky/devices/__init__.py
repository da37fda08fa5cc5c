"""ophyd devices of a STEM-EELS microscope and their simulated equivalents.

- :class:`StemScan`, :class:`HaadfDetector`, :class:`EelsSpectrometer`: thin
  ophyd devices on top of a :class:`MicroscopeBackend`.
- :class:`SimulatedMicroscope`: the three devices on a
  :class:`SimulatedBackend` that replays a recorded spectrum image.
"""

from hae_bluesky.devices.backend import MicroscopeBackend, OutsideFieldError, ScanGrid
from hae_bluesky.devices.signals import ArraySignal, QuantitySignal
from hae_bluesky.devices.simulated import SimulatedBackend, SimulatedMicroscope
from hae_bluesky.devices.stem import BeamAxis, EelsSpectrometer, HaadfDetector, StemScan

__all__ = [
    "ArraySignal",
    "BeamAxis",
    "EelsSpectrometer",
    "HaadfDetector",
    "MicroscopeBackend",
    "OutsideFieldError",
    "QuantitySignal",
    "ScanGrid",
    "SimulatedBackend",
    "SimulatedMicroscope",
    "StemScan",
]
