"""Acquisition policies: a validated, JSON-able description of how to choose.

A policy is written as a plain dict (a *spec*) so that it can travel in a
start document, a queueserver request or an operator command::

    {"kind": "ei", "xi": 0.01}
    {"kind": "ucb", "beta": 2.0, "travel_weight": 0.2}
    {"kind": "mu", "exclusion_radius_nm": 2.0, "exclusion_weight": 0.5}

``kind`` picks the acquisition function (:mod:`hae_bluesky.agent.acquisition`);
the other keys are its parameters and the optional modifiers below.

Scores
------
The acquisition function ``a(x)`` is computed in standardised units (the
agent standardises the measured values). Without modifiers the policy picks
``argmax a(x)`` over the candidates not yet measured. With modifiers the
acquisition is first rescaled to ``[0, 1]`` over those candidates,
``a'(x) = (a(x) - min a) / (max a - min a)``, and the penalties are
subtracted::

    score(x) = a'(x) - travel_weight * d(x, beam) / D
                     - exclusion_weight * exp(-d_min(x)^2 / (2 r^2))

where ``d(x, beam)`` is the distance in nm from the current beam position,
``D`` the diagonal of the field of view (nm), ``d_min(x)`` the distance to
the nearest measured position and ``r = exclusion_radius_nm``. The travel
penalty favours short beam moves (less drift, less dose on the way); the
exclusion penalty pushes the search away from neighbourhoods it has already
sampled, which is one remedy for an experiment that keeps returning to one
region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hae_bluesky.agent import acquisition

__all__ = ["MODIFIERS", "POLICY_KINDS", "Policy", "policy_from_spec"]

#: Policy kinds, their parameters and the parameters' defaults.
POLICY_KINDS: dict[str, dict[str, float]] = {
    "ei": {"xi": 0.01},
    "ucb": {"beta": 2.0},
    "mu": {},
    "pi": {"xi": 0.01},
    "thompson": {},
    "random": {},
}

#: Optional modifiers any policy accepts, with their defaults (off).
MODIFIERS: dict[str, float] = {
    "travel_weight": 0.0,
    "exclusion_radius_nm": 0.0,
    "exclusion_weight": 0.0,
}

_ALIASES = {
    "expected_improvement": "ei",
    "upper_confidence_bound": "ucb",
    "maximum_uncertainty": "mu",
    "max_uncertainty": "mu",
    "probability_of_improvement": "pi",
    "ts": "thompson",
}


@dataclass(frozen=True)
class Policy:
    """A validated acquisition policy.

    Attributes
    ----------
    kind : str
        One of :data:`POLICY_KINDS`.
    parameters : dict
        The kind's parameters (``xi`` for EI and PI, ``beta`` for UCB).
    travel_weight, exclusion_radius_nm, exclusion_weight : float
        Modifiers (see the module docstring); 0 switches them off.
    """

    kind: str
    parameters: dict[str, float] = field(default_factory=dict)
    travel_weight: float = 0.0
    exclusion_radius_nm: float = 0.0
    exclusion_weight: float = 0.0

    @property
    def needs_sample(self) -> bool:
        """True for Thompson sampling (needs a joint posterior sample)."""
        return self.kind == "thompson"

    @property
    def needs_model(self) -> bool:
        """False for random choice, which ignores the posterior."""
        return self.kind != "random"

    @property
    def modified(self) -> bool:
        """True when a travel or exclusion penalty is switched on."""
        return self.travel_weight > 0 or (
            self.exclusion_weight > 0 and self.exclusion_radius_nm > 0
        )

    def to_spec(self) -> dict[str, Any]:
        """Return the plain dict :func:`policy_from_spec` rebuilds."""
        spec: dict[str, Any] = {"kind": self.kind, **self.parameters}
        for name in MODIFIERS:
            value = getattr(self, name)
            if value:
                spec[name] = value
        return spec

    def describe(self) -> str:
        """One line for people: ``ei(xi=0.01)``."""
        items = ", ".join(f"{key}={value:g}" for key, value in self.to_spec().items()
                          if key != "kind")
        return f"{self.kind}({items})"

    def acquisition(self, mean: np.ndarray, std: np.ndarray, best: float,
                    rng: np.random.Generator, sample: np.ndarray | None = None) -> np.ndarray:
        """Raw acquisition values ``a(x)`` at every candidate.

        EI and PI are given as their natural logarithms (``log EI``,
        ``log PI``): the same choice wherever EI and PI are representable,
        and a meaningful one where they underflow to 0 (a confident model
        far below a lucky best measurement). The modifiers then rescale the
        logarithm.

        Parameters
        ----------
        mean, std : numpy.ndarray
            (M,) posterior mean and standard deviation (standardised units).
        best : float
            Best measured value (standardised units).
        rng : numpy.random.Generator
            Random source (random policy).
        sample : numpy.ndarray, optional
            (M,) joint posterior sample (Thompson sampling).
        """
        if self.kind == "ei":
            return acquisition.log_expected_improvement(mean, std, best,
                                                        self.parameters["xi"])
        if self.kind == "pi":
            return acquisition.log_probability_of_improvement(mean, std, best,
                                                              self.parameters["xi"])
        if self.kind == "ucb":
            return acquisition.upper_confidence_bound(mean, std, self.parameters["beta"])
        if self.kind == "mu":
            return acquisition.maximum_uncertainty(std)
        if self.kind == "thompson":
            if sample is None:
                raise ValueError("Thompson sampling needs a posterior sample")
            return acquisition.thompson_sample(sample)
        return acquisition.random_scores(len(mean), rng)

    def scores(self, values: np.ndarray, available: np.ndarray, positions_nm: np.ndarray,
               measured_nm: np.ndarray, beam_nm: np.ndarray | None,
               diagonal_nm: float) -> np.ndarray:
        """Apply the modifiers to acquisition values; unavailable candidates get -inf.

        Parameters
        ----------
        values : numpy.ndarray
            (M,) raw acquisition values.
        available : numpy.ndarray
            (M,) bool, candidates that may be chosen (not yet measured).
        positions_nm : numpy.ndarray
            (M, 2) candidate positions (x, y) in nm.
        measured_nm : numpy.ndarray
            (K, 2) measured positions in nm.
        beam_nm : numpy.ndarray or None
            (2,) current beam position in nm (no travel penalty without it).
        diagonal_nm : float
            Diagonal of the field of view in nm.

        Returns
        -------
        numpy.ndarray
            (M,) scores; the policy picks the argmax.
        """
        values = np.where(np.isfinite(values), values, -np.inf)
        scores = np.full(values.shape, -np.inf)
        if not available.any():
            return scores
        if not self.modified:
            scores[available] = values[available]
            return scores
        chosen = values[available]
        finite = chosen[np.isfinite(chosen)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        span = high - low if high > low else 1.0
        score = (chosen - low) / span
        candidates = positions_nm[available]
        if self.travel_weight > 0 and beam_nm is not None:
            distance = np.hypot(*(candidates - np.asarray(beam_nm, dtype=float)).T)
            score = score - self.travel_weight * distance / max(diagonal_nm, 1e-12)
        if self.exclusion_weight > 0 and self.exclusion_radius_nm > 0 and len(measured_nm):
            nearest = _nearest_distance(candidates, measured_nm)
            radius = self.exclusion_radius_nm
            score = score - self.exclusion_weight * np.exp(-0.5 * (nearest / radius) ** 2)
        scores[available] = score
        return scores


def _nearest_distance(points: np.ndarray, others: np.ndarray, block: int = 4096) -> np.ndarray:
    """Distance from each point (M, 2) to the nearest of ``others`` (K, 2), in blocks."""
    nearest = np.empty(len(points))
    for start in range(0, len(points), block):
        chunk = points[start:start + block, None, :] - others[None, :, :]
        nearest[start:start + block] = np.sqrt((chunk**2).sum(-1).min(axis=1))
    return nearest


def policy_from_spec(spec: Mapping[str, Any] | Policy | str) -> Policy:
    """Build a :class:`Policy` from a spec, checking every key and value.

    Parameters
    ----------
    spec : dict, Policy or str
        ``{"kind": "ucb", "beta": 2.0, ...}``; a bare string is a kind with
        default parameters. Missing parameters take their defaults.

    Raises
    ------
    ValueError
        For an unknown kind, an unknown key, or a value that is not a
        finite non-negative number; the message lists what is accepted.
    """
    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"a policy is a dict like {{'kind': 'ei', 'xi': 0.01}}, got {spec!r}")
    spec = dict(spec)
    kind = str(spec.pop("kind", "")).strip().lower()
    kind = _ALIASES.get(kind, kind)
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind or None!r}; use one of "
                         f"{', '.join(POLICY_KINDS)}")
    allowed = {**POLICY_KINDS[kind], **MODIFIERS}
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"policy {kind!r} has no parameter(s) {', '.join(unknown)}; "
                         f"it accepts {', '.join(allowed) or 'none'}")
    values = {}
    for name, default in allowed.items():
        value = spec.get(name, default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"policy parameter {name} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"policy parameter {name} must be finite and >= 0, got {value}")
        values[name] = value
    parameters = {name: values[name] for name in POLICY_KINDS[kind]}
    return Policy(kind, parameters, **{name: values[name] for name in MODIFIERS})
