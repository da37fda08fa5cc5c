"""Report of a stored experiment: figures and a short summary.

:func:`write_report` reads what a run recorded and writes, into one folder:

- ``summary.png``: HAADF and trajectory, the final model's mean and
  uncertainty maps, the true map (simulated runs), learning curve and best
  value so far;
- ``learning_curve.png`` and ``trajectory.png``;
- with ``feature_space=True``: ``feature_space.png`` (the trajectory in the
  latent space of an rVAE trained on the HAADF patches, with its
  aggregation points) and ``embedding.png`` (the DKL embedding of the final
  model, one image per dimension);
- ``summary.txt`` for people and ``summary.json`` with the same numbers.

The live model is not stored in a run, so the model panels show the final
model: retrained from scratch on every measurement of the run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hae_bluesky.analysis.figures import (
    draw_learning_curve,
    draw_map,
    draw_trajectory,
    embedding_figure,
    experiment_summary_figure,
    feature_space_figure,
    haadf_image,
    save_figure,
)
from hae_bluesky.analysis.forensics import (
    FORENSICS_KEY,
    final_model,
    recording_for,
    scalarizer_at_end,
)
from hae_bluesky.analysis.metrics import LearningCurve, distance_travelled, top_fraction_found
from hae_bluesky.analysis.runs import RunRecord
from hae_bluesky.analysis.trap import TrapAlert, TrapDetector
from hae_bluesky.catalog import Catalog
from hae_bluesky.experiment import candidate_truth

logger = logging.getLogger(__name__)

#: Streams a report reads.
REPORT_STREAMS = ("haadf", "measurements", "decisions", "interventions")

#: k of the "fraction of the true top k% found" in the summary, percent.
TOP_PERCENT = 5.0


def find_run(catalog: Catalog, run: str) -> Any:
    """The run node for a uid, a unique uid prefix, or a negative index (-1: latest).

    Parameters
    ----------
    catalog : Catalog
        The catalog to look in.
    run : str
        A start uid, the first characters of one, or ``-1``, ``-2``, ...
        (the latest run, the one before, in the catalog's order).

    Returns
    -------
    BlueskyRun
        The run node (read it with :func:`~hae_bluesky.analysis.runs.load_run`).

    Raises
    ------
    ValueError
        If ``run`` is empty or blank.
    LookupError
        If no run, or more than one, matches.
    """
    run = run.strip()
    if not run:
        # Tiled reads an empty key as the catalog itself, not as a run.
        raise ValueError("no run given: give a run uid, a uid prefix, or -1 for the latest "
                         "run")
    client = catalog.client
    if run.startswith("-") and run[1:].isdigit():
        try:
            return client.values()[int(run)]
        except IndexError:
            raise LookupError(f"the catalog at {catalog.location} holds {len(client)} runs; "
                              f"there is no run {run}") from None
    if run in client:
        return client[run]
    from tiled.queries import Like

    matches = list(client.search(Like("start.uid", f"{run}%")))
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise LookupError(f"{found} in the catalog at {catalog.location} with a uid "
                          f"starting {run!r}")
    return client[matches[0]]


def write_report(record: RunRecord, out: str | Path, *, spectrum_image: Any = None,
                 feature_space: bool = False, rvae_epochs: int = 40) -> dict[str, Any]:
    """Write the figures, ``summary.txt`` and ``summary.json`` of a run into ``out``.

    Parameters
    ----------
    record : RunRecord
        The run, read with the streams in :data:`REPORT_STREAMS`.
    out : str or Path
        Folder for the files (created).
    spectrum_image : SpectrumImage, optional
        The recording of a simulated run; default the data set named in its
        start document. Without one, the truth panel and the fraction of
        the true top 5% found are left out.
    feature_space : bool
        Also train an rVAE on the HAADF patches and draw the feature-space
        and embedding figures.
    rvae_epochs : int
        Training epochs of the rVAE (see
        :func:`~hae_bluesky.analysis.feature_space.train_rvae`).

    Returns
    -------
    dict
        The summary, as written to ``summary.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hae = record.start.get("hae") or {}
    recording, recording_note = _recording(record, spectrum_image)
    truth = None
    if recording is not None and "scalarizer" in hae:
        truth = candidate_truth(recording, scalarizer_at_end(record),
                                int(hae.get("patch_size", 1)))
    agent, model_note = _final_model(record)

    summary = summarise_run(record, truth)
    if recording_note:
        summary["notes"].append(recording_note)
    if model_note:
        summary["notes"].append(model_note)
    figures = {
        "summary": experiment_summary_figure(record, agent, truth),
        "learning_curve": _learning_curve_figure(record),
        "trajectory": _trajectory_figure(record, summary["trap"]["alerts"]),
    }
    if feature_space:
        figures.update(_feature_space_figures(record, agent, summary, rvae_epochs))
    summary["figures"] = [save_figure(figure, out / name).name
                          for name, figure in figures.items()]

    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.txt").write_text(format_summary(summary) + "\n")
    logger.info("report of run %s written to %s", record.uid, out)
    return summary


def summarise_run(record: RunRecord, truth: np.ndarray | None = None) -> dict[str, Any]:
    """The numbers of a report, as plain JSON-able values.

    Keys: ``run_uid``, ``plan_name``, ``dataset``, ``synthetic``, ``policy``,
    ``scalarizer``, ``patch_size``, ``pixel_size_nm``, ``measurements``
    (count, seed points, why the run ended), ``best`` (highest measured
    scalarizer value, its step, pixel and position in nm), ``learning_curve``
    (first and last mean uncertainty over all patches, their difference, in
    scalarizer units), ``distance`` (path length through every measured
    position in order, seed points included, in pixels and nm),
    ``trap`` (the trap detector's alerts and the evidence on the last
    window), ``top_fraction_found`` (fraction of the true top 5% of
    candidate positions measured; None without ``truth``),
    ``interventions``, ``forensics`` (``start["hae_forensics"]`` of a forensic
    run, else None) and ``notes``.

    Parameters
    ----------
    record : RunRecord
        The run.
    truth : numpy.ndarray, optional
        (ny, nx) true scalarizer map, NaN off the candidates (simulation).
    """
    hae = record.start.get("hae") or {}
    pixel = float(hae.get("pixel_size_nm", 1.0))
    measurements = record.stream("measurements")
    decisions = record.stream("decisions")
    rows = np.asarray(measurements.get("row", []), dtype=int)
    columns = np.asarray(measurements.get("column", []), dtype=int)
    values = np.asarray(measurements.get("scalarizer_value", []), dtype=float)
    seeds = np.asarray(measurements.get("seed_point", np.zeros(rows.size)), dtype=bool)
    steps = np.asarray(measurements.get("step", np.arange(rows.size)), dtype=int)

    distance = distance_travelled(rows, columns, pixel_size_nm=pixel)
    found = (top_fraction_found(rows, columns, truth, TOP_PERCENT)
             if truth is not None and rows.size else None)
    notes = []
    if truth is None:
        notes.append(f"fraction of the true top {TOP_PERCENT:g}% found: needs the recording "
                     "of a simulated run")
    return {
        "run_uid": record.uid,
        "plan_name": record.start.get("plan_name", ""),
        "dataset": hae.get("dataset"),
        "synthetic": bool(hae.get("synthetic", False)),
        "policy": hae.get("policy"),
        "scalarizer": hae.get("scalarizer"),
        "patch_size": hae.get("patch_size"),
        "pixel_size_nm": pixel,
        "measurements": {
            "count": int(rows.size), "seed_points": int(seeds.sum()),
            "ended_by": (record.stop or {}).get("reason") or "still running",
        },
        "best": _best(values, rows, columns, steps, pixel),
        "learning_curve": _learning_curve(decisions),
        "distance": {"pixels": distance.total_pixels, "nm": distance.total_nm,
                     "positions": int(rows.size)},
        "trap": _trap(record, pixel),
        "top_fraction_found": None if found is None else float(found[-1]),
        "top_percent": TOP_PERCENT,
        "interventions": _interventions(record),
        "forensics": record.start.get(FORENSICS_KEY),
        "notes": notes,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as short lines of text."""
    best, curve, distance = summary["best"], summary["learning_curve"], summary["distance"]
    trap, count = summary["trap"], summary["measurements"]
    label = " (SYNTHETIC)" if summary["synthetic"] else ""
    lines = [
        f"run: {summary['run_uid']} ({summary['plan_name']})",
        f"data set: {summary['dataset'] or 'not recorded'}{label}",
        f"policy: {_compact(summary['policy'])}",
        f"scalarizer: {_compact(summary['scalarizer'])}",
        f"patch size: {summary['patch_size']}; pixel size: {summary['pixel_size_nm']:.4g} nm",
        f"measurements: {count['count']} ({count['seed_points']} seed points); ended by "
        f"{count['ended_by']}",
        "best value found: none" if best is None else
        f"best value found: {best['value']:.6g} at step {best['step']}, row {best['row']}, "
        f"column {best['column']} (x = {best['x_nm']:.2f} nm, y = {best['y_nm']:.2f} nm)",
    ]
    if curve is None:
        lines.append("learning curve: no decisions recorded")
    else:
        lines.append(
            f"learning curve: mean uncertainty over all patches {curve['first']:.6g} at step "
            f"0 -> {curve['last']:.6g} at step {curve['steps'] - 1} (scalarizer units; "
            f"{_uncertainty_change(curve)})")
    lines.append(f"distance travelled: {distance['pixels']:.2f} px = {distance['nm']:.2f} nm "
                 f"through {distance['positions']} positions")
    if trap["alerts"]:
        for alert in trap["alerts"]:
            lines.append(f"trap detector: TRAPPED at step {alert['step']}: {alert['message']}")
    else:
        lines.append(f"trap detector: not trapped; {trap['last_window']}")
    found = summary["top_fraction_found"]
    if found is not None:
        lines.append(f"true top {summary['top_percent']:g}% found: {found:.1%}")
    interventions = summary["interventions"]
    lines.append(f"interventions: {len(interventions)}" + "".join(
        f"; {item['parameter']} at step {item['step']} by {item['user'] or '?'}"
        + ("" if item["accepted"] else " (refused)") for item in interventions))
    if summary.get("aggregation_points") is not None:
        points = summary["aggregation_points"]
        lines.append(f"feature space: {len(points)} aggregation point(s)" + "".join(
            f"; ({point['location'][0]:.2f}, {point['location'][1]:.2f}) with "
            f"{point['visits']} visits" for point in points))
    lines.extend(_forensics_lines(summary.get("forensics")))
    lines.extend(f"note: {note}" for note in summary["notes"])
    if summary.get("figures"):
        lines.append(f"figures: {', '.join(summary['figures'])}")
    return "\n".join(lines)


# ----------------------------------------------------------------------- pieces


def _forensics_lines(forensics: dict[str, Any] | None) -> list[str]:
    """What a forensic run was made from, and a model comparison's numbers."""
    if not forensics:
        return []
    lines = [f"forensics: {forensics.get('kind')} of run {forensics.get('original_uid')}"]
    result = forensics.get("result") or {}
    if result:
        lines.append(
            f"live model: mean uncertainty {_g(result.get('live_uncertainty_first'))} at "
            f"the first step -> {_g(result.get('live_uncertainty_last'))} at the last; mean "
            f"error at the chosen position {_g(result.get('live_error_mean'))}")
    for name in ("final", "complete"):
        quality = result.get(name)
        if quality:
            lines.append(
                f"{name} model ({quality['n_training']} positions): mean uncertainty "
                f"{_g(quality['uncertainty_mean'])}, RMSE {_g(quality['rmse'])}, MAE "
                f"{_g(quality['mae'])}")
    return lines


def _uncertainty_change(curve: dict[str, Any]) -> str:
    """How the mean uncertainty changed: ``fell by 0.3, 60.0% of the first`` or ``rose by``."""
    change, relative = curve["knowledge_gain"], curve["relative_fall"]
    if change is None:
        return "change not defined: an uncertainty is not finite"
    if change == 0:
        return "unchanged"
    share = "" if relative is None else f", {abs(relative):.1%} of the first"
    return f"{'fell' if change > 0 else 'rose'} by {abs(change):.6g}{share}"


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _recording(record: RunRecord, spectrum_image: Any) -> tuple[Any, str | None]:
    hae = record.start.get("hae") or {}
    if spectrum_image is None and not hae.get("dataset"):
        return None, None
    try:
        return recording_for(record.start, spectrum_image), None
    except (ValueError, FileNotFoundError) as error:
        logger.warning("no recording for run %s: %s", record.uid, error)
        return None, f"recording not available ({error})"


def _final_model(record: RunRecord) -> tuple[Any, str | None]:
    hae = record.start.get("hae") or {}
    if not {"scalarizer", "patch_size", "pixel_size_nm"} <= set(hae):
        return None, "no model settings in the run: model panels left empty"
    if not len(record.stream("measurements").get("row", [])):
        return None, "no measurements: model panels left empty"
    try:
        return final_model(record), None
    except ValueError as error:
        logger.warning("final model of run %s not trained: %s", record.uid, error)
        return None, f"final model not trained ({error})"


def _best(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, steps: np.ndarray,
          pixel: float) -> dict[str, Any] | None:
    if not np.any(np.isfinite(values)):
        return None
    index = int(np.nanargmax(values))
    return {"value": float(values[index]), "step": int(steps[index]),
            "row": int(rows[index]), "column": int(columns[index]),
            "x_nm": float(columns[index] * pixel), "y_nm": float(rows[index] * pixel)}


def _learning_curve(decisions: dict[str, np.ndarray]) -> dict[str, Any] | None:
    mean = np.asarray(decisions.get("uncertainty_mean", []), dtype=float)
    if not mean.size:
        return None
    curve = LearningCurve(
        steps=np.arange(mean.size), mean=mean,
        dispersion=np.asarray(decisions.get("uncertainty_std", np.full(mean.size, np.nan)),
                              dtype=float))
    first = float(curve.mean[0])
    return {"steps": len(curve), "first": first, "last": float(curve.mean[-1]),
            "knowledge_gain": _finite(curve.knowledge_gain),
            "relative_fall": _finite(curve.knowledge_gain / first) if first else None}


def _trap(record: RunRecord, pixel: float) -> dict[str, Any]:
    """Trap detector over the policy's positions (the decisions, else the measurements)."""
    decisions = record.stream("decisions")
    if len(decisions.get("row", [])):
        rows, columns = decisions["row"], decisions["column"]
        uncertainty = decisions.get("next_uncertainty", np.full(len(rows), np.nan))
    else:
        measurements = record.stream("measurements")
        chosen = ~np.asarray(measurements.get("seed_point", []), dtype=bool)
        rows = np.asarray(measurements.get("row", []))[chosen]
        columns = np.asarray(measurements.get("column", []))[chosen]
        uncertainty = np.full(len(rows), np.nan)

    detector = TrapDetector(pixel_size_nm=pixel)
    for step, (row, column, value) in enumerate(zip(rows, columns, uncertainty, strict=True)):
        detector.update(float(row), float(column), float(value), step=step)
    latest = detector.latest
    if latest is None:
        last_window = (f"fewer than {detector.window} steps, too few to judge "
                       f"({len(rows)} steps)")
    else:
        slope = ("no next-step uncertainty recorded"
                 if not np.isfinite(latest.uncertainty_slope) else
                 f"next-step uncertainty slope {latest.uncertainty_slope:.3g} per step "
                 f"({100 * latest.relative_uncertainty_slope:+.1f} % per step)")
        last_window = (
            f"last {latest.window} steps within {latest.radius_pixels:.1f} px "
            f"({latest.radius_pixels * pixel:.2f} nm) of their centre, {latest.revisits} "
            f"revisits, {slope}")
    return {"trapped": bool(detector.alerts), "alerts": [_alert(a) for a in detector.alerts],
            "last_window": last_window, "steps": len(rows),
            "parameters": {"window": detector.window, "max_radius": detector.max_radius,
                           "revisit_radius": detector.revisit_radius,
                           "min_revisits": detector.min_revisits,
                           "max_relative_fall": detector.max_relative_fall}}


def _alert(alert: TrapAlert) -> dict[str, Any]:
    evidence = alert.evidence
    return {"step": alert.step, "row": alert.row, "column": alert.column,
            "reason": alert.reason, "radius_pixels": evidence.radius_pixels,
            "radius_nm": alert.radius_nm, "revisits": evidence.revisits,
            "uncertainty_slope": _finite(evidence.uncertainty_slope),
            "relative_uncertainty_slope": _finite(evidence.relative_uncertainty_slope),
            "message": alert.message()}


def _interventions(record: RunRecord) -> list[dict[str, Any]]:
    stream = record.stream("interventions")
    count = len(stream.get("parameter", []))
    return [{"step": int(stream["step"][i]), "parameter": str(stream["parameter"][i]),
             "user": str(stream["user"][i]), "accepted": bool(stream["accepted"][i])}
            for i in range(count)]


def _learning_curve_figure(record: RunRecord) -> Figure:
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.set_label("learning_curve")
    draw_learning_curve(axes, record.stream("decisions"))
    figure.suptitle(f"run {record.uid[:8]}: learning curve")
    return figure


def _trajectory_figure(record: RunRecord, alerts: list[dict[str, Any]]) -> Figure:
    measurements = record.stream("measurements")
    figure = Figure(figsize=(5.5, 5.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_label("trajectory")
    draw_map(figure, axes, haadf_image(record), "HAADF and trajectory", cmap="gray",
             label="counts")
    if "row" in measurements:
        draw_trajectory(axes, measurements["row"], measurements["column"],
                        measurements.get("seed_point"))
    for number, alert in enumerate(alerts):
        axes.scatter([alert["column"]], [alert["row"]], marker="s", s=80,
                     facecolors="none", edgecolors="cyan", linewidths=1.5,
                     label="trap alert" if number == 0 else None)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="upper right")
    figure.suptitle(f"run {record.uid[:8]}: trajectory")
    return figure


def _feature_space_figures(record: RunRecord, agent: Any, summary: dict[str, Any],
                           epochs: int) -> dict[str, Figure]:
    from hae_bluesky.analysis.feature_space import (
        aggregation_points,
        train_rvae,
        trajectory_latents,
    )
    from hae_bluesky.data import extract_patches

    hae = record.start.get("hae") or {}
    image = haadf_image(record)
    if image is None:
        summary["notes"].append("no HAADF image: no feature-space figures")
        return {}
    patch_size = agent.patch_size if agent is not None else int(hae.get("patch_size", 5))
    patches = extract_patches(image, patch_size, float(hae.get("pixel_size_nm", 1.0)))
    space = train_rvae(patches.values, epochs=epochs, seed=int(hae.get("seed", 0)))
    measurements = record.stream("measurements")
    indices = []
    for row, column in zip(measurements.get("row", []), measurements.get("column", []),
                           strict=True):
        try:
            indices.append(patches.index_of(int(row), int(column)))
        except ValueError:
            continue
    visited = trajectory_latents(space.latents, np.asarray(indices, dtype=int))
    try:
        points = aggregation_points(visited)
    except (ValueError, np.linalg.LinAlgError) as error:
        summary["notes"].append(f"no aggregation points ({error})")
        points = []
    summary["aggregation_points"] = [
        {"location": list(point.location), "visits": point.visits,
         "relative_density": point.relative_density} for point in points]

    figures = {"feature_space": feature_space_figure(
        space.latents, visited, points,
        title=f"run {record.uid[:8]}: trajectory in the rVAE feature space")}
    if agent is not None:
        figures["embedding"] = embedding_figure(
            agent.embeddings(), agent.patches,
            title=f"run {record.uid[:8]}: DKL embedding of the final model")
    return figures


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
