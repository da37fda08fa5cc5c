"""Scalarizers: one number per EELS spectrum that says how interesting it is.

Each scalarizer is a small object described by a plain dict, so it can travel
in Bluesky documents and in intervention commands::

    >>> spec = {"kind": "band_integral", "window": [930, 1000]}
    >>> scalarizer = scalarizer_from_spec(spec)
    >>> scalarizer.to_spec() == spec
    True

Conventions
-----------
- Windows are ``[low, high]`` in eV and include every channel whose energy
  lies in ``low <= E <= high``. ``validate(energy_axis)`` raises a
  ``ValueError`` when a window is empty, reversed, or outside the axis.
- Integrals are sums of counts times the channel width (counts x eV), the
  usual convention for binned spectra.
- A spectrum with a NaN or inf channel, or with negative total counts in a
  window the scalarizer uses, gives NaN and a logged warning, never an
  exception: one bad spectrum must not stop an experiment.
- Nothing is normalised with data a live experiment cannot have (no map-wide
  minimum or maximum): each value depends on its own spectrum only.

Calling a scalarizer on an array of shape ``(..., nE)`` returns an array of
shape ``(...)``; on one spectrum it returns a float.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "BandIntegral",
    "BandMaximum",
    "EdgeIntensity",
    "PeakPosition",
    "Ratio",
    "Scalarizer",
    "scalarizer_from_spec",
]


def _window(value: Sequence[float], name: str = "window") -> tuple[float, float]:
    try:
        if isinstance(value, (str, bytes)) or any(isinstance(v, bool) for v in value):
            raise TypeError(value)
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be two energies [low, high] in eV, got {value!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} {low}-{high} eV is not finite")
    if low >= high:
        raise ValueError(f"{name} {low}-{high} eV is empty: low must be below high")
    return low, high


def _channels(energy_axis: np.ndarray, window: tuple[float, float], name: str,
              minimum: int = 1) -> np.ndarray:
    """Return the boolean mask of channels inside ``window``, validated."""
    energy_axis = np.asarray(energy_axis, dtype=float)
    if energy_axis.ndim != 1 or energy_axis.size == 0:
        raise ValueError(f"the energy axis must be 1-D with at least one channel (eV), got "
                         f"shape {energy_axis.shape}")
    first, last = float(energy_axis[0]), float(energy_axis[-1])
    low, high = window
    if low < first or high > last:
        raise ValueError(
            f"{name} {low:g}-{high:g} eV lies outside the spectrometer range "
            f"{first:g}-{last:g} eV"
        )
    mask = (energy_axis >= low) & (energy_axis <= high)
    if mask.sum() < minimum:
        raise ValueError(
            f"{name} {low:g}-{high:g} eV holds {int(mask.sum())} channel(s) of the "
            f"energy axis; it needs at least {minimum}"
        )
    return mask


def _channel_width(energy_axis: np.ndarray) -> float:
    return float(np.mean(np.diff(energy_axis))) if energy_axis.size > 1 else 1.0


def _flag_bad(values: np.ndarray, bad: np.ndarray, reason: str, kind: str) -> np.ndarray:
    if np.any(bad):
        logger.warning("%s: %d spectrum(s) %s; their value is NaN", kind, int(bad.sum()),
                       reason)
        values = np.where(bad, np.nan, values)
    return values


class Scalarizer(ABC):
    """A function ``P(A)`` from a spectrum to one number, described by a dict."""

    kind: ClassVar[str]

    def __call__(self, spectra: np.ndarray, energy_axis: np.ndarray) -> np.ndarray | float:
        """Scalarize one spectrum (nE,) or many (..., nE) on ``energy_axis`` (eV)."""
        spectra = np.asarray(spectra, dtype=float)
        energy_axis = np.asarray(energy_axis, dtype=float)
        if spectra.shape[-1] != energy_axis.size:
            raise ValueError(
                f"spectra have {spectra.shape[-1]} channels but the energy axis has "
                f"{energy_axis.size}"
            )
        self.validate(energy_axis)
        flat = spectra.reshape(-1, energy_axis.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = self._evaluate(flat, energy_axis)
        non_finite = ~np.all(np.isfinite(flat), axis=1)
        values = _flag_bad(values, non_finite, "contain NaN or inf counts", self.kind)
        values = values.reshape(spectra.shape[:-1])
        return float(values) if values.ndim == 0 else values

    @abstractmethod
    def _evaluate(self, spectra: np.ndarray, energy_axis: np.ndarray) -> np.ndarray:
        """Return one value per row of ``spectra`` (K, nE)."""

    @abstractmethod
    def validate(self, energy_axis: np.ndarray) -> None:
        """Raise ``ValueError`` if a window does not fit ``energy_axis`` (eV)."""

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """Return the plain dict that :func:`scalarizer_from_spec` rebuilds."""

    def describe(self) -> str:
        """Return a one-line human-readable description."""
        return str(self.to_spec())


@dataclass(frozen=True)
class _Windowed(Scalarizer):
    window: tuple[float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", _window(self.window))

    def validate(self, energy_axis: np.ndarray) -> None:
        _channels(energy_axis, self.window, "signal window")

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": list(self.window)}

    def _signal(self, spectra: np.ndarray, energy_axis: np.ndarray) -> np.ndarray:
        return spectra[:, _channels(energy_axis, self.window, "signal window")]

    def _negative_total(self, signal: np.ndarray) -> np.ndarray:
        return np.nansum(signal, axis=1) < 0


@dataclass(frozen=True)
class BandIntegral(_Windowed):
    """Counts integrated over an energy window: ``P = sum_E A(E) * dE`` (counts x eV)."""

    kind: ClassVar[str] = "band_integral"

    def _evaluate(self, spectra, energy_axis):
        signal = self._signal(spectra, energy_axis)
        values = signal.sum(axis=1) * _channel_width(energy_axis)
        return _flag_bad(values, self._negative_total(signal),
                         "have negative total counts in the window", self.kind)


@dataclass(frozen=True)
class BandMaximum(_Windowed):
    """Largest count in an energy window: ``P = max_E A(E)`` (counts)."""

    kind: ClassVar[str] = "band_maximum"

    def _evaluate(self, spectra, energy_axis):
        signal = self._signal(spectra, energy_axis)
        return _flag_bad(signal.max(axis=1), self._negative_total(signal),
                         "have negative total counts in the window", self.kind)


@dataclass(frozen=True)
class PeakPosition(_Windowed):
    """Centroid energy of the counts in a window (eV).

    ``P = sum_E E * max(A(E), 0) / sum_E max(A(E), 0)``; negative channels are
    treated as zero, and a window with no positive counts gives NaN.
    """

    kind: ClassVar[str] = "peak_position"

    def _evaluate(self, spectra, energy_axis):
        mask = _channels(energy_axis, self.window, "signal window")
        signal = np.clip(spectra[:, mask], 0, None)
        total = signal.sum(axis=1)
        values = (signal * energy_axis[mask]).sum(axis=1) / total
        return _flag_bad(values, total <= 0, "have no positive counts in the window",
                         self.kind)


@dataclass(frozen=True)
class EdgeIntensity(Scalarizer):
    """Background-subtracted core-loss edge intensity (counts x eV).

    A power law ``B(E) = a * E**(-r)`` is fitted by least squares to
    ``log A(E)`` against ``log E`` in the pre-edge ``background_window``
    (counts below 1 are clipped to 1 before the logarithm), extrapolated under
    the edge, and ``P = sum_E (A(E) - B(E)) * dE`` over the signal ``window``.
    This is the standard EELS practice for edge maps; the result may be
    negative where there is no edge.
    """

    window: tuple[float, float]
    background_window: tuple[float, float]
    kind: ClassVar[str] = "edge_intensity"

    def __post_init__(self) -> None:
        window = _window(self.window)
        background = _window(self.background_window, "background window")
        if background[1] > window[0]:
            raise ValueError(
                f"background window {background[0]:g}-{background[1]:g} eV must end "
                f"before the signal window starts at {window[0]:g} eV"
            )
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "background_window", background)

    def validate(self, energy_axis: np.ndarray) -> None:
        _channels(energy_axis, self.window, "signal window")
        _channels(energy_axis, self.background_window, "background window", minimum=2)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": list(self.window),
                "background_window": list(self.background_window)}

    def _evaluate(self, spectra, energy_axis):
        pre = _channels(energy_axis, self.background_window, "background window", 2)
        edge = _channels(energy_axis, self.window, "signal window")

        log_energy = np.log(energy_axis[pre])
        log_counts = np.log(np.clip(spectra[:, pre], 1.0, None))
        centred = log_energy - log_energy.mean()
        slope = (log_counts - log_counts.mean(axis=1, keepdims=True)) @ centred
        slope /= centred @ centred
        intercept = log_counts.mean(axis=1) - slope * log_energy.mean()

        background = np.exp(intercept[:, None] + slope[:, None] * np.log(energy_axis[edge]))
        values = (spectra[:, edge] - background).sum(axis=1) * _channel_width(energy_axis)
        negative = np.nansum(spectra[:, pre], axis=1) < 0
        return _flag_bad(values, negative,
                         "have negative total counts in the background window", self.kind)


@dataclass(frozen=True)
class Ratio(Scalarizer):
    """Ratio of two scalarizers: ``P = P_numerator(A) / P_denominator(A)``.

    Where the denominator is not positive the ratio is NaN (with a warning).
    """

    numerator: Scalarizer
    denominator: Scalarizer
    kind: ClassVar[str] = "ratio"

    def validate(self, energy_axis: np.ndarray) -> None:
        self.numerator.validate(energy_axis)
        self.denominator.validate(energy_axis)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "numerator": self.numerator.to_spec(),
                "denominator": self.denominator.to_spec()}

    def _evaluate(self, spectra, energy_axis):
        top = self.numerator._evaluate(spectra, energy_axis)
        bottom = self.denominator._evaluate(spectra, energy_axis)
        return _flag_bad(top / bottom, ~(bottom > 0), "have a denominator that is not positive",
                         self.kind)


_KINDS: dict[str, type[Scalarizer]] = {
    cls.kind: cls for cls in (BandIntegral, BandMaximum, PeakPosition, EdgeIntensity, Ratio)
}


def scalarizer_from_spec(spec: Mapping[str, Any] | Scalarizer) -> Scalarizer:
    """Build a scalarizer from its dict description (a scalarizer passes through).

    Parameters
    ----------
    spec : dict
        ``{"kind": ..., ...}`` with the kind's fields: ``window`` for
        ``band_integral``, ``band_maximum`` and ``peak_position``; ``window``
        and ``background_window`` for ``edge_intensity``; ``numerator`` and
        ``denominator`` (specs themselves) for ``ratio``.

    Raises
    ------
    ValueError
        For an unknown kind, missing or unexpected fields, or a bad window.
    """
    if isinstance(spec, Scalarizer):
        return spec
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ValueError(f"a scalarizer spec is a dict with a 'kind' key, got {spec!r}")
    kind = spec["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(
            f"unknown scalarizer kind {kind!r}; known kinds: {', '.join(sorted(_KINDS))}"
        )
    fields = {key: value for key, value in spec.items() if key != "kind"}
    if kind == "ratio":
        expected = {"numerator", "denominator"}
        if set(fields) != expected:
            raise ValueError(f"a ratio scalarizer needs exactly {sorted(expected)}, "
                             f"got {sorted(fields)}")
        return Ratio(scalarizer_from_spec(fields["numerator"]),
                     scalarizer_from_spec(fields["denominator"]))
    cls = _KINDS[kind]
    expected = {"window", "background_window"} if cls is EdgeIntensity else {"window"}
    if set(fields) != expected:
        raise ValueError(f"the {kind} scalarizer needs exactly the field(s) "
                         f"{sorted(expected)}, got {sorted(fields)}")
    return cls(**fields)
