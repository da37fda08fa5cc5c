"""``hae demo``: the adaptive experiment on recorded data, end to end.

Simulated devices replay a recorded spectrum image (the real Cu/ZnO data by
default), the DKL agent chooses the beam positions, the run goes into a
Tiled catalog, and a summary and a figure come out at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hae_bluesky.commands import add_catalog_options, open_catalog_from

logger = logging.getLogger(__name__)

POLICY_PARAMETERS = {"xi": float, "beta": float, "travel_weight": float,
                     "exclusion_radius_nm": float, "exclusion_weight": float}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="run the adaptive experiment on recorded data with simulated devices",
        description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cuzn",
                        help="registered data set (cuzn), 'twin', or a file path")
    parser.add_argument("--haadf", help="separate HAADF image file for a file --dataset")
    parser.add_argument("--scalarizer",
                        help="preset name (cu_l23, zn_l23) or a JSON spec; default: the "
                             "data set's own")
    parser.add_argument("--policy", default="ei",
                        help="ei, ucb, mu, pi, thompson or random (default ei)")
    for name, kind in POLICY_PARAMETERS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, dest=name,
                            help=f"policy parameter {name}")
    parser.add_argument("--patch-size", type=int, default=5, help="N of the N x N patches")
    parser.add_argument("--seeds", type=int, default=10, help="number of seed points")
    parser.add_argument("--budget", type=int, default=100, help="measurements after the seeds")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--noise", action="store_true", help="Poisson noise on spectra")
    add_catalog_options(parser)
    parser.add_argument("--figure", type=Path, default=Path("hae-demo.png"),
                        help="where to save the summary figure (PNG)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_demo)


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    policy: dict[str, Any] = {"kind": args.policy}
    policy.update({name: getattr(args, name) for name in POLICY_PARAMETERS
                   if getattr(args, name) is not None})
    if policy["kind"] == "ei" and "xi" not in policy:
        policy["xi"] = 0.01
    return policy


def _check_settings(args: argparse.Namespace, policy: dict[str, Any],
                    haadf_shape: tuple[int, int]) -> None:
    """Refuse settings the experiment would refuse, before it opens a run."""
    from hae_bluesky.agent.policy import policy_from_spec

    policy_from_spec(policy)
    ny, nx = haadf_shape
    largest = min(ny, nx)
    if not 1 <= args.patch_size <= largest:
        raise ValueError(f"--patch-size must be 1 to {largest} pixels for the {ny} x {nx} "
                         f"HAADF image, got {args.patch_size}")
    candidates = (ny - args.patch_size + 1) * (nx - args.patch_size + 1)
    if not 1 <= args.seeds <= candidates:
        raise ValueError(f"--seeds must be 1 to {candidates} (the positions with a whole "
                         f"{args.patch_size} x {args.patch_size} patch), got {args.seeds}")
    if args.budget < 0:
        raise ValueError(f"--budget must be 0 or more measurements, got {args.budget}")


class _Progress:
    """A tqdm bar advanced by each ``measurements`` event."""

    def __init__(self, total: int, disable: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="spectrum", desc="measuring", disable=disable)
        self.streams: dict[str, str] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor":
            self.streams[doc["uid"]] = doc.get("name", "")
        elif name == "event" and self.streams.get(doc["descriptor"]) == "measurements":
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo experiment and print its summary."""
    # Imported here so that `hae --help` and the other commands start fast.
    from hae_bluesky.analysis.runs import load_run
    from hae_bluesky.data import DATASETS
    from hae_bluesky.experiment import (
        candidate_truth,
        choose_spectrum_image,
        resolve_scalarizer,
        run_simulated_experiment,
    )

    if args.haadf and args.dataset in ("twin", *DATASETS):
        raise ValueError(f"--haadf goes with a file --dataset, not with {args.dataset!r}")
    spectrum_image, fallback = choose_spectrum_image(args.dataset, args.haadf)
    if fallback:
        print(f"hae demo: {fallback}")
    label = "SYNTHETIC " if spectrum_image.is_synthetic else ""
    scalarizer = resolve_scalarizer(args.scalarizer, spectrum_image)
    policy = _policy(args)
    _check_settings(args, policy, spectrum_image.haadf.shape)

    progress = _Progress(args.seeds + args.budget, disable=args.no_progress)
    catalog = open_catalog_from(args)
    try:
        result = run_simulated_experiment(
            spectrum_image, catalog, scalarizer=scalarizer, policy=policy,
            patch_size=args.patch_size, n_seeds=args.seeds, budget=args.budget,
            seed=args.seed, noise=args.noise, callbacks=[progress])
        progress.close()
        record = load_run(result.uid, catalog=catalog,
                          streams=["measurements", "decisions", "haadf"])
        summary = _summary(result, record, catalog.location)
        print(f"\n{label}demo experiment finished")
        for key, value in summary.items():
            print(f"  {key}: {value}")
        if args.figure:
            from hae_bluesky.analysis.figures import experiment_summary_figure, save_figure

            truth = candidate_truth(spectrum_image, scalarizer, args.patch_size)
            figure = experiment_summary_figure(record, result.agent, truth,
                                               title=f"{label}{summary['data']}")
            save_figure(figure, args.figure)
            print(f"  figure: {args.figure.resolve()}")
    finally:
        progress.close()
        catalog.close()
    return 0


def _summary(result, record, location: str) -> dict[str, Any]:
    from hae_bluesky.analysis.metrics import top_fraction_found
    from hae_bluesky.experiment import candidate_truth

    measurements = record.stream("measurements")
    values = np.asarray(measurements["scalarizer_value"], dtype=float)
    rows = np.asarray(measurements["row"], dtype=int)
    columns = np.asarray(measurements["column"], dtype=int)
    best = int(np.nanargmax(values)) if np.any(np.isfinite(values)) else None
    truth = candidate_truth(result.spectrum_image, result.scalarizer,
                            record.start["hae"]["patch_size"])
    found = top_fraction_found(rows, columns, truth, 5.0)
    pixel = result.spectrum_image.pixel_size_nm
    times = result.step_times.medians()
    data = result.spectrum_image.metadata
    return {
        "data": data.get("title") if result.spectrum_image.is_synthetic
        else f"{data.get('dataset', data.get('source'))}",
        "run uid": result.uid,
        "catalog": location,
        "ended by": result.reason,
        "measurements": f"{values.size} ({int(np.sum(measurements['seed_point']))} seed points)",
        "scalarizer": json.dumps(result.scalarizer),
        "best value found": "none" if best is None else
        f"{values[best]:.4g} at row {rows[best]}, column {columns[best]} "
        f"(x = {columns[best] * pixel:.2f} nm, y = {rows[best] * pixel:.2f} nm)",
        "true top 5% found": f"{100 * found[-1]:.1f}%" if found.size else "0%",
        "wall time": f"{result.wall_seconds:.1f} s",
        "time per step (median)": (
            f"agent {times['agent'] * 1e3:.0f} ms, devices {times['device'] * 1e3:.0f} ms, "
            f"bookkeeping {times['bookkeeping'] * 1e3:.0f} ms, total "
            f"{times['total'] * 1e3:.0f} ms"),
    }
