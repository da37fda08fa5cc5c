"""The adaptive DKL experiment: one Bluesky run from HAADF image to last spectrum.

The loop, one run per experiment:

1. acquire the HAADF image (stream ``haadf``) and build the agent on it;
2. measure the seed points (stream ``measurements``);
3. repeat until the budget is spent, a stop is requested or no candidate is
   left: write pending interventions (stream ``interventions``), take the
   agent's decision (stream ``decisions``), move the beam, measure.

The agent never sees the plan: :class:`AgentFeeder`, a callback subscribed
to the run's documents, ingests every ``measurements`` event, and at each
step boundary the plan asks it for the agent's next decision. Interventions
are held back while the agent decides, so an intervention written at step
``k`` is in force for the decision of step ``k``. ``checkpoint`` messages
between steps make pause and resume safe.

Steps are numbered from 0 for the first adaptive measurement; the seed points
carry steps ``-n_seeds`` to ``-1`` and ``seed_point = True``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.callbacks.core import CallbackBase

from hae_bluesky.plans.control import ExperimentControl
from hae_bluesky.plans.records import (
    DECISION_FIELDS,
    INTERVENTION_FIELDS,
    MEASUREMENT_FIELDS,
    SoftRecord,
    read_record,
    to_json,
)

logger = logging.getLogger(__name__)

__all__ = ["AgentFeeder", "StepTimes", "adaptive_experiment", "measure_at", "versions"]

DEFAULT_POLICY = {"kind": "ei", "xi": 0.01}


def versions() -> dict[str, str]:
    """Return the versions of the packages that decide an experiment's outcome."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("hae-bluesky", "bluesky", "ophyd", "torch", "gpytorch", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


@dataclass
class StepTimes:
    """Wall time of each adaptive step, split by where it went (s).

    ``agent`` is the decision (fit, prediction, acquisition) plus ingesting
    the measurement in the callback,
    ``device`` the beam move and spectrum acquisition, and ``bookkeeping``
    the rest (RunEngine, documents, Tiled writing).
    """

    agent: list[float] = field(default_factory=list)
    device: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    @property
    def bookkeeping(self) -> list[float]:
        """Per step: total minus agent minus device time (s)."""
        return [t - a - d for t, a, d in zip(self.total, self.agent, self.device, strict=True)]

    def medians(self) -> dict[str, float]:
        """Median seconds per step of agent, device, bookkeeping and total."""
        if not self.total:
            return {"agent": math.nan, "device": math.nan, "bookkeeping": math.nan,
                    "total": math.nan}
        return {"agent": float(np.median(self.agent)), "device": float(np.median(self.device)),
                "bookkeeping": float(np.median(self.bookkeeping)),
                "total": float(np.median(self.total))}


class AgentFeeder(CallbackBase):
    """Feed ``measurements`` events to the agent; ask it for decisions.

    Parameters
    ----------
    agent : DKLAgent
        Anything with ``ingest(readings)`` and ``suggest(n)``.
    spectrum_field : str
        Name of the spectrum in the event data.

    Attributes
    ----------
    ingested : int
        Measurements fed to the agent so far.
    ingest_seconds, decide_seconds : float
        Time (s) of the latest ingest and of the latest decision.
    """

    def __init__(self, agent: Any, spectrum_field: str) -> None:
        super().__init__()
        self.agent = agent
        self.spectrum_field = spectrum_field
        self.ingested = 0
        self.ingest_seconds = 0.0
        self.decide_seconds = 0.0
        self._streams: dict[str, str] = {}

    def descriptor(self, doc: dict[str, Any]) -> None:
        self._streams[doc["uid"]] = doc.get("name", "")

    def event(self, doc: dict[str, Any]) -> None:
        if self._streams.get(doc["descriptor"]) != "measurements":
            return
        start = time.perf_counter()
        data = doc["data"]
        self.agent.ingest([{"row": int(data["row"]), "column": int(data["column"]),
                            "spectrum": np.asarray(data[self.spectrum_field], dtype=float)}])
        self.ingested += 1
        self.ingest_seconds = time.perf_counter() - start

    def decide(self) -> Any | None:
        """Return the agent's next decision, or ``None`` when it has none left.

        The agent decides on demand, with every measurement ingested and
        every intervention accepted so far, so a decision is never stale.
        """
        start = time.perf_counter()
        decisions = self.agent.suggest(1)
        self.decide_seconds = time.perf_counter() - start
        return decisions[0] if decisions else None


