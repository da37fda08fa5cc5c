"""Monitoring metrics of an experimental trace, on plain numpy arrays.

Every function here takes the per-step arrays of one experiment (as read
back from a run, or as produced by a simulation) and returns numbers whose
definition is stated in its docstring. Nothing here knows about Bluesky or
Tiled, so each metric can be checked on hand-made data.

Conventions
-----------
A step ``t = 0, 1, ..., T - 1`` is one agent decision. Positions are pixels
``(row, column)`` of the HAADF image, and ``x = column``, ``y = row``; a
length in nm is the length in pixels times the pixel size in nm (square
pixels). Predictive uncertainty is the model's posterior standard deviation
``sigma_t(k)`` of the scalarizer at patch ``k`` after the model update of
step ``t``, in the units of the scalarizer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Discovery",
    "DistanceTravelled",
    "LearningCurve",
    "best_so_far",
    "discovery",
    "distance_travelled",
    "learning_curve",
    "next_step_uncertainty",
    "top_fraction_found",
    "uncertainty_slope",
]


@dataclass(frozen=True)
class LearningCurve:
    """Mean and dispersion of the predictive uncertainty over all patches, per step.

    Attributes
    ----------
    steps : numpy.ndarray
        (T,) int step numbers.
    mean : numpy.ndarray
        (T,) ``mean_k sigma_t(k)``, in scalarizer units.
    dispersion : numpy.ndarray
        (T,) ``std_k sigma_t(k)`` (population standard deviation over the
        patches), in scalarizer units.
    """

    steps: np.ndarray
    mean: np.ndarray
    dispersion: np.ndarray

    def __post_init__(self) -> None:
        sizes = {np.size(self.steps), np.size(self.mean), np.size(self.dispersion)}
        if len(sizes) != 1:
            raise ValueError(
                "learning curve needs one mean and one dispersion per step; got "
                f"{np.size(self.steps)} steps, {np.size(self.mean)} means and "
                f"{np.size(self.dispersion)} dispersions"
            )

    def __len__(self) -> int:
        return int(np.size(self.steps))

    @property
    def knowledge_gain(self) -> float:
        """Fall of the mean uncertainty from the first to the last step.

        ``mean[0] - mean[-1]`` in scalarizer units (NaN for an empty curve);
        positive when the model has become more certain.
        """
        if len(self) == 0:
            return float("nan")
        return float(self.mean[0] - self.mean[-1])


def learning_curve(
    uncertainty: np.ndarray | Sequence[np.ndarray],
    steps: np.ndarray | Sequence[int] | None = None,
) -> LearningCurve:
    """Summarise the predictive uncertainty over all patches at each step.

    For step ``t`` with uncertainty map ``sigma_t`` over ``M`` patches:

    ``mean_t = (1 / M) * sum_k sigma_t(k)``

    ``dispersion_t = sqrt((1 / M) * sum_k (sigma_t(k) - mean_t) ** 2)``

    Non-finite entries (for example patches a caller masked out) are left
    out of both sums.

    Parameters
    ----------
    uncertainty : numpy.ndarray or sequence of numpy.ndarray
        (T, M) array, or T arrays of M values (maps of any shape are
        flattened), in scalarizer units.
    steps : array-like of int, optional
        (T,) step numbers; ``0 .. T - 1`` when omitted.

    Returns
    -------
    LearningCurve

    Raises
    ------
    ValueError
        If the per-step maps differ in size, a map has no finite value, or
        ``steps`` does not have one entry per map.

    Examples
    --------
    >>> curve = learning_curve([[1.0, 3.0], [1.0, 1.0]])
    >>> curve.mean.tolist(), curve.dispersion.tolist()
    ([2.0, 1.0], [1.0, 0.0])
    """
    maps = [np.asarray(values, dtype=float).ravel() for values in uncertainty]
    if len({values.size for values in maps}) > 1:
        raise ValueError(
            "every step's uncertainty map must cover the same patches; got sizes "
            f"{sorted({values.size for values in maps})}"
        )
    stacked = np.vstack(maps) if maps else np.empty((0, 0))
    finite = np.isfinite(stacked)
    empty_steps = np.flatnonzero(~finite.any(axis=1))
    if empty_steps.size:
        raise ValueError(
            f"uncertainty map of step index {int(empty_steps[0])} has no finite value"
        )
    steps_array = _steps(steps, len(maps))

    count = finite.sum(axis=1)
    filled = np.where(finite, stacked, 0.0)
    mean = filled.sum(axis=1) / count if len(maps) else np.empty(0)
    deviation = np.where(finite, stacked - mean[:, None], 0.0)
    dispersion = np.sqrt((deviation**2).sum(axis=1) / count) if len(maps) else np.empty(0)
    return LearningCurve(steps=steps_array, mean=mean, dispersion=dispersion)


def next_step_uncertainty(
    uncertainty: np.ndarray | Sequence[np.ndarray],
    chosen: np.ndarray | Sequence[int],
) -> np.ndarray:
    """Return the predicted uncertainty at the position chosen at each step.

    ``u_t = sigma_t(k_t)``, where ``k_t`` is the patch index the policy
    chose at step ``t`` and ``sigma_t`` the uncertainty map the choice was
    made from. A falling series means the agent is learning where it looks;
    a flat or noisy one that it keeps choosing places it cannot resolve.
    (The run's ``decisions`` stream records ``u_t`` directly as
    ``next_uncertainty``.)

    Parameters
    ----------
    uncertainty : numpy.ndarray or sequence of numpy.ndarray
        (T, M) uncertainty maps over the patches, in scalarizer units.
    chosen : array-like of int
        (T,) patch index chosen at each step.

    Returns
    -------
    numpy.ndarray
        (T,) float, in scalarizer units.

    Raises
    ------
    ValueError
        If the numbers of steps differ or a patch index is out of range.
    """
    maps = np.asarray([np.asarray(values, dtype=float).ravel() for values in uncertainty])
    chosen = np.asarray(chosen, dtype=int).ravel()
    if maps.shape[0] != chosen.size:
        raise ValueError(
            f"got {maps.shape[0]} uncertainty maps but {chosen.size} chosen patch indices"
        )
    if chosen.size and (chosen.min() < 0 or chosen.max() >= maps.shape[1]):
        raise ValueError(
            f"chosen patch indices must lie in 0-{maps.shape[1] - 1}; got "
            f"{int(chosen.min())}-{int(chosen.max())}"
        )
    return maps[np.arange(chosen.size), chosen]


def uncertainty_slope(values: np.ndarray | Sequence[float]) -> float:
    """Least-squares slope of a series against its step number.

    ``slope = sum_t (t - t_mean) * (u_t - u_mean) / sum_t (t - t_mean) ** 2``
    over the finite entries, in units of ``u`` per step. A negative slope
    means the series is falling.

    Parameters
    ----------
    values : array-like of float
        (T,) series, for example next-step uncertainty, one value per step.

    Returns
    -------
    float
        The slope; NaN when fewer than two entries are finite.
    """
    values = np.asarray(values, dtype=float).ravel()
    step = np.arange(values.size, dtype=float)
    finite = np.isfinite(values)
    if finite.sum() < 2:
        return float("nan")
    step, values = step[finite], values[finite]
    centred = step - step.mean()
    return float(np.dot(centred, values - values.mean()) / np.dot(centred, centred))


@dataclass(frozen=True)
class DistanceTravelled:
    """Path length of the beam through the sequence of measured positions.

    Attributes
    ----------
    step_pixels : numpy.ndarray
        (T,) length of the move that reached each position, in pixels; 0 for
        the first position.
    cumulative_pixels : numpy.ndarray
        (T,) distance travelled up to and including each position, pixels.
    pixel_size_nm : float
        Pixel size used for the nm values.
    """

    step_pixels: np.ndarray
    cumulative_pixels: np.ndarray
    pixel_size_nm: float

    @property
    def cumulative_nm(self) -> np.ndarray:
        """(T,) cumulative distance in nm."""
        return self.cumulative_pixels * self.pixel_size_nm

    @property
    def total_pixels(self) -> float:
        """Whole path length in pixels (0 for fewer than two positions)."""
        return float(self.cumulative_pixels[-1]) if self.cumulative_pixels.size else 0.0

    @property
    def total_nm(self) -> float:
        """Whole path length in nm."""
        return self.total_pixels * self.pixel_size_nm


def distance_travelled(
    rows: np.ndarray | Sequence[float],
    columns: np.ndarray | Sequence[float],
    pixel_size_nm: float = 1.0,
) -> DistanceTravelled:
    """Cumulative Euclidean distance between consecutive positions.

    ``D_t = sum_{i=1}^{t} sqrt((x_i - x_{i-1}) ** 2 + (y_i - y_{i-1}) ** 2)``

    with ``x = column`` and ``y = row`` in pixels; ``D_0 = 0``. In nm,
    ``D_t`` is multiplied by the pixel size. A short path for many steps
    means the trajectory stayed in one region; a long one, that it kept
    jumping across the field of view.

    Parameters
    ----------
    rows, columns : array-like
        (T,) pixel coordinates of the measured positions, in order.
    pixel_size_nm : float
        Size of one (square) pixel in nm.

    Returns
    -------
    DistanceTravelled

    Raises
    ------
    ValueError
        If rows and columns differ in length, a coordinate is not finite, or
        the pixel size is not positive.

    Examples
    --------
    >>> distance_travelled([0, 3, 3], [0, 4, 0], pixel_size_nm=0.5).total_nm
    4.5
    """
    rows = np.asarray(rows, dtype=float).ravel()
    columns = np.asarray(columns, dtype=float).ravel()
    if rows.size != columns.size:
        raise ValueError(f"got {rows.size} rows but {columns.size} columns")
    if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(columns))):
        raise ValueError("positions must be finite pixel coordinates")
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm} nm")

    moves = np.hypot(np.diff(rows), np.diff(columns))
    step_pixels = np.concatenate([np.zeros(min(rows.size, 1)), moves])
    return DistanceTravelled(
        step_pixels=step_pixels,
        cumulative_pixels=np.cumsum(step_pixels),
        pixel_size_nm=float(pixel_size_nm),
    )


def best_so_far(values: np.ndarray | Sequence[float], maximize: bool = True) -> np.ndarray:
    """Best scalarizer value measured up to each step.

    ``b_t = max_{i <= t} P_i`` (or ``min`` when ``maximize`` is false),
    ignoring NaN values (bad spectra); NaN until the first finite value.

    Parameters
    ----------
    values : array-like of float
        (T,) scalarizer values in measurement order.
    maximize : bool
        True when larger scalarizer values are better.

    Returns
    -------
    numpy.ndarray
        (T,) float.

    Examples
    --------
    >>> best_so_far([float("nan"), 1.0, 0.5, 2.0]).tolist()
    [nan, 1.0, 1.0, 2.0]
    """
    values = np.asarray(values, dtype=float).ravel()
    signed = values if maximize else -values
    filled = np.where(np.isnan(signed), -np.inf, signed)
    running = np.maximum.accumulate(filled) if values.size else filled
    running = np.where(np.isneginf(running), np.nan, running)
    return running if maximize else -running


def _top_mask(true_map: np.ndarray, top_percent: float) -> np.ndarray:
    if not 0 < top_percent <= 100:
        raise ValueError(f"top percentage must be in (0, 100], got {top_percent}")
    finite = np.isfinite(true_map)
    count = int(finite.sum())
    if count == 0:
        raise ValueError("the true scalarizer map has no finite value")
    size = max(1, int(np.ceil(count * top_percent / 100.0)))
    candidates = np.flatnonzero(finite.ravel())
    order = np.argsort(-true_map.ravel()[candidates], kind="stable")
    mask = np.zeros(true_map.size, dtype=bool)
    mask[candidates[order[:size]]] = True
    return mask.reshape(true_map.shape)


def top_fraction_found(
    rows: np.ndarray | Sequence[int],
    columns: np.ndarray | Sequence[int],
    true_map: np.ndarray,
    top_percent: float = 5.0,
) -> np.ndarray:
    """Fraction of the true top-k% positions measured by each step.

    With ``Q`` the set of the ``ceil(K * k / 100)`` positions of largest
    true scalarizer value among the ``K`` finite entries of the true map
    (ties broken by position in row-major order), and ``V_t`` the set of
    positions measured up to step ``t``:

    ``f_t = |Q intersect V_t| / |Q|``

    This needs the complete scalarizer map, so it is a simulation metric.

    Parameters
    ----------
    rows, columns : array-like of int
        (T,) measured positions in pixels, in order, in the frame of
        ``true_map``.
    true_map : numpy.ndarray
        (ny, nx) true scalarizer value at every pixel; NaN where a pixel is
        not a candidate (for example within N // 2 of the edge).
    top_percent : float
        k, in percent of the candidate positions.

    Returns
    -------
    numpy.ndarray
        (T,) float in [0, 1], non-decreasing.

    Raises
    ------
    ValueError
        If the map is not 2-D, has no finite value, ``top_percent`` is not in
        (0, 100], or a position lies outside the map.
    """
    true_map = np.asarray(true_map, dtype=float)
    if true_map.ndim != 2:
        raise ValueError(f"true scalarizer map must be 2-D (ny, nx), got {true_map.shape}")
    rows = np.asarray(rows, dtype=int).ravel()
    columns = np.asarray(columns, dtype=int).ravel()
    if rows.size != columns.size:
        raise ValueError(f"got {rows.size} rows but {columns.size} columns")
    ny, nx = true_map.shape
    outside = (rows < 0) | (rows >= ny) | (columns < 0) | (columns >= nx)
    if np.any(outside):
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"position {first} (row={rows[first]}, column={columns[first]}) lies outside "
            f"the {ny} x {nx} true scalarizer map"
        )

    top = _top_mask(true_map, top_percent)
    flat = rows * nx + columns
    _, first_visit = np.unique(flat, return_index=True)
    newly_found = np.zeros(rows.size, dtype=float)
    newly_found[first_visit] = top.ravel()[flat[first_visit]]
    return np.cumsum(newly_found) / top.sum()


@dataclass(frozen=True)
class Discovery:
    """How fast an experiment found the high scalarizer values.

    Attributes
    ----------
    best_so_far : numpy.ndarray
        (T,) best measured scalarizer value up to each step.
    fraction_found : numpy.ndarray or None
        (T,) fraction of the true top-k% positions measured by each step;
        None without a true map.
    top_percent : float
        k in percent.
    top_count : int
        Number of positions in the true top-k% set (0 without a true map).
    """

    best_so_far: np.ndarray
    fraction_found: np.ndarray | None
    top_percent: float
    top_count: int


def discovery(
    values: np.ndarray | Sequence[float],
    rows: np.ndarray | Sequence[int] | None = None,
    columns: np.ndarray | Sequence[int] | None = None,
    true_map: np.ndarray | None = None,
    top_percent: float = 5.0,
    maximize: bool = True,
) -> Discovery:
    """Best value so far and, in simulation, the fraction of top positions found.

    See :func:`best_so_far` and :func:`top_fraction_found` for the
    definitions.

    Parameters
    ----------
    values : array-like of float
        (T,) measured scalarizer values in order (NaN for a bad spectrum).
    rows, columns : array-like of int, optional
        (T,) measured positions in pixels; needed with ``true_map``.
    true_map : numpy.ndarray, optional
        (ny, nx) true scalarizer map (simulation only).
    top_percent : float
        k for the top-k% set, in percent.
    maximize : bool
        True when larger scalarizer values are better.

    Returns
    -------
    Discovery

    Raises
    ------
    ValueError
        If ``true_map`` is given without positions, or positions and values
        differ in length.
    """
    best = best_so_far(values, maximize=maximize)
    if true_map is None:
        return Discovery(best_so_far=best, fraction_found=None,
                         top_percent=float(top_percent), top_count=0)
    if rows is None or columns is None:
        raise ValueError("the fraction of top positions found needs rows and columns")
    if np.size(rows) != best.size:
        raise ValueError(f"got {best.size} values but {np.size(rows)} positions")
    map_array = np.asarray(true_map, dtype=float)
    signed = map_array if maximize else -map_array
    fraction = top_fraction_found(rows, columns, signed, top_percent)
    return Discovery(
        best_so_far=best,
        fraction_found=fraction,
        top_percent=float(top_percent),
        top_count=int(_top_mask(signed, top_percent).sum()),
    )


def _steps(steps: np.ndarray | Sequence[int] | None, count: int) -> np.ndarray:
    if steps is None:
        return np.arange(count)
    steps = np.asarray(steps, dtype=int).ravel()
    if steps.size != count:
        raise ValueError(f"got {steps.size} step numbers for {count} steps")
    return steps
