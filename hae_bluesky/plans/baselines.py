"""Baselines with the adaptive experiment's devices and streams: grid and random order."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np

from hae_bluesky.data.scalarizers import scalarizer_from_spec
from hae_bluesky.plans.adaptive import measure_at, versions
from hae_bluesky.plans.records import MEASUREMENT_FIELDS, SoftRecord

__all__ = ["grid_experiment", "random_experiment"]


def _pixels_run(scan, haadf, eels, pixels: Sequence[tuple[int, int]], scalarizer, plan_name,
                md, settings) -> Generator[Any, Any, int]:
    energy_axis = np.asarray(eels.energy_axis.get(), dtype=float)
    pixel_size_nm = float(haadf.pixel_size.get())
    scalarize = scalarizer_from_spec(scalarizer) if scalarizer else None
    if scalarize is not None:
        scalarize.validate(energy_axis)
    metadata = dict(md or {})
    hae = {"pixel_size_nm": pixel_size_nm, "scalarizer": scalarizer, "versions": versions(),
           **settings}
    hae.update(metadata.pop("hae", {}))
    metadata.update(plan_name=plan_name, hae=hae)
    info = SoftRecord(MEASUREMENT_FIELDS)

    yield from bps.open_run(md=metadata)
    yield from bps.trigger_and_read([haadf], name="haadf")
    for step, (row, column) in enumerate(pixels):
        yield from bps.checkpoint()
        yield from measure_at(
            scan, eels, (column * pixel_size_nm, row * pixel_size_nm), info,
            {"step": step, "row": row, "column": column},
            None if scalarize is None else (lambda s: scalarize(s, energy_axis)))
    yield from bps.close_run(exit_status="success", reason="budget")
    return len(pixels)


def grid_experiment(scan, haadf, eels, *, scalarizer: dict[str, Any] | None = None,
                    step: int = 1, budget: int | None = None,
                    md: dict[str, Any] | None = None) -> Generator[Any, Any, int]:
    """Measure a rectangular grid, row by row, as one run.

    Parameters
    ----------
    scan, haadf, eels
        The devices of :func:`~hae_bluesky.plans.adaptive_experiment`.
    scalarizer : dict, optional
        Scalarizer spec stored with each measurement as ``scalarizer_value``.
    step : int
        Take every ``step``-th pixel along x and y (1: the full grid).
    budget : int, optional
        Stop after this many measurements.
    md : dict, optional
        Extra start-document metadata.

    Yields
    ------
    Msg

    Returns
    -------
    int
        Number of measurements.
    """
    if int(step) != step or step < 1:
        raise ValueError(f"grid step must be a positive number of pixels, got {step}")
    ny, nx = scan.grid.shape
    pixels = [(row, column) for row in range(0, ny, step) for column in range(0, nx, step)]
    pixels = pixels[:budget] if budget is not None else pixels
    return (yield from _pixels_run(scan, haadf, eels, pixels, scalarizer, "grid_experiment",
                                   md, {"step": step, "budget": len(pixels)}))


def random_experiment(scan, haadf, eels, *, budget: int, seed: int = 0,
                      scalarizer: dict[str, Any] | None = None,
                      md: dict[str, Any] | None = None) -> Generator[Any, Any, int]:
    """Measure ``budget`` distinct pixels in a seeded random order, as one run.

    Parameters
    ----------
    scan, haadf, eels
        The devices of :func:`~hae_bluesky.plans.adaptive_experiment`.
    budget : int
        Number of measurements (at most the number of pixels).
    seed : int
        Seed of the order.
    scalarizer : dict, optional
        Scalarizer spec stored with each measurement.
    md : dict, optional
        Extra start-document metadata.

    Yields
    ------
    Msg

    Returns
    -------
    int
        Number of measurements.
    """
    ny, nx = scan.grid.shape
    if not 0 < budget <= ny * nx:
        raise ValueError(f"budget must be 1 to {ny * nx} measurements, got {budget}")
    order = np.random.default_rng(seed).choice(ny * nx, size=budget, replace=False)
    pixels = [(int(i) // nx, int(i) % nx) for i in order]
    return (yield from _pixels_run(scan, haadf, eels, pixels, scalarizer, "random_experiment",
                                   md, {"seed": seed, "budget": budget}))
