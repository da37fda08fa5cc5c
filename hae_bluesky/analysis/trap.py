"""Trap detector: is the experiment stuck in one region of the sample?

An automated experiment is *trapped* when the policy keeps measuring in one
small region (or keeps coming back to places it has already measured) while
the model no longer learns from it. At step ``t`` the detector looks at the
window ``W_t`` of the last ``w`` chosen positions ``p_i = (row_i, column_i)``
in pixels and their next-step uncertainties ``u_i``, and computes:

confinement radius
    ``r_t = max_{i in W_t} || p_i - c_t ||`` with ``c_t`` the mean position
    of the window, in pixels.
revisits
    ``n_t``: how many positions of the window lie within ``revisit_radius``
    pixels of a position chosen at least ``revisit_lag`` steps before them.
    The lag keeps a trajectory that creeps from pixel to neighbouring pixel
    from counting as returning.
uncertainty slope
    ``s_t``: least-squares slope of ``u_i`` over the window, per step (see
    :func:`hae_bluesky.analysis.metrics.uncertainty_slope`), and the
    relative slope ``s_t / median_{i in W_t} |u_i|``.

The trajectory is flagged at step ``t`` when the window is full and

``(r_t <= max_radius or n_t >= min_revisits) and s_t / median|u| >= -max_relative_fall``

that is, it is confined or revisiting *and* the next-step uncertainty falls
by less than ``max_relative_fall`` of its typical size per step. Without any
finite uncertainty in the window the position evidence decides alone.

The defaults suit maps of about 50 x 40 pixels explored in about 100 steps:
a 10-step window, a confinement radius of 3 pixels (ten positions inside a
disc of about 28 pixels, under 2 % of such a map), revisits within 1 pixel
(a 4-neighbour of an earlier position) for at least 6 of the 10, and an
uncertainty that falls by less than 1 % per step.

Used live, :class:`TrapDetector` takes one step at a time and returns an
alert only on the step a trap begins; it re-arms once the condition has
been clear for a whole window. :func:`detect_traps` runs it over a whole
experimental trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hae_bluesky.analysis.metrics import uncertainty_slope

logger = logging.getLogger(__name__)

__all__ = ["TrapAlert", "TrapDetector", "TrapEvidence", "detect_traps"]


@dataclass(frozen=True)
class TrapEvidence:
    """What the detector measured on the window ending at one step.

    Attributes
    ----------
    step : int
        Step number at the end of the window.
    window : int
        Number of positions in the window.
    radius_pixels : float
        Confinement radius ``r_t`` in pixels (see the module docstring).
    revisits : int
        Positions of the window within the revisit radius of an earlier one.
    uncertainty_slope : float
        Least-squares slope of the next-step uncertainty over the window, in
        scalarizer units per step (NaN without uncertainty).
    relative_uncertainty_slope : float
        ``uncertainty_slope / median |u|`` over the window, per step.
    confined : bool
        ``radius_pixels <= max_radius``.
    revisiting : bool
        ``revisits >= min_revisits``.
    uncertainty_stalled : bool
        The relative slope is at or above ``-max_relative_fall`` (or no
        uncertainty was available).
    """

    step: int
    window: int
    radius_pixels: float
    revisits: int
    uncertainty_slope: float
    relative_uncertainty_slope: float
    confined: bool
    revisiting: bool
    uncertainty_stalled: bool

    @property
    def trapped(self) -> bool:
        """True when the trap condition holds for this window."""
        return (self.confined or self.revisiting) and self.uncertainty_stalled


@dataclass(frozen=True)
class TrapAlert:
    """A trap found at one step, with the evidence behind it.

    Attributes
    ----------
    step : int
        Step at which the trap condition first held.
    row, column : int
        Position chosen at that step, pixels.
    evidence : TrapEvidence
        The measurements on the window ending at ``step``.
    pixel_size_nm : float
        Pixel size used for :attr:`radius_nm`.
    """

    step: int
    row: int
    column: int
    evidence: TrapEvidence
    pixel_size_nm: float = 1.0

    @property
    def radius_nm(self) -> float:
        """Confinement radius of the window in nm."""
        return self.evidence.radius_pixels * self.pixel_size_nm

    @property
    def reason(self) -> str:
        """Which position evidence fired: confined, revisiting, or both."""
        parts = [name for name, flag in (("confined", self.evidence.confined),
                                         ("revisiting", self.evidence.revisiting)) if flag]
        return " and ".join(parts)

    def message(self) -> str:
        """One line for the operator's log."""
        evidence = self.evidence
        return (
            f"experiment looks trapped at step {self.step} near pixel (row={self.row}, "
            f"column={self.column}): {self.reason}; last {evidence.window} positions within "
            f"{evidence.radius_pixels:.1f} px ({self.radius_nm:.2f} nm) of their centre, "
            f"{evidence.revisits} revisits, next-step uncertainty slope "
            f"{evidence.uncertainty_slope:.3g} per step "
            f"({100 * evidence.relative_uncertainty_slope:+.1f} % per step)"
        )


