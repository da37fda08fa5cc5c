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

from hae_bluesky.data import DATASETS
from hae_bluesky.devices import SimulatedMicroscope
from hae_bluesky.experiment import choose_spectrum_image


def _flag(name: str) -> bool:
    value = os.environ.get(name, "0").strip().lower()
    if value not in ("0", "1", "", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{name}={os.environ[name]!r} is not a switch: set it to 1 or 0")
    return value in ("1", "true", "yes", "on")


def _seconds(name: str) -> float | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number of seconds") from None


def _spectrum_image(choice: str):
    if choice != "twin" and choice not in DATASETS and not os.path.isfile(choice):
        raise FileNotFoundError(
            f"HAE_DEVICES={choice!r} is neither a registered data set "
            f"({', '.join(DATASETS)}), 'twin', nor an existing spectrum-image file")
    return choose_spectrum_image(choice)


spectrum_image, _fallback = _spectrum_image(os.environ.get("HAE_DEVICES", "cuzn"))
if _fallback:
    import logging

    logging.getLogger("hae_bluesky.profile").warning(_fallback)

microscope = SimulatedMicroscope(
    spectrum_image, seed=0, noise=_flag("HAE_NOISE"), real_time=_flag("HAE_REAL_TIME"),
    settle_time=_seconds("HAE_SETTLE_TIME") or 0.0,
    exposure_time=_seconds("HAE_EXPOSURE_TIME"))
stem_scan, haadf, eels = microscope.scan, microscope.haadf, microscope.eels
