"""Run a simulated adaptive experiment end to end: data, devices, RunEngine, Tiled.

This is what ``hae demo`` does, as a function that tests, benchmarks and
notebooks can call: choose a spectrum image (a registered data set, a file,
or the SYNTHETIC twin when the real data cannot be had), build simulated
devices on it, subscribe the Tiled writer, run
:func:`~hae_bluesky.plans.adaptive_experiment`, and return what happened.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import RunEngine

from hae_bluesky.catalog import Catalog, subscribe_tiled_writer
from hae_bluesky.data import (
    DATASETS,
    DataUnavailableError,
    SpectrumImage,
    load_dataset,
    load_hae_npy,
    load_spectrum_image,
    make_plasmonic_twin,
    scalarizer_from_spec,
)
from hae_bluesky.data.twin import EDGE_EV
from hae_bluesky.devices import SimulatedMicroscope
from hae_bluesky.plans import ExperimentControl, StepTimes, adaptive_experiment

logger = logging.getLogger(__name__)

__all__ = [
    "ExperimentResult",
    "TWIN_SCALARIZER",
    "candidate_truth",
    "choose_spectrum_image",
    "resolve_scalarizer",
    "run_simulated_experiment",
    "settings_from_start",
    "true_scalarizer_map",
]

#: Scalarizer for the SYNTHETIC twin: the edge mode's band integral.
TWIN_SCALARIZER = {"kind": "band_integral", "window": [EDGE_EV - 0.05, EDGE_EV + 0.05]}


def choose_spectrum_image(dataset: str, haadf_path: str | None = None,
                          fallback_to_twin: bool = True) -> tuple[SpectrumImage, str | None]:
    """Load a registered data set or a file; fall back to the SYNTHETIC twin.

    Parameters
    ----------
    dataset : str
        A registered name (``"cuzn"``), ``"twin"``, or a file path (any
        RosettaSciIO format, or an hAE dictionary ``.npy``).
    haadf_path : str, optional
        Separate HAADF image for a file path.
    fallback_to_twin : bool
        When a registered data set is neither cached nor downloadable, use
        the twin instead of raising.

    Returns
    -------
    (SpectrumImage, str or None)
        The data and, when it fell back, the one-line reason.
    """
    if dataset == "twin":
        return make_plasmonic_twin((64, 64), seed=0), None
    if dataset in DATASETS:
        try:
            return load_dataset(dataset), None
        except DataUnavailableError as error:
            if not fallback_to_twin:
                raise
            reason = (f"real data set {dataset!r} unavailable ({error}); running on the "
                      "SYNTHETIC plasmonic twin instead")
            return make_plasmonic_twin((64, 64), seed=0), reason
    path = Path(dataset)
    if path.suffix == ".npy":
        return load_hae_npy(path), None
    return load_spectrum_image(path, haadf_path), None


def resolve_scalarizer(value: str | dict[str, Any] | None,
                       spectrum_image: SpectrumImage) -> dict[str, Any]:
    """Turn a preset name, a JSON string or a dict into a validated scalarizer spec.

    ``None`` gives the data set's default (the twin's edge mode for the twin).

    Raises
    ------
    ValueError
        For an unknown preset, bad JSON or a window outside the energy axis.
    """
    presets = DATASETS.get(spectrum_image.metadata.get("dataset", ""))
    if value is None:
        spec = (TWIN_SCALARIZER if spectrum_image.is_synthetic or presets is None
                else presets.scalarizers[presets.default_scalarizer])
    elif isinstance(value, dict):
        spec = value
    elif presets is not None and value in presets.scalarizers:
        spec = presets.scalarizers[value]
    else:
        try:
            spec = json.loads(value)
        except json.JSONDecodeError as error:
            known = ", ".join(presets.scalarizers) if presets else "none"
            if value.lstrip().startswith("{"):
                raise ValueError(f"scalarizer {value!r} is not valid JSON ({error})") from None
            raise ValueError(f"scalarizer {value!r} is neither a preset of this data set "
                             f"({known}) nor a JSON spec") from None
    scalarizer_from_spec(spec).validate(spectrum_image.energy_axis)
    return dict(spec)


def true_scalarizer_map(spectrum_image: SpectrumImage, scalarizer: dict[str, Any]) -> np.ndarray:
    """Scalarizer value at every recorded pixel (ny, nx): the ground truth of a simulation."""
    return scalarizer_from_spec(scalarizer)(spectrum_image.spectra, spectrum_image.energy_axis)


def candidate_truth(spectrum_image: SpectrumImage, scalarizer: dict[str, Any],
                    patch_size: int) -> np.ndarray:
    """True scalarizer map with NaN where no whole patch is centred (ny, nx).

    These are the positions the agent can choose from, so discovery metrics
    (the fraction of the true top-k% found) are computed among them.
    """
    truth = true_scalarizer_map(spectrum_image, scalarizer).astype(float)
    offset, (ny, nx) = patch_size // 2, truth.shape
    candidates = np.zeros(truth.shape, dtype=bool)
    candidates[offset:ny - patch_size + 1 + offset, offset:nx - patch_size + 1 + offset] = True
    return np.where(candidates, truth, np.nan)


@dataclass
class ExperimentResult:
    """What a simulated experiment produced.

    Attributes
    ----------
    uid : str
        Run uid in the catalog.
    reason : str
        Why the loop ended (``budget``, ``exhausted`` or a stop reason).
    agent : DKLAgent
        The final model's agent.
    spectrum_image : SpectrumImage
        The recording the devices replayed.
    scalarizer : dict
        The scalarizer spec at the start.
    step_times : StepTimes
        Per-step agent / device / bookkeeping split.
    wall_seconds : float
        Time of the whole run.
    fallback_reason : str or None
        Set when the SYNTHETIC twin replaced unavailable real data.
    """

    uid: str
    reason: str
    agent: Any
    spectrum_image: SpectrumImage
    scalarizer: dict[str, Any]
    step_times: StepTimes
    wall_seconds: float
    fallback_reason: str | None = None


def settings_from_start(start: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`run_simulated_experiment` that redo a stored run.

    Parameters
    ----------
    start : dict
        The start document of an adaptive experiment (``start["hae"]``).

    Returns
    -------
    dict
        ``scalarizer``, ``policy``, ``patch_size``, ``n_seeds``, ``budget``,
        ``seed``, ``noise`` and ``agent_options``; with the same data set the
        new run repeats the old one (identical trajectory when noise is off).
    """
    hae = start.get("hae")
    if not isinstance(hae, dict) or "scalarizer" not in hae:
        raise ValueError("this start document is not from an adaptive experiment "
                         "(no 'hae' settings)")
    return {"scalarizer": hae["scalarizer"], "policy": hae["policy"],
            "patch_size": int(hae["patch_size"]), "n_seeds": int(hae["n_seeds"]),
            "budget": int(hae["budget"]), "seed": int(hae["seed"]),
            "noise": bool(hae.get("noise", False)),
            "seed_points": hae.get("seed_points"),
            "agent_options": dict(hae.get("agent_options") or {})}


