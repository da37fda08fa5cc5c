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
from scipy.special import erfcx, log_ndtr, ndtr

__all__ = [
    "expected_improvement",
    "log_expected_improvement",
    "log_probability_of_improvement",
    "maximum_uncertainty",
    "probability_of_improvement",
    "random_scores",
    "thompson_sample",
    "upper_confidence_bound",
]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_SQRT_HALF_PI = np.sqrt(0.5 * np.pi)
#: Beyond this ``|z|`` the tail of ``log h(z)`` uses its asymptotic series.
_ASYMPTOTIC_Z = 1e4


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


def log_expected_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                             xi: float = 0.01) -> np.ndarray:
    """Natural logarithm of the expected improvement, without underflow.

    ``log EI(x) = log(sigma) + log h(z)`` with ``z = (mu - y_best - xi) / sigma``
    and ``h(z) = phi(z) + z * Phi(z)`` (so ``EI = sigma * h(z)``, as in
    :func:`expected_improvement`). For ``z <= -1``,
    ``h(z) = phi(z) * (1 - t * R(t))`` with ``t = -z`` and the Mills ratio
    ``R(t) = Phi(-t) / phi(t) = sqrt(pi / 2) * erfcx(t / sqrt(2))``, and for
    ``t > 1e4`` the asymptotic ``1 - t * R(t) = t^-2 * (1 - 3 t^-2)``.
    Where ``sigma = 0`` it is ``log(max(mu - y_best - xi, 0))`` (``-inf`` when
    there is no gain).

    EI itself underflows to 0 once the best measured value lies more than
    about 38 standard deviations above the mean, which happens when a model
    is confident and a measurement was lucky; every candidate then scores 0
    and the choice is arbitrary. ``log EI`` keeps the order there, and has
    the same argmax as EI everywhere else.

    Parameters
    ----------
    mean, std : numpy.ndarray
        (M,) posterior mean ``mu`` and standard deviation ``sigma``.
    best : float
        ``y_best``, the best measured value, in the units of ``mean``.
    xi : float
        Exploration margin (units of ``mean``).

    Returns
    -------
    numpy.ndarray
        (M,) ``log EI`` (EI in the units of ``mean``).

    Examples
    --------
    >>> import numpy as np
    >>> float(np.exp(log_expected_improvement(np.array([0.0]), np.array([1.0]), 0.0, 0.0)[0]))
    0.3989422804014327
    >>> bool(np.isfinite(log_expected_improvement(np.array([0.0]), np.array([1.0]), 50.0)[0]))
    True
    """
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = mean - best - xi
    positive = std > 0
    safe_std = np.where(positive, std, 1.0)
    with np.errstate(divide="ignore"):
        log_gain = np.log(np.maximum(gain, 0.0))
    return np.where(positive, np.log(safe_std) + _log_h(gain / safe_std), log_gain)


def _log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z * Phi(z))``, accurate for very negative ``z``."""
    z = np.asarray(z, dtype=float)
    result = np.empty_like(z)
    near = z > -1.0
    result[near] = np.log(z[near] * ndtr(z[near]) + _standard_normal_pdf(z[near]))
    t = -z[~near]
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.where(t > _ASYMPTOTIC_Z, t ** -2.0 * (1.0 - 3.0 * t ** -2.0),
                        1.0 - t * _SQRT_HALF_PI * erfcx(t / np.sqrt(2.0)))
    result[~near] = -0.5 * t * t - _LOG_SQRT_2PI + np.log(tail)
    return result


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


def log_probability_of_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                                   xi: float = 0.01) -> np.ndarray:
    """Natural logarithm of the probability of improvement, without underflow.

    ``log PI(x) = log Phi((mu - y_best - xi) / sigma)`` (scipy's ``log_ndtr``,
    accurate far into the tail); where ``sigma = 0`` it is 0 if
    ``mu > y_best + xi`` and ``-inf`` otherwise. Same argmax as
    :func:`probability_of_improvement` wherever that does not underflow.

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
        (M,) log probabilities, at most 0.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = mean - best - xi
    positive = std > 0
    z = gain / np.where(positive, std, 1.0)
    return np.where(positive, log_ndtr(z), np.where(gain > 0, 0.0, -np.inf))


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
