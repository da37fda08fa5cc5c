"""Acquisition functions: how interesting it is to measure each candidate next.

Every function here is a pure function of the posterior at the candidates:
the predictive mean ``mu``, the predictive standard deviation ``sigma`` of
the latent function (no observation noise), and for the improvement-based
functions the best *measured* value ``y_best`` (never the model's
prediction). Larger values mean more interesting; the policy measures the
argmax.

Units: the functions work in whatever units they are given. The agent
passes standardised units, ``(y - mean(y)) / std(y)`` over the measured
values, so ``xi`` is a fraction of the spread of the measured values and the
acquisition values of one policy are comparable from step to step.

Example
-------
>>> import numpy as np
>>> mean, std = np.array([0.0, 1.0]), np.array([1.0, 0.5])
>>> upper_confidence_bound(mean, std, beta=2.0)
array([2., 2.])
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

__all__ = [
    "expected_improvement",
    "maximum_uncertainty",
    "probability_of_improvement",
    "random_scores",
    "thompson_sample",
    "upper_confidence_bound",
]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _standard_normal_pdf(z: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                         xi: float = 0.01) -> np.ndarray:
    """Expected improvement over the best measured value.

    ``EI(x) = (mu - y_best - xi) * Phi(z) + sigma * phi(z)`` with
    ``z = (mu - y_best - xi) / sigma``, where ``Phi`` and ``phi`` are the
    standard normal cumulative distribution and density. Where
    ``sigma = 0`` it is ``max(mu - y_best - xi, 0)``.

    Parameters
    ----------
    mean, std : numpy.ndarray
        (M,) posterior mean ``mu`` and standard deviation ``sigma``.
    best : float
        ``y_best``, the best measured value, in the units of ``mean``.
    xi : float
        Exploration margin (units of ``mean``): larger ``xi`` asks for a
        larger improvement and so favours uncertain candidates.

    Returns
    -------
    numpy.ndarray
        (M,) non-negative expected improvement, units of ``mean``.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = mean - best - xi
    positive = std > 0
    safe_std = np.where(positive, std, 1.0)
    z = gain / safe_std
    improvement = gain * ndtr(z) + safe_std * _standard_normal_pdf(z)
    return np.where(positive, np.maximum(improvement, 0.0), np.maximum(gain, 0.0))


def probability_of_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                               xi: float = 0.01) -> np.ndarray:
    """Probability that a measurement improves on the best measured value.

    ``PI(x) = Phi((mu - y_best - xi) / sigma)``; where ``sigma = 0`` it is 1
    if ``mu > y_best + xi`` and 0 otherwise.

    Parameters
    ----------
    mean, std : numpy.ndarray
        (M,) posterior mean and standard deviation.
    best : float
        ``y_best``, the best measured value, in the units of ``mean``.
    xi : float
        Margin that an improvement must exceed (units of ``mean``).

    Returns
    -------
    numpy.ndarray
        (M,) probabilities in [0, 1].
    """
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = mean - best - xi
    positive = std > 0
    z = gain / np.where(positive, std, 1.0)
    return np.where(positive, ndtr(z), (gain > 0).astype(float))


def upper_confidence_bound(mean: np.ndarray, std: np.ndarray,
                           beta: float = 2.0) -> np.ndarray:
    """Upper confidence bound as the reference paper writes it.

    ``UCB(x) = mu + beta * sigma``.

    Note that botorch (and the reference code) write
    ``UCB(x) = mu + sqrt(beta) * sigma``: ``beta = 2`` here equals
    ``beta = 4`` there.

    Parameters
    ----------
    mean, std : numpy.ndarray
        (M,) posterior mean and standard deviation.
    beta : float
        Weight of the uncertainty (dimensionless, >= 0).

    Returns
    -------
    numpy.ndarray
        (M,) upper confidence bound, units of ``mean``.
    """
    return np.asarray(mean, dtype=float) + beta * np.asarray(std, dtype=float)


def maximum_uncertainty(std: np.ndarray) -> np.ndarray:
    """Maximum uncertainty (MU), pure exploration: ``MU(x) = sigma``.

    Parameters
    ----------
    std : numpy.ndarray
        (M,) posterior standard deviation.

    Returns
    -------
    numpy.ndarray
        (M,) the standard deviation itself.
    """
    return np.asarray(std, dtype=float).copy()


def thompson_sample(sample: np.ndarray) -> np.ndarray:
    """Thompson sampling: ``TS(x) = f~(x)``, one joint posterior sample.

    The argmax of a function drawn from the posterior is measured, so each
    candidate is chosen with the posterior probability that it is the
    maximum. The sample must be a *joint* draw over all candidates (the
    model draws it by pathwise conditioning), not independent marginals.

    Parameters
    ----------
    sample : numpy.ndarray
        (M,) one posterior sample of the latent function.

    Returns
    -------
    numpy.ndarray
        (M,) the sample itself.
    """
    return np.asarray(sample, dtype=float).copy()


def random_scores(n_candidates: int, rng: np.random.Generator) -> np.ndarray:
    """Random choice: ``R(x) ~ U(0, 1)`` independently for every candidate.

    Parameters
    ----------
    n_candidates : int
        M.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    numpy.ndarray
        (M,) uniform scores; the argmax is a uniformly random candidate.
    """
    return rng.random(int(n_candidates))