class TrapDetector:
    """Watch a trajectory one step at a time and say when it becomes trapped.

    Parameters
    ----------
    window : int
        w, number of most recent steps examined (default 10).
    max_radius : float
        Confinement radius in pixels at or below which the window counts as
        confined (default 3.0).
    revisit_radius : float
        Distance in pixels within which a position counts as a return to an
        earlier one (default 1.0).
    revisit_lag : int
        Only positions chosen at least this many steps earlier count for a
        revisit (default 2).
    min_revisits : int, optional
        Revisits in the window needed to count as revisiting; by default
        ``round(0.6 * window)`` (6 for the default window of 10).
    max_relative_fall : float
        The uncertainty counts as still falling while its relative slope is
        below ``-max_relative_fall`` per step (default 0.01, 1 % per step).
    pixel_size_nm : float
        Pixel size, for the nm values in alerts (default 1.0).

    Raises
    ------
    ValueError
        For a window under 3 steps, a negative radius, lag or tolerance, or
        ``min_revisits`` outside 1 .. window.

    Examples
    --------
    >>> detector = TrapDetector(window=3, max_radius=1.0)
    >>> [detector.update(10, 10 + step % 2, 0.5) for step in range(4)][2].step
    2
    """

    def __init__(
        self,
        window: int = 10,
        max_radius: float = 3.0,
        revisit_radius: float = 1.0,
        revisit_lag: int = 2,
        min_revisits: int | None = None,
        max_relative_fall: float = 0.01,
        pixel_size_nm: float = 1.0,
    ) -> None:
        if window < 3:
            raise ValueError(f"trap window must be at least 3 steps, got {window}")
        if min(max_radius, revisit_radius, max_relative_fall) < 0 or revisit_lag < 1:
            raise ValueError(
                "trap radii and uncertainty tolerance must be non-negative and the revisit "
                f"lag at least 1; got max_radius={max_radius}, revisit_radius="
                f"{revisit_radius}, max_relative_fall={max_relative_fall}, "
                f"revisit_lag={revisit_lag}"
            )
        if min_revisits is None:
            min_revisits = max(1, round(0.6 * window))
        if not 1 <= min_revisits <= window:
            raise ValueError(f"min_revisits must be in 1-{window}, got {min_revisits}")
        self.window = int(window)
        self.max_radius = float(max_radius)
        self.revisit_radius = float(revisit_radius)
        self.revisit_lag = int(revisit_lag)
        self.min_revisits = int(min_revisits)
        self.max_relative_fall = float(max_relative_fall)
        self.pixel_size_nm = float(pixel_size_nm)
        self.reset()

    def reset(self) -> None:
        """Forget the trajectory and every alert (for a new run)."""
        self._positions: list[tuple[float, float]] = []
        self._steps: list[int] = []
        self._uncertainty: list[float] = []
        self._revisit: list[bool] = []
        self._armed = True
        self._clear_steps = 0
        self.alerts: list[TrapAlert] = []
        self.latest: TrapEvidence | None = None

    def update(
        self,
        row: float,
        column: float,
        next_uncertainty: float = float("nan"),
        step: int | None = None,
    ) -> TrapAlert | None:
        """Add one chosen position; return an alert if a trap begins here.

        Parameters
        ----------
        row, column : float
            Position chosen at this step, pixels.
        next_uncertainty : float
            Predicted uncertainty at that position (NaN when unknown).
        step : int, optional
            Step number; the count of updates so far when omitted.

        Returns
        -------
        TrapAlert or None
            An alert on the first step of a trap, None otherwise (also on the
            later steps of the same trap).
        """
        step = len(self._steps) if step is None else int(step)
        position = (float(row), float(column))
        self._revisit.append(self._is_revisit(position))
        self._positions.append(position)
        self._steps.append(step)
        self._uncertainty.append(float(next_uncertainty))
        if len(self._positions) < self.window:
            return None

        evidence = self._evidence()
        self.latest = evidence
        logger.debug("trap evidence at step %d: %s", step, evidence)
        if not evidence.trapped:
            self._clear_steps += 1
            if self._clear_steps >= self.window:
                self._armed = True
            return None
        self._clear_steps = 0
        if not self._armed:
            return None

        self._armed = False
        alert = TrapAlert(step=step, row=int(round(position[0])),
                          column=int(round(position[1])), evidence=evidence,
                          pixel_size_nm=self.pixel_size_nm)
        self.alerts.append(alert)
        return alert

    def _is_revisit(self, position: tuple[float, float]) -> bool:
        earlier = self._positions[: max(0, len(self._positions) - self.revisit_lag + 1)]
        if not earlier:
            return False
        distance = np.hypot(*(np.asarray(earlier) - position).T)
        return bool(distance.min() <= self.revisit_radius)

    def _evidence(self) -> TrapEvidence:
        positions = np.asarray(self._positions[-self.window:])
        radius = float(np.hypot(*(positions - positions.mean(axis=0)).T).max())
        revisits = int(sum(self._revisit[-self.window:]))
        uncertainty = np.asarray(self._uncertainty[-self.window:])
        slope = uncertainty_slope(uncertainty)
        finite = np.isfinite(uncertainty)
        scale = float(np.median(np.abs(uncertainty[finite]))) if finite.any() else np.nan
        relative = slope / scale if scale > 0 else (0.0 if np.isfinite(slope) else np.nan)
        stalled = bool(np.isnan(relative) or relative >= -self.max_relative_fall)
        return TrapEvidence(
            step=self._steps[-1],
            window=self.window,
            radius_pixels=radius,
            revisits=revisits,
            uncertainty_slope=slope,
            relative_uncertainty_slope=float(relative),
            confined=radius <= self.max_radius,
            revisiting=revisits >= self.min_revisits,
            uncertainty_stalled=stalled,
        )


