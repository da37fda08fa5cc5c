"""Discovery of the true top 5% positions on the Cu/ZnO recording.

A simulated study driven through the agent directly (no RunEngine): for each
target (the background-subtracted Cu and Zn L2,3 edge intensities), each
method and each seed, the same seed points are drawn at random among the
candidate positions (patch size 5), then the method chooses the next
positions one at a time. Methods:

- ``ei``, ``ucb``, ``mu``: the DKL agent with that policy at its default
  parameters (``xi = 0.01``; ``UCB = mu + beta * sigma`` with ``beta = 2``);
- ``random``: uniform random choice among the positions not yet measured;
- ``brightness``: a model-free ranking of the patches by their mean HAADF
  intensity, brightest first.

The table gives the fraction of the true top-5% positions (among the
candidate positions) measured after 25, 50 and 100 steps (seed points
count as measured), mean and standard deviation over seeds, and the median
wall time of one agent step (``suggest(1)`` plus ingesting the spectrum
measured there). The simulations go to Dask: a ``distributed.LocalCluster``
by default, or a running scheduler (``--scheduler tcp://host:8786``);
``--serial`` runs them in a plain loop in this process instead.

Run with ``HAE_DATA_DIR`` pointing at the folder that holds the Cu/ZnO
recording (for example ``HAE_DATA_DIR=../shared/data``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any

import numpy as np

METHODS = ("ei", "ucb", "mu", "random", "brightness")
AGENT_METHODS = ("ei", "ucb", "mu")
TARGETS = ("cu_l23", "zn_l23")
CHECKPOINTS = (25, 50, 100)
TOP_PERCENT = 5.0


@functools.lru_cache(maxsize=1)
def _recording():
    from hae_bluesky.data import load_dataset

    return load_dataset("cuzn")


def seed_indices(n_candidates: int, count: int, seed: int) -> np.ndarray:
    """Candidate indices of the seed points: ``count`` drawn without replacement."""
    rng = np.random.default_rng(seed)
    return rng.choice(n_candidates, size=count, replace=False)


def run_trial(target: str, method: str, seed: int, steps: int, n_seed_points: int,
              patch_size: int, threads: int,
              agent_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One simulated experiment; returns the measured pixels and the step times.

    Parameters
    ----------
    target : str
        Scalarizer preset of the Cu/ZnO data set.
    method : str
        One of :data:`METHODS`.
    seed : int
        Seed of the seed points, the agent and the random baseline.
    steps : int
        Positions chosen after the seed points.
    n_seed_points : int
        Seed points drawn at random.
    patch_size : int
        N in pixels.
    threads : int
        torch threads in this process.
    agent_options : dict, optional
        Extra keyword arguments of :class:`~hae_bluesky.agent.DKLAgent`.

    Returns
    -------
    dict
        ``rows`` and ``columns`` (seed points first) and ``step_seconds``
        (agent methods only; empty otherwise).
    """
    import torch

    from hae_bluesky.agent import DKLAgent
    from hae_bluesky.data import extract_patches, scalarizer_preset

    torch.set_num_threads(threads)
    recording = _recording()
    patches = extract_patches(recording.haadf, patch_size, recording.pixel_size_nm)
    seeds = seed_indices(len(patches), n_seed_points, seed)
    chosen = [int(i) for i in seeds]
    step_seconds: list[float] = []
    budget = min(steps, len(patches) - len(chosen))

    if method in AGENT_METHODS:
        agent = DKLAgent(recording.haadf, recording.energy_axis, scalarizer_preset(target),
                         pixel_size_nm=recording.pixel_size_nm, patch_size=patch_size,
                         policy={"kind": method}, seed=seed, **(agent_options or {}))
        agent.ingest([_reading(recording, patches, index) for index in chosen])
        for _ in range(budget):
            start = time.perf_counter()
            decision = agent.suggest(1)[0]
            agent.ingest([_reading(recording, patches, decision.patch_index)])
            step_seconds.append(time.perf_counter() - start)
            chosen.append(decision.patch_index)
    else:
        remaining = np.setdiff1d(np.arange(len(patches)), seeds)
        if method == "random":
            order = np.random.default_rng(seed + 1).permutation(remaining)
        elif method == "brightness":
            brightness = patches.values.reshape(len(patches), -1).mean(axis=1)
            order = remaining[np.argsort(-brightness[remaining], kind="stable")]
        else:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        chosen += [int(i) for i in order[:budget]]

    chosen_array = np.asarray(chosen)
    return {"target": target, "method": method, "seed": seed,
            "rows": patches.rows[chosen_array].tolist(),
            "columns": patches.columns[chosen_array].tolist(),
            "step_seconds": step_seconds}