def run_simulated_experiment(
    spectrum_image: SpectrumImage,
    catalog: Catalog | None,
    *,
    scalarizer: dict[str, Any],
    policy: dict[str, Any] | None = None,
    patch_size: int = 5,
    n_seeds: int = 10,
    budget: int = 100,
    seed: int = 0,
    seed_points: list[list[float]] | None = None,
    noise: bool = False,
    agent_options: dict[str, Any] | None = None,
    microscope_options: dict[str, Any] | None = None,
    control: ExperimentControl | None = None,
    callbacks: list[Callable[[str, dict], Any]] | None = None,
    md: dict[str, Any] | None = None,
    run_engine: RunEngine | None = None,
) -> ExperimentResult:
    """Run the adaptive experiment on simulated devices and store it in ``catalog``.

    Parameters
    ----------
    spectrum_image : SpectrumImage
        The recording the simulated devices replay.
    catalog : Catalog or None
        Where the run goes (``None``: nowhere, for benchmarks).
    scalarizer, policy, patch_size, n_seeds, budget, seed, seed_points
        As for :func:`~hae_bluesky.plans.adaptive_experiment`.
    noise : bool
        Poisson noise on the simulated spectra (seeded with ``seed``).
    agent_options : dict, optional
        Extra keyword arguments of the agent.
    microscope_options : dict, optional
        Extra keyword arguments of
        :class:`~hae_bluesky.devices.SimulatedMicroscope` (drift, damage,
        NaN pixels, real-time delays).
    control : ExperimentControl, optional
        Operator handle (interventions, stop).
    callbacks : list, optional
        More callbacks subscribed for the run (progress bars, live views).
    md : dict, optional
        Extra start metadata.
    run_engine : RunEngine, optional
        Use this RunEngine instead of a new one.

    Returns
    -------
    ExperimentResult
    """
    microscope = SimulatedMicroscope(spectrum_image, seed=seed, noise=noise,
                                     **(microscope_options or {}))
    engine = run_engine if run_engine is not None else RunEngine({}, call_returns_result=True)
    tokens = [engine.subscribe(callback) for callback in callbacks or []]
    if catalog is not None:
        tokens.append(subscribe_tiled_writer(engine, catalog))
    control = control if control is not None else ExperimentControl()
    step_times = StepTimes()
    metadata = dict(md or {})
    metadata.setdefault("hae", {}).update(
        dataset=spectrum_image.metadata.get("dataset", spectrum_image.metadata.get("source")),
        synthetic=spectrum_image.is_synthetic, noise=noise,
        image_shape=list(spectrum_image.haadf.shape))

    start = time.perf_counter()
    try:
        result = engine(adaptive_experiment(
            microscope.scan, microscope.haadf, microscope.eels, scalarizer=scalarizer,
            policy=policy, patch_size=patch_size, n_seeds=n_seeds, budget=budget, seed=seed,
            seed_points=seed_points, control=control, agent_options=agent_options,
            step_times=step_times, md=metadata))
    finally:
        for token in tokens:
            engine.unsubscribe(token)
    wall = time.perf_counter() - start
    return ExperimentResult(
        uid=result.run_start_uids[0], reason=result.plan_result, agent=control.last_agent,
        spectrum_image=spectrum_image, scalarizer=scalarizer, step_times=step_times,
        wall_seconds=wall)
