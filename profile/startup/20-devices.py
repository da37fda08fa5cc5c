"""Simulated STEM-EELS devices replaying a recorded spectrum image.

Environment:

``HAE_DEVICES``
    ``cuzn`` (default: the recorded Cu/ZnO data), ``twin`` (the SYNTHETIC
    plasmonic twin) or the path of a spectrum-image file.
``HAE_NOISE``
    ``1`` for Poisson noise on the spectra (default ``0``).
``HAE_REAL_TIME``
    ``1`` to take the time exposures and settling need (default ``0``).
``HAE_SETTLE_TIME``, ``HAE_EXPOSURE_TIME``
    Settle time after a beam move and EELS exposure, in s (defaults: 0 and
    the recording's exposure).
"""

import os

from hae_bluesky.devices import SimulatedMicroscope
from hae_bluesky.experiment import choose_spectrum_image


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _seconds(name: str) -> float | None:
    value = os.environ.get(name)
    return None if value in (None, "") else float(value)


spectrum_image, _fallback = choose_spectrum_image(os.environ.get("HAE_DEVICES", "cuzn"))
if _fallback:
    import logging

    logging.getLogger("hae_bluesky.profile").warning(_fallback)

microscope = SimulatedMicroscope(
    spectrum_image, seed=0, noise=_flag("HAE_NOISE"), real_time=_flag("HAE_REAL_TIME"),
    settle_time=_seconds("HAE_SETTLE_TIME") or 0.0,
    exposure_time=_seconds("HAE_EXPOSURE_TIME"))
stem_scan, haadf, eels = microscope.scan, microscope.haadf, microscope.eels
