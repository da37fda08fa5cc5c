"""Forensics on recorded experiments: what would have happened, and how good was the model.

Everything here works on a run already in the catalog and on the recording
it was run on; no microscope is involved. Each function stores its result as
a *new* run in the same catalog, whose start document links back to the
original::

    start["hae_forensics"] = {"kind": "...", "original_uid": "<uid of the original>", ...}

so the forensics of an experiment are found again with
:func:`find_forensics` and never overwrite the original trace.

- :func:`counterfactual_replay`: the original positions, in the same order,
  measured again on the recording under another scalarizer, with the agent
  re-fitted at every step, so the ``decisions`` stream shows what the model
  would have believed along the same trajectory.
- :func:`random_baseline`: the same seed points and budget, the rest of the
  positions drawn at random among the candidates (the random policy).
- :func:`compare_models`: the live model (from the stored decisions), the
  final model (trained on every position of the run) and the complete
  model (trained on every candidate position of the recording), each
  compared with the truth; a :class:`ModelComparison` of numbers.

The replays reuse :func:`~hae_bluesky.experiment.run_simulated_experiment`,
so they run the same plan, devices and agent as the original.

Conventions
-----------
Positions are pixels ``(row, column)`` of the HAADF image, beam positions
``(x, y)`` in nm with ``x = column * pixel size``. Uncertainty is the
predictive standard deviation ``sigma(k)`` of the scalarizer at patch
``k``, error the predicted mean minus the true scalarizer value, both in
scalarizer units. The truth is the scalarizer of the recorded (noise-free)
spectrum at each pixel, so model comparison is a simulation metric.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
from bluesky import RunEngine

from hae_bluesky.agent import DKLAgent
from hae_bluesky.analysis.figures import haadf_image
from hae_bluesky.analysis.runs import RunRecord, load_run
from hae_bluesky.catalog import Catalog, subscribe_tiled_writer
from hae_bluesky.data import SpectrumImage
from hae_bluesky.devices import ArraySignal
from hae_bluesky.experiment import (
    candidate_truth,
    choose_spectrum_image,
    resolve_scalarizer,
    run_simulated_experiment,
    settings_from_start,
    true_scalarizer_map,
)
from hae_bluesky.plans import ExperimentControl
from hae_bluesky.plans.records import SoftRecord, read_record, to_json

logger = logging.getLogger(__name__)

__all__ = [
    "FORENSICS_KEY",
    "ForensicRun",
    "ModelComparison",
    "ModelQuality",
    "compare_models",
    "complete_model",
    "counterfactual_replay",
    "final_model",
    "find_forensics",
    "random_baseline",
    "recording_for",
    "scalarizer_at_end",
]

#: Start-document key of a forensic run: ``{"kind", "original_uid", ...}``.
FORENSICS_KEY = "hae_forensics"

#: User name written into the ``interventions`` stream of a replay.
REPLAY_USER = "hae forensics"

_STREAMS = ("haadf", "measurements", "decisions", "interventions")


@dataclass(frozen=True)
class ForensicRun:
    """A forensic run stored in the catalog.

    Attributes
    ----------
    uid : str
        Start uid of the new run.
    kind : str
        ``"counterfactual_replay"`` or ``"random_baseline"``.
    original_uid : str
        Start uid of the run it was made from.
    reason : str
        Why the new run ended (``budget``, ``exhausted``, ...).
    mismatched_steps : tuple of int
        Measurement numbers (0-based, seed points first) where a replay did
        not measure the original position; empty when it followed the
        original exactly (always empty for a random baseline).
    """

    uid: str
    kind: str
    original_uid: str
    reason: str
    mismatched_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelQuality:
    """How one model of an experiment compares with the truth.

    Over the ``M`` candidate patches ``k`` with a finite true value ``P(k)``:

    ``uncertainty_mean = (1 / M) * sum_k sigma(k)``

    ``rmse = sqrt((1 / M) * sum_k (mu(k) - P(k)) ** 2)``

    ``mae = (1 / M) * sum_k |mu(k) - P(k)|``

    all in scalarizer units.

    Attributes
    ----------
    name : str
        ``"final"`` or ``"complete"``.
    n_training : int
        Positions the model was trained on (good measurements only).
    uncertainty_mean, rmse, mae : float
        As defined above.
    """

    name: str
    n_training: int
    uncertainty_mean: float
    rmse: float
    mae: float


@dataclass(frozen=True)
class ModelComparison:
    """Live, final and complete model of one simulated experiment.

    The live model is known only through the ``decisions`` stream, one row
    per adaptive step ``t = 0 .. T - 1``:

    ``live_uncertainty[t] = (1 / M) * sum_k sigma_t(k)`` (the stored
    ``uncertainty_mean``), and

    ``live_error[t] = |mu_t(k_t) - P(k_t)|``: the live model's error at the
    position ``k_t`` it chose, predicted before that position was measured
    (so an out-of-sample error), with the scalarizer in force at that step.

    Attributes
    ----------
    original_uid : str
        The experiment compared.
    steps : numpy.ndarray
        (T,) int adaptive step numbers.
    live_uncertainty, live_error : numpy.ndarray
        (T,) float, scalarizer units (see above).
    final : ModelQuality
        Trained from scratch on every good measurement of the run.
    complete : ModelQuality
        Trained from scratch on the true value at every candidate position.
    scalarizer : dict
        Scalarizer spec of the final and complete models (the one in force
        at the end of the run).
    uid : str or None
        Start uid of the stored comparison run (None when not stored).
    """

    original_uid: str
    steps: np.ndarray
    live_uncertainty: np.ndarray
    live_error: np.ndarray
    final: ModelQuality
    complete: ModelQuality
    scalarizer: dict[str, Any] = field(default_factory=dict)
    uid: str | None = None

    @property
    def live_uncertainty_last(self) -> float:
        """Mean uncertainty of the live model at the last step (NaN without steps)."""
        return float(self.live_uncertainty[-1]) if self.live_uncertainty.size else np.nan

    @property
    def live_error_mean(self) -> float:
        """``(1 / T) * sum_t live_error[t]`` over the finite entries (NaN if none)."""
        finite = self.live_error[np.isfinite(self.live_error)]
        return float(finite.mean()) if finite.size else np.nan

    def summary(self) -> dict[str, Any]:
        """Plain numbers (no per-step arrays) for documents and logs."""
        return {
            "original_uid": self.original_uid,
            "steps": int(self.steps.size),
            "live_uncertainty_first": (float(self.live_uncertainty[0])
                                       if self.live_uncertainty.size else None),
            "live_uncertainty_last": _number(self.live_uncertainty_last),
            "live_error_mean": _number(self.live_error_mean),
            "final": {key: _number(value) if isinstance(value, float) else value
                      for key, value in asdict(self.final).items()},
            "complete": {key: _number(value) if isinstance(value, float) else value
                         for key, value in asdict(self.complete).items()},
            "scalarizer": self.scalarizer,
        }


class _ReplayControl(ExperimentControl):
    """An experiment control that queues the replayed positions as soon as the agent exists.

    The positions go to the agent as points of interest, which it measures
    ahead of its policy in the order given; the request is written into the
    replay's ``interventions`` stream like any operator's.
    """

    def __init__(self, positions_nm: list[list[float]]) -> None:
        super().__init__()
        self.positions_nm = positions_nm

    def attach(self, agent: Any) -> None:
        super().attach(agent)
        if self.positions_nm:
            self.intervene("points_of_interest",
                           lambda target: target.add_points_of_interest(self.positions_nm),
                           user=REPLAY_USER)


def recording_for(start: Mapping[str, Any],
                  spectrum_image: SpectrumImage | None = None) -> SpectrumImage:
    """The recorded spectrum image a simulated run was run on.

    Parameters
    ----------
    start : dict
        Start document; ``start["hae"]["dataset"]`` names the data set
        (``"cuzn"``, ``"twin"`` or a file path).
    spectrum_image : SpectrumImage, optional
        Use this recording instead (for example a file not registered).

    Returns
    -------
    SpectrumImage

    Raises
    ------
    ValueError
        If the run names no data set and none is given, or the recording's
        image shape differs from the run's.
    DataUnavailableError
        If the named data set is neither cached nor downloadable.
    """
    hae = start.get("hae") or {}
    if spectrum_image is None:
        dataset = hae.get("dataset")
        if not dataset:
            raise ValueError(
                f"run {start.get('uid', '?')} names no recorded data set "
                "(start['hae']['dataset']); pass the spectrum image it was run on")
        spectrum_image, _ = choose_spectrum_image(str(dataset), fallback_to_twin=False)
    shape = hae.get("image_shape")
    if shape is not None and list(spectrum_image.haadf.shape) != list(shape):
        raise ValueError(
            f"the recording is {spectrum_image.haadf.shape[0]} x "
            f"{spectrum_image.haadf.shape[1]} pixels but run {start.get('uid', '?')} was "
            f"{shape[0]} x {shape[1]}; pass the spectrum image it was run on")
    return spectrum_image


def scalarizer_at_end(record: RunRecord) -> dict[str, Any]:
    """Scalarizer spec in force at the last decision of a run (else the start's)."""
    decisions = record.stream("decisions")
    recorded = decisions.get("scalarizer")
    if recorded is not None and len(recorded) and str(recorded[-1]):
        return json.loads(str(recorded[-1]))
    return dict(record.start["hae"]["scalarizer"])


def counterfactual_replay(
    run: str | RunRecord,
    catalog: Catalog,
    scalarizer: str | dict[str, Any],
    *,
    spectrum_image: SpectrumImage | None = None,
    agent_options: dict[str, Any] | None = None,
) -> ForensicRun:
    """Replay a stored run's positions under another scalarizer, re-fitting the agent.

    The new run measures the original seed points, then the original
    adaptive positions in the same order (handed to the agent as points of
    interest, so its policy is not asked), on the recording the original
    was run on, with the same patch size, seed, noise setting and agent
    options. Every measurement is scalarised with ``scalarizer``, and the
    agent is re-fitted at every step: the ``decisions`` stream (mean, std,
    ``uncertainty_mean`` with ``source = "point_of_interest"``, acquisition
    value NaN) shows what the model would have believed had the experiment
    looked for ``scalarizer`` along the same trajectory.

    Parameters
    ----------
    run : str or RunRecord
        The original adaptive experiment, or its uid in ``catalog``.
    catalog : Catalog
        Where the original is and the replay goes.
    scalarizer : str or dict
        The other scalarizer: a preset name of the data set (``"zn_l23"``), a
        JSON string or a spec dict.
    spectrum_image : SpectrumImage, optional
        The recording; default the data set named in the original's start
        document.
    agent_options : dict, optional
        Agent options of the replay; default the original's.

    Returns
    -------
    ForensicRun
        ``mismatched_steps`` lists measurements that did not land on the
        original position (possible only when the original changed its patch
        size during the run); a warning is logged for them.

    Raises
    ------
    ValueError
        If the run is not an adaptive experiment or the scalarizer does not
        fit the recording's energy axis.

    Notes
    -----
    Interventions of the original (policy, scalarizer, patch size) are not
    repeated, and simulated-microscope options (drift, damage) are not in
    the start document, so the replay measures the plain recording.
    """
    record = _record(run, catalog)
    settings = settings_from_start(record.start)
    recording = recording_for(record.start, spectrum_image)
    new_scalarizer = resolve_scalarizer(scalarizer, recording)
    measurements = record.stream("measurements")
    seeds = np.asarray(measurements.get("seed_point", []), dtype=bool)
    positions = _positions_nm(measurements)

    control = _ReplayControl(positions[~seeds].tolist())
    md = {FORENSICS_KEY: {
        "kind": "counterfactual_replay", "original_uid": record.uid,
        "scalarizer": new_scalarizer,
        "original_scalarizer": record.start["hae"]["scalarizer"]}}
    logger.info("counterfactual replay of run %s under scalarizer %s", record.uid,
                to_json(new_scalarizer))
    result = run_simulated_experiment(
        recording, catalog, scalarizer=new_scalarizer, policy=settings["policy"],
        patch_size=settings["patch_size"], n_seeds=int(seeds.sum()),
        budget=int((~seeds).sum()), seed=settings["seed"],
        seed_points=positions[seeds].tolist(), noise=settings["noise"],
        agent_options=_options(agent_options, settings), control=control, md=md)

    replayed = [(m.row, m.column) for m in result.agent.measurements]
    original = list(zip(measurements["row"].tolist(), measurements["column"].tolist(),
                        strict=True))
    mismatched = tuple(number for number in range(max(len(original), len(replayed)))
                       if number >= len(replayed) or number >= len(original)
                       or replayed[number] != original[number])
    if mismatched:
        logger.warning("replay %s left the original trajectory at %d of %d measurements "
                       "(first at measurement %d)", result.uid, len(mismatched),
                       len(original), mismatched[0])
    return ForensicRun(result.uid, "counterfactual_replay", record.uid, result.reason,
                       mismatched)


def random_baseline(
    run: str | RunRecord,
    catalog: Catalog,
    *,
    spectrum_image: SpectrumImage | None = None,
    seed: int | None = None,
    agent_options: dict[str, Any] | None = None,
) -> ForensicRun:
    """Run a random baseline with the same seed points and budget as a stored run.

    The baseline is the adaptive experiment with the random policy
    (``{"kind": "random"}``: each next position drawn uniformly among the
    candidate patches not yet measured), on the same recording, with the
    original's seed points, budget (its number of adaptive measurements),
    scalarizer, patch size and agent options. The agent is still fitted at
    every step, so the baseline's ``decisions`` stream has a learning curve
    to set beside the original's. (:func:`~hae_bluesky.plans.random_experiment`
    draws among all pixels and cannot start from given seed points, which is
    why it is not used here.)

    Parameters
    ----------
    run : str or RunRecord
        The original adaptive experiment, or its uid in ``catalog``.
    catalog : Catalog
        Where the original is and the baseline goes.
    spectrum_image : SpectrumImage, optional
        The recording; default the data set named in the original's start.
    seed : int, optional
        Seed of the random choices; default the original's seed.
    agent_options : dict, optional
        Agent options; default the original's.

    Returns
    -------
    ForensicRun
    """
    record = _record(run, catalog)
    settings = settings_from_start(record.start)
    recording = recording_for(record.start, spectrum_image)
    measurements = record.stream("measurements")
    seeds = np.asarray(measurements.get("seed_point", []), dtype=bool)
    positions = _positions_nm(measurements)
    seed = settings["seed"] if seed is None else int(seed)

    md = {FORENSICS_KEY: {"kind": "random_baseline", "original_uid": record.uid,
                          "seed": seed}}
    logger.info("random baseline for run %s: %d seed points, budget %d", record.uid,
                int(seeds.sum()), int((~seeds).sum()))
    result = run_simulated_experiment(
        recording, catalog, scalarizer=settings["scalarizer"], policy={"kind": "random"},
        patch_size=settings["patch_size"], n_seeds=int(seeds.sum()),
        budget=int((~seeds).sum()), seed=seed, seed_points=positions[seeds].tolist(),
        noise=settings["noise"], agent_options=_options(agent_options, settings), md=md)
    return ForensicRun(result.uid, "random_baseline", record.uid, result.reason)


def final_model(record: RunRecord, *,
                agent_options: dict[str, Any] | None = None) -> DKLAgent:
    """Train a model from scratch on every measurement of a run.

    The agent is built on the run's HAADF image and energy axis, with the
    run's seed, the patch size and scalarizer in force at the end of the
    run, and the run's agent options (or ``agent_options``); it ingests every
    measured spectrum and is fitted once. Bad measurements (NaN spectra) are
    left out of training as in the live run. Works on any run with
    ``haadf`` and ``measurements`` streams, simulated or not.

    Parameters
    ----------
    record : RunRecord
        The run, read back with the ``haadf``, ``measurements`` and
        ``decisions`` streams.
    agent_options : dict, optional
        Agent options instead of the run's.

    Returns
    -------
    DKLAgent
        Fitted; ``predict()`` gives its mean and uncertainty per patch.

    Raises
    ------
    ValueError
        If the run lacks the HAADF image, the spectra or their energy axis.
    """
    agent = _agent(record, agent_options)
    measurements = record.stream("measurements")
    spectra = _spectra(measurements)
    agent.ingest([{"row": int(row), "column": int(column), "spectrum": spectrum}
                  for row, column, spectrum in zip(measurements["row"], measurements["column"],
                                                   spectra, strict=True)])
    agent.predict()
    return agent


def complete_model(record: RunRecord, spectrum_image: SpectrumImage, *,
                   agent_options: dict[str, Any] | None = None) -> DKLAgent:
    """Train a model from scratch on the true value at every candidate position.

    Like :func:`final_model`, but the agent ingests the scalarizer value of
    the recorded spectrum at the centre of every candidate patch instead of
    the run's measurements: the best this model can learn from this
    recording (simulation only).

    Parameters
    ----------
    record : RunRecord
        The run (for the HAADF image and the settings).
    spectrum_image : SpectrumImage
        The recording the run was run on.
    agent_options : dict, optional
        Agent options instead of the run's.

    Returns
    -------
    DKLAgent
        Fitted on every candidate position.
    """
    agent = _agent(record, agent_options)
    truth = true_scalarizer_map(spectrum_image, agent.scalarizer.to_spec())
    patches = agent.patches
    agent.ingest([{"row": int(row), "column": int(column), "value": float(truth[row, column])}
                  for row, column in zip(patches.rows, patches.columns, strict=True)])
    agent.predict()
    return agent


def compare_models(
    run: str | RunRecord,
    catalog: Catalog | None,
    *,
    spectrum_image: SpectrumImage | None = None,
    agent_options: dict[str, Any] | None = None,
    complete_options: dict[str, Any] | None = None,
    store: bool = True,
) -> ModelComparison:
    """Compare the live, final and complete models of a simulated run with the truth.

    See :class:`ModelComparison` and :class:`ModelQuality` for the
    definitions. The comparison is stored as a new run (plan name
    ``model_comparison``) with the summary numbers in its start document
    under ``hae_forensics["result"]``, a ``live_model`` stream (one event
    per step: ``step``, ``uncertainty_mean``, ``error``) and a ``models``
    stream (one event per model: ``model``, ``n_training``,
    ``uncertainty_mean``, ``rmse``, ``mae`` and the (M,) maps
    ``posterior_mean`` and ``posterior_std`` in patch-index order).

    Parameters
    ----------
    run : str or RunRecord
        The simulated experiment, or its uid in ``catalog``.
    catalog : Catalog or None
        Where the run is and the comparison goes (None with a RunRecord and
        ``store=False``).
    spectrum_image : SpectrumImage, optional
        The recording; default the data set named in the run's start.
    agent_options : dict, optional
        Agent options of the final and complete models; default the run's.
    complete_options : dict, optional
        Agent options of the complete model only (it trains on every
        candidate, so fewer iterations may be wanted); default
        ``agent_options``.
    store : bool
        Write the comparison run into ``catalog``.

    Returns
    -------
    ModelComparison
    """
    record = _record(run, catalog)
    recording = recording_for(record.start, spectrum_image)
    decisions = record.stream("decisions")
    steps = np.arange(len(decisions.get("row", [])))
    live_uncertainty = np.asarray(decisions.get("uncertainty_mean", []), dtype=float)
    live_error = _live_error(record, recording)

    final_agent = final_model(record, agent_options=agent_options)
    complete_agent = complete_model(record, recording, agent_options=(
        complete_options if complete_options is not None else agent_options))
    scalarizer = final_agent.scalarizer.to_spec()
    truth = candidate_truth(recording, scalarizer, final_agent.patch_size)
    final = _quality("final", final_agent, truth)
    complete = _quality("complete", complete_agent, truth)
    comparison = ModelComparison(record.uid, steps, live_uncertainty, live_error, final,
                                 complete, scalarizer)
    logger.info("mean uncertainty of the models of run %s: live %.4g at the last step, "
                "final %.4g, complete %.4g", record.uid, comparison.live_uncertainty_last,
                final.uncertainty_mean, complete.uncertainty_mean)
    if not store:
        return comparison
    if catalog is None:
        raise ValueError("storing a model comparison needs the catalog")
    maps = {"final": final_agent.predict(), "complete": complete_agent.predict()}
    uid = _store_comparison(catalog, record, comparison, maps)
    return replace(comparison, uid=uid)


def find_forensics(catalog: Catalog, original_uid: str, kind: str | None = None) -> list[str]:
    """Uids of the forensic runs made from one run, oldest first.

    Parameters
    ----------
    catalog : Catalog
        The catalog to search.
    original_uid : str
        Start uid of the original run.
    kind : str, optional
        Only this kind (``"counterfactual_replay"``, ``"random_baseline"``,
        ``"model_comparison"``).

    Returns
    -------
    list of str
        Start uids of the runs whose ``start["hae_forensics"]["original_uid"]``
        is ``original_uid``.
    """
    from tiled.queries import Key

    results = catalog.client.search(Key(f"start.{FORENSICS_KEY}.original_uid")
                                    == original_uid)
    if kind is not None:
        results = results.search(Key(f"start.{FORENSICS_KEY}.kind") == kind)
    return list(results)


# ----------------------------------------------------------------------- helpers


def _record(run: str | RunRecord, catalog: Catalog | None) -> RunRecord:
    if isinstance(run, RunRecord):
        return run
    return load_run(run, catalog=catalog, streams=_STREAMS)


def _options(override: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    return dict(override) if override is not None else settings["agent_options"]


def _positions_nm(measurements: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, 2) beam positions ``(x, y)`` in nm of the measurements, in order."""
    if "x_nm" not in measurements:
        raise ValueError("the run has no measurements to replay")
    return np.column_stack([np.asarray(measurements["x_nm"], dtype=float),
                            np.asarray(measurements["y_nm"], dtype=float)])


def _spectra(measurements: Mapping[str, np.ndarray]) -> np.ndarray:
    keys = [key for key in measurements if key.endswith("_spectrum")]
    if not keys:
        raise ValueError("the run's measurements stream holds no spectra")
    return np.asarray(measurements[keys[0]], dtype=float)


def _agent(record: RunRecord, agent_options: dict[str, Any] | None) -> DKLAgent:
    """A new agent with the run's image, axis and settings at the end of the run."""
    hae = record.start.get("hae") or {}
    image = haadf_image(record)
    if image is None:
        raise ValueError(f"run {record.uid} has no HAADF image to build patches from")
    configuration = record.configuration.get("measurements", {})
    axes = [value for key, value in configuration.items() if key.endswith("_energy_axis")]
    if not axes:
        raise ValueError(f"run {record.uid} does not record the energy axis of its spectra")
    decisions = record.stream("decisions")
    patch_size = (int(decisions["patch_size"][-1]) if len(decisions.get("patch_size", []))
                  else int(hae["patch_size"]))
    options = dict(hae.get("agent_options") or {}) if agent_options is None else dict(
        agent_options)
    return DKLAgent(image, np.asarray(axes[0], dtype=float), scalarizer_at_end(record),
                    pixel_size_nm=float(hae["pixel_size_nm"]), patch_size=patch_size,
                    policy=hae.get("policy"), seed=int(hae.get("seed", 0)), **options)


def _live_error(record: RunRecord, recording: SpectrumImage) -> np.ndarray:
    """|mu_t(k_t) - P(k_t)| per decision, with the scalarizer in force at step t."""
    decisions = record.stream("decisions")
    count = len(decisions.get("row", []))
    if count == 0:
        return np.zeros(0)
    start_spec = to_json(record.start["hae"]["scalarizer"])
    specs = [str(spec) or start_spec for spec in decisions.get("scalarizer",
                                                               [start_spec] * count)]
    truths = {spec: true_scalarizer_map(recording, json.loads(spec)) for spec in set(specs)}
    rows = np.asarray(decisions["row"], dtype=int)
    columns = np.asarray(decisions["column"], dtype=int)
    truth = np.array([truths[spec][row, column]
                      for spec, row, column in zip(specs, rows, columns, strict=True)],
                     dtype=float)
    return np.abs(np.asarray(decisions["mean"], dtype=float) - truth)


def _quality(name: str, agent: DKLAgent, truth: np.ndarray) -> ModelQuality:
    posterior = agent.predict()
    patches = agent.patches
    true_values = truth[patches.rows, patches.columns]
    finite = np.isfinite(true_values) & np.isfinite(posterior.mean)
    error = posterior.mean[finite] - true_values[finite]
    trained = sum(not measurement.bad for measurement in agent.measurements)
    return ModelQuality(
        name=name, n_training=int(trained),
        uncertainty_mean=float(np.mean(posterior.std)),
        rmse=float(np.sqrt(np.mean(error ** 2))) if error.size else np.nan,
        mae=float(np.mean(np.abs(error))) if error.size else np.nan)


def _store_comparison(catalog: Catalog, record: RunRecord, comparison: ModelComparison,
                      maps: dict[str, Any]) -> str:
    hae = record.start.get("hae") or {}
    md = {
        "plan_name": "model_comparison",
        FORENSICS_KEY: {"kind": "model_comparison", "original_uid": record.uid,
                        "result": comparison.summary()},
        "hae": {key: hae[key] for key in ("dataset", "synthetic", "patch_size",
                                          "pixel_size_nm", "image_shape") if key in hae},
    }
    engine = RunEngine({}, call_returns_result=True)
    token = subscribe_tiled_writer(engine, catalog)
    try:
        result = engine(_comparison_plan(comparison, maps, md))
    finally:
        engine.unsubscribe(token)
    uid = result.run_start_uids[0]
    logger.info("model comparison of run %s stored as run %s", record.uid, uid)
    return uid


def _comparison_plan(comparison: ModelComparison, maps: dict[str, Any],
                     md: dict[str, Any]) -> Generator[Any, Any, None]:
    live = SoftRecord({"step": 0, "uncertainty_mean": np.nan, "error": np.nan})
    models = SoftRecord({"model": "", "n_training": 0, "uncertainty_mean": np.nan,
                         "rmse": np.nan, "mae": np.nan})
    size = len(next(iter(maps.values())).mean)
    mean = ArraySignal(name="posterior_mean", shape=(size,), dtype="<f8")
    std = ArraySignal(name="posterior_std", shape=(size,), dtype="<f8")

    yield from bps.open_run(md=md)
    for step, uncertainty, error in zip(comparison.steps, comparison.live_uncertainty,
                                        comparison.live_error, strict=True):
        live.put({"step": int(step), "uncertainty_mean": uncertainty, "error": error})
        yield from bps.create("live_model")
        yield from read_record(live)
        yield from bps.save()
    for quality in (comparison.final, comparison.complete):
        models.put({"model": quality.name, "n_training": quality.n_training,
                    "uncertainty_mean": quality.uncertainty_mean, "rmse": quality.rmse,
                    "mae": quality.mae})
        mean.publish(maps[quality.name].mean)
        std.publish(maps[quality.name].std)
        yield from bps.create("models")
        yield from read_record(models)
        yield from bps.read(mean)
        yield from bps.read(std)
        yield from bps.save()
    yield from bps.close_run(exit_status="success", reason="stored")


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