def _reading(recording, patches, index: int) -> dict[str, Any]:
    row, column = int(patches.rows[index]), int(patches.columns[index])
    return {"row": row, "column": column, "spectrum": recording.spectra[row, column]}


def _found(trial: dict[str, Any], truth: np.ndarray, n_seed_points: int) -> dict[int, float]:
    from hae_bluesky.analysis.metrics import top_fraction_found

    fraction = top_fraction_found(trial["rows"], trial["columns"], truth, TOP_PERCENT)
    return {step: float(fraction[n_seed_points + step - 1]) for step in CHECKPOINTS
            if n_seed_points + step <= len(fraction)}


def _table(trials: list[dict[str, Any]], args: argparse.Namespace) -> str:
    from hae_bluesky.data import scalarizer_preset
    from hae_bluesky.experiment import candidate_truth

    recording = _recording()
    checkpoints = [step for step in CHECKPOINTS if step <= args.steps]
    header = (f"{'target':<8} {'method':<11}"
              + "".join(f"{f'after {step}':>14}" for step in checkpoints)
              + f"{'s / step':>10}")
    lines = [header, "-" * len(header)]
    for target in args.targets:
        truth = candidate_truth(recording, scalarizer_preset(target), args.patch_size)
        for method in args.methods:
            group = [t for t in trials if t["target"] == target and t["method"] == method]
            found = [_found(t, truth, args.seed_points) for t in group]
            cells = []
            for step in checkpoints:
                values = 100 * np.array([f[step] for f in found if step in f])
                cells.append(f"{values.mean():7.1f} ±{values.std():4.1f}%" if values.size
                             else f"{'-':>14}")
            times = [s for t in group for s in t["step_seconds"]]
            seconds = f"{np.median(times):10.3f}" if times else f"{'-':>10}"
            lines.append(f"{target:<8} {method:<11}" + "".join(f"{c:>14}" for c in cells)
                         + seconds)
    return "\n".join(lines)


def _run_all(tasks: list[tuple], args: argparse.Namespace) -> tuple[list[dict], str]:
    options = json.loads(args.agent_options) if args.agent_options else None
    extra = (args.steps, args.seed_points, args.patch_size, args.threads, options)
    if args.serial:
        return [run_trial(*task, *extra) for task in tasks], "plain loop in this process"

    from distributed import Client, LocalCluster

    if args.scheduler:
        with Client(args.scheduler) as client:
            futures = [client.submit(run_trial, *task, *extra, pure=False) for task in tasks]
            return client.gather(futures), f"Dask scheduler {args.scheduler}"
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        futures = [client.submit(run_trial, *task, *extra, pure=False) for task in tasks]
        return (client.gather(futures),
                f"Dask LocalCluster, {args.workers} worker process(es) x 1 thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per target and method")
    parser.add_argument("--steps", type=int, default=100, help="steps after the seed points")
    parser.add_argument("--seed-points", type=int, default=10)
    parser.add_argument("--patch-size", type=int, default=5)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes of the LocalCluster")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--serial", action="store_true",
                        help="plain loop in this process instead of Dask")
    parser.add_argument("--agent-options", help="JSON keyword arguments of DKLAgent, e.g. "
                        "'{\"model_settings\": {\"warm_iterations\": 20}}'")
    args = parser.parse_args()

    # The slow agent runs go first so that the workers finish together.
    tasks = [(target, method, seed) for method in args.methods for target in args.targets
             for seed in range(args.seeds)]
    tasks.sort(key=lambda task: task[1] not in AGENT_METHODS)
    start = time.perf_counter()
    trials, where = _run_all(tasks, args)
    wall = time.perf_counter() - start

    print(f"Cu/ZnO recording, patch size {args.patch_size}, {args.seed_points} random seed "
          f"points, {args.steps} steps, {args.seeds} seed(s); top {TOP_PERCENT:g}% of the "
          f"candidate positions found (mean ± std over seeds)")
    print(f"{where}; {args.threads} torch thread(s) per process; wall {wall:.0f} s; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.agent_options:
        print(f"agent options: {args.agent_options}")
    print(_table(trials, args))


if __name__ == "__main__":
    main()