def detect_traps(
    rows: np.ndarray | Sequence[float],
    columns: np.ndarray | Sequence[float],
    next_uncertainty: np.ndarray | Sequence[float] | None = None,
    steps: np.ndarray | Sequence[int] | None = None,
    **parameters: float,
) -> list[TrapAlert]:
    """Run the trap detector over a whole trajectory.

    Parameters
    ----------
    rows, columns : array-like
        (T,) chosen positions in pixels, in step order.
    next_uncertainty : array-like, optional
        (T,) predicted uncertainty at each chosen position; without it the
        position evidence decides alone.
    steps : array-like of int, optional
        (T,) step numbers; ``0 .. T - 1`` when omitted.
    **parameters
        Passed to :class:`TrapDetector` (``window``, ``max_radius``, ...).

    Returns
    -------
    list of TrapAlert
        One alert per trap episode, in step order; empty when the run was
        never trapped.

    Raises
    ------
    ValueError
        If the arrays differ in length.
    """
    rows = np.asarray(rows, dtype=float).ravel()
    columns = np.asarray(columns, dtype=float).ravel()
    count = rows.size
    uncertainty = (np.full(count, np.nan) if next_uncertainty is None
                   else np.asarray(next_uncertainty, dtype=float).ravel())
    step_numbers = np.arange(count) if steps is None else np.asarray(steps, dtype=int).ravel()
    if not columns.size == uncertainty.size == step_numbers.size == count:
        raise ValueError(
            f"trajectory arrays differ in length: {count} rows, {columns.size} columns, "
            f"{uncertainty.size} uncertainties, {step_numbers.size} steps"
        )

    detector = TrapDetector(**parameters)
    for row, column, value, step in zip(rows, columns, uncertainty, step_numbers,
                                        strict=True):
        detector.update(row, column, value, step=int(step))
    return list(detector.alerts)