def measure_at(scan, eels, position_nm: Sequence[float], info: SoftRecord,
               values: dict[str, Any], scalarizer=None) -> Generator[Any, Any, float]:
    """Move the beam, take one spectrum and save it with its plan-side fields.

    Parameters
    ----------
    scan : StemScan
        Beam positioners ``scan.x`` and ``scan.y`` (nm).
    eels : EelsSpectrometer
        The spectrometer; its ``spectrum`` signal is read.
    position_nm : (float, float)
        Beam position ``(x, y)`` in nm.
    info : SoftRecord
        The plan-side fields of the ``measurements`` stream.
    values : dict
        Values for ``info`` (step, row, column, ...).
    scalarizer : callable, optional
        ``scalarizer(spectrum) -> float`` stored as ``scalarizer_value``.

    Yields
    ------
    Msg

    Returns
    -------
    float
        Seconds spent on the move and the acquisition.
    """
    start = time.perf_counter()
    x_nm, y_nm = float(position_nm[0]), float(position_nm[1])
    yield from bps.mv(scan.x, x_nm, scan.y, y_nm)
    yield from bps.trigger(eels, wait=True)
    device_seconds = time.perf_counter() - start

    yield from bps.create("measurements")
    yield from bps.read(scan)
    reading = yield from bps.read(eels)
    spectrum = reading[eels.spectrum.name]["value"]
    value = scalarizer(spectrum) if scalarizer is not None else math.nan
    info.put({**values, "x_nm": x_nm, "y_nm": y_nm, "scalarizer_value": value})
    yield from read_record(info)
    yield from bps.save()
    return device_seconds


def _seed_positions(patches, n_seeds: int, seed: int,
                    seed_points: Sequence[Sequence[float]] | None) -> list[int]:
    if seed_points is not None:
        return [patches.nearest_index(float(x), float(y)) for x, y in seed_points]
    if n_seeds < 1:
        raise ValueError(f"an experiment needs at least one seed point, got {n_seeds}")
    if n_seeds > len(patches):
        raise ValueError(f"{n_seeds} seed points asked for but only {len(patches)} patches")
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.choice(len(patches), size=n_seeds, replace=False)]


def _decision_values(step: int, decision: Any, report: dict[str, Any],
                     agent_seconds: float) -> dict[str, Any]:
    values = {key: value for key, value in decision.to_dict().items()
              if key in DECISION_FIELDS}
    values["step"] = step
    values.update({key: value for key, value in report.items()
                   if key in DECISION_FIELDS and key not in values})
    values["policy"] = to_json(decision.policy)
    values["scalarizer"] = to_json(report.get("scalarizer"))
    values["fallback"] = report.get("fallback") or ""
    values["agent_seconds"] = agent_seconds
    return values


def _write_interventions(interventions: Sequence[Any], step: int,
                         record: SoftRecord) -> Generator[Any, Any, None]:
    for intervention in interventions:
        intervention.step = step
        values = intervention.to_dict()
        values["before"] = to_json(values["before"])
        values["after"] = to_json(values["after"])
        record.put({key: values[key] for key in INTERVENTION_FIELDS})
        yield from bps.create("interventions")
        yield from read_record(record)
        yield from bps.save()


def adaptive_experiment(
    scan,
    haadf,
    eels,
    *,
    scalarizer: dict[str, Any],
    policy: dict[str, Any] | None = None,
    patch_size: int = 5,
    n_seeds: int = 10,
    budget: int = 100,
    seed: int = 0,
    seed_points: Sequence[Sequence[float]] | None = None,
    control: ExperimentControl | None = None,
    agent_options: dict[str, Any] | None = None,
    step_times: StepTimes | None = None,
    md: dict[str, Any] | None = None,
) -> Generator[Any, Any, str]:
    """Run one human-in-the-loop DKL experiment as a single Bluesky run.

    Parameters
    ----------
    scan : StemScan
        Beam positioners in nm.
    haadf : HaadfDetector
        Acquires the HAADF image once, before the loop.
    eels : EelsSpectrometer
        One spectrum per trigger; its ``energy_axis`` configuration (eV) is
        read once.
    scalarizer : dict
        Scalarizer spec, e.g. ``{"kind": "band_integral", "window": [930, 1000]}``.
    policy : dict, optional
        Policy spec (default ``{"kind": "ei", "xi": 0.01}``).
    patch_size : int
        N of the N x N patches (pixels).
    n_seeds : int
        Number of seed points drawn at random (ignored with ``seed_points``).
    budget : int
        Number of measurements after the seed points.
    seed : int
        Seed of the seed points and of the agent.
    seed_points : list of (x, y), optional
        Seed positions in nm instead of random ones.
    control : ExperimentControl, optional
        Operator handle for interventions and stop requests.
    agent_options : dict, optional
        Extra keyword arguments for :class:`hae_bluesky.agent.DKLAgent`.
    step_times : StepTimes, optional
        Filled with the per-step time split.
    md : dict, optional
        Extra start-document metadata (for example ``{"hae": {"dataset": ...}}``
        entries are merged into the ``hae`` key).

    Yields
    ------
    Msg

    Returns
    -------
    str
        Why the loop ended: ``budget``, ``exhausted`` or the stop reason.

    See Also
    --------
    hae_bluesky.plans.baselines.grid_experiment
    hae_bluesky.plans.baselines.random_experiment
    """
    from hae_bluesky.agent import DKLAgent

    control = control if control is not None else ExperimentControl()
    step_times = step_times if step_times is not None else StepTimes()
    policy = dict(policy or DEFAULT_POLICY)
    if budget < 0:
        raise ValueError(f"budget must be zero or more measurements, got {budget}")

    energy_axis = np.asarray(eels.energy_axis.get(), dtype=float)
    pixel_size_nm = float(haadf.pixel_size.get())
    metadata = dict(md or {})
    hae = {
        "patch_size": patch_size, "pixel_size_nm": pixel_size_nm, "scalarizer": scalarizer,
        "policy": policy, "seed": seed, "n_seeds": n_seeds if seed_points is None
        else len(seed_points), "seed_points": seed_points, "budget": budget,
        "agent_options": agent_options or {}, "versions": versions(),
    }
    hae.update(metadata.pop("hae", {}))
    metadata.update(plan_name="adaptive_experiment", hae=hae)

    info = SoftRecord(MEASUREMENT_FIELDS)
    decision_record = SoftRecord(DECISION_FIELDS)
    intervention_record = SoftRecord(INTERVENTION_FIELDS)

    def body() -> Generator[Any, Any, str]:
        reading = yield from bps.trigger_and_read([haadf], name="haadf")
        image = np.asarray(reading[haadf.image.name]["value"], dtype=float)
        agent = DKLAgent(image, energy_axis, scalarizer, pixel_size_nm=pixel_size_nm,
                         patch_size=patch_size, policy=policy, seed=seed,
                         **(agent_options or {}))
        control.attach(agent)
        feeder = AgentFeeder(agent, spectrum_field=eels.spectrum.name)

        def scalarize(spectrum):
            return agent.scalarizer(np.asarray(spectrum, dtype=float), energy_axis)

        def loop() -> Generator[Any, Any, str]:
            seeds = _seed_positions(agent.patches, n_seeds, seed, seed_points)
            patches = agent.patches
            for number, index in enumerate(seeds):
                yield from measure_at(
                    scan, eels, patches.positions_nm[index], info,
                    {"step": -len(seeds) + number, "row": patches.rows[index],
                     "column": patches.columns[index], "seed_point": True}, scalarize)

            for step in range(budget):
                yield from bps.checkpoint()
                start = time.perf_counter()
                # Interventions wait while the agent decides, so every one
                # written at this step is in force for this step's decision.
                with control.holding():
                    interventions = control.drain()
                    stop_reason = control.stop_reason
                    decision = None if stop_reason else feeder.decide()
                yield from _write_interventions(interventions, step, intervention_record)
                if stop_reason is not None:
                    return stop_reason
                if decision is None:
                    return "exhausted"
                agent_seconds = feeder.ingest_seconds + feeder.decide_seconds
                decision_record.put(_decision_values(step, decision, agent.report(),
                                                     agent_seconds))
                yield from bps.create("decisions")
                yield from read_record(decision_record)
                yield from bps.save()

                device_seconds = yield from measure_at(
                    scan, eels, (decision.x_nm, decision.y_nm), info,
                    {"step": step, "row": decision.row, "column": decision.column},
                    scalarize)
                # The callback ingested this step's measurement during the save.
                step_times.agent.append(feeder.decide_seconds + feeder.ingest_seconds)
                step_times.device.append(device_seconds)
                step_times.total.append(time.perf_counter() - start)
            return "budget"

        try:
            reason = yield from bpp.subs_wrapper(loop(), {"all": [feeder]})
            yield from _write_interventions(control.drain(), len(step_times.total),
                                            intervention_record)
        finally:
            control.detach()
        logger.info("adaptive experiment ended: %s", reason)
        return reason

    uid = yield from bps.open_run(md=metadata)
    logger.info("adaptive experiment %s started", uid)
    reason = yield from body()
    yield from bps.close_run(exit_status="success", reason=reason)
    return reason
