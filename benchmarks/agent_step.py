"""Wall time and peak memory of one agent step at growing numbers of candidates.

One step is what the adaptive plan asks of the agent each time a spectrum
comes in: ingest that reading, then ``suggest(1)`` (fit warm-started from
the previous weights, analytic posterior over every candidate patch,
acquisition, choice). Cases (patch size N = 5, M = (ny - N + 1) * (nx - N + 1)
candidates):

- the Cu/ZnO recording, 50 x 40 pixels, M = 1,656;
- SYNTHETIC plasmonic twins of 54 x 64, 104 x 104 and 254 x 404 pixels,
  M = 3,000, 10,000 and 100,000.

For each number K of measured points (15, 100, 200 by default) the agent is
brought to a warm steady state: random positions are ingested up to K - 3,
three untimed steps bring it to K, then ``--steps`` steps are timed (the
timed steps therefore see K to K + steps - 1 measured points). The policy is
EI with its default ``xi``.

Each case runs in a fresh Python process so that its peak memory is its own:
the peak resident set size (``resource.getrusage(...).ru_maxrss``, which
counts torch's allocations; ``tracemalloc`` would not) is printed, with the
resident size of the process just before the agent was built (Python,
numpy, torch and the HAADF image; the spectra are memory-mapped and only
the measured ones are read). Run with ``HAE_DATA_DIR`` pointing at the
folder that holds the Cu/ZnO recording.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATCH_SIZE = 5
CASES = {
    1656: ("cuzn", (50, 40)),
    3000: ("twin", (54, 64)),
    10000: ("twin", (104, 104)),
    100000: ("twin", (254, 404)),
}
WARM_UP_STEPS = 3


def _resident_mib() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(candidates: int, folder: Path) -> dict:
    """Write the HAADF image, the spectra and the energy axis of one case as ``.npy``."""
    from hae_bluesky.data import load_dataset, make_plasmonic_twin, scalarizer_preset
    from hae_bluesky.experiment import TWIN_SCALARIZER

    source, shape = CASES[candidates]
    if source == "cuzn":
        recording, scalarizer = load_dataset("cuzn"), scalarizer_preset("cu_l23")
    else:
        recording, scalarizer = make_plasmonic_twin(shape, seed=0), TWIN_SCALARIZER
    ny, nx = recording.haadf.shape
    if (ny - PATCH_SIZE + 1) * (nx - PATCH_SIZE + 1) != candidates:
        raise RuntimeError(f"{ny} x {nx} pixels do not give {candidates} patches")
    np.save(folder / "haadf.npy", recording.haadf)
    np.save(folder / "spectra.npy", np.ascontiguousarray(recording.spectra))
    np.save(folder / "energy_axis.npy", recording.energy_axis)
    return {"source": source, "shape": [ny, nx], "scalarizer": scalarizer,
            "pixel_size_nm": recording.pixel_size_nm}


def run_case(folder: Path, case: dict, points: list[int], steps: int, threads: int) -> dict:
    """Time the steps of one case in this process; returns plain values."""
    import torch

    from hae_bluesky.agent import DKLAgent

    torch.set_num_threads(threads)
    haadf = np.load(folder / "haadf.npy")
    spectra = np.load(folder / "spectra.npy", mmap_mode="r")
    energy_axis = np.load(folder / "energy_axis.npy")
    resident_before = _resident_mib()

    start = time.perf_counter()
    agent = DKLAgent(haadf, energy_axis, case["scalarizer"],
                     pixel_size_nm=case["pixel_size_nm"], patch_size=PATCH_SIZE,
                     policy={"kind": "ei"}, seed=0)
    build_seconds = time.perf_counter() - start
    patches = agent.patches
    order = iter(np.random.default_rng(0).permutation(len(patches)))
    measured: set[int] = set()

    def reading(index: int) -> dict:
        measured.add(index)
        row, column = int(patches.rows[index]), int(patches.columns[index])
        return {"row": row, "column": column, "spectrum": np.array(spectra[row, column])}

    results = []
    decision = None
    for count in points:
        while agent.step < count - WARM_UP_STEPS:
            index = int(next(order))
            if index in measured:
                continue
            agent.ingest([reading(index)])
            decision = None
        while agent.step < count:
            if decision is not None:
                agent.ingest([reading(decision.patch_index)])
            decision = agent.suggest(1)[0]
        seconds, fit_seconds, iterations = [], [], []
        for _ in range(steps):
            start = time.perf_counter()
            agent.ingest([reading(decision.patch_index)])
            decision = agent.suggest(1)[0]
            seconds.append(time.perf_counter() - start)
            report = agent.report()
            fit_seconds.append(report["fit_seconds"])
            iterations.append(report["fit_iterations"])
        results.append({"measured": count, "seconds": seconds, "fit_seconds": fit_seconds,
                        "iterations": iterations})
    return {"candidates": len(patches), "build_seconds": build_seconds,
            "threads": torch.get_num_threads(), "resident_before_mib": resident_before,
            "peak_mib": _peak_mib(), "results": results}


def _table(outcomes: list[dict]) -> str:
    header = (f"{'M':>8} {'image':>9} {'K':>4} {'median s':>9} {'p95 s':>8} "
              f"{'fit med s':>10} {'iter':>5} {'build s':>8} {'RSS before':>11} "
              f"{'peak RSS':>9}")
    lines = [header, "-" * len(header)]
    for outcome in outcomes:
        image = "x".join(str(n) for n in outcome["shape"])
        for result in outcome["results"]:
            seconds = np.asarray(result["seconds"])
            lines.append(
                f"{outcome['candidates']:>8,} {image:>9} {result['measured']:>4} "
                f"{np.median(seconds):9.3f} {np.percentile(seconds, 95):8.3f} "
                f"{np.median(result['fit_seconds']):10.3f} "
                f"{np.median(result['iterations']):5.0f} {outcome['build_seconds']:8.2f} "
                f"{outcome['resident_before_mib']:8.0f} MiB {outcome['peak_mib']:5.0f} MiB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, nargs="+", default=list(CASES),
                        choices=list(CASES), help="cases by number of patches M")
    parser.add_argument("--points", type=int, nargs="+", default=[15, 100, 200],
                        help="measured points K at which steps are timed")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per K")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (torch.set_num_threads)")
    parser.add_argument("--case-folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    points = sorted(args.points)
    if points[0] <= WARM_UP_STEPS:
        parser.error(f"the smallest K must exceed the {WARM_UP_STEPS} warm-up steps")

    if args.case_folder:
        folder = Path(args.case_folder)
        case = json.loads((folder / "case.json").read_text())
        outcome = run_case(folder, case, points, args.steps, args.threads)
        print(json.dumps({**case, **outcome}))
        return

    outcomes = []
    for candidates in args.candidates:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            case = prepare(candidates, folder)
            (folder / "case.json").write_text(json.dumps(case))
            command = [sys.executable, __file__, "--case-folder", name, "--steps",
                       str(args.steps), "--threads", str(args.threads), "--points",
                       *map(str, points)]
            finished = subprocess.run(command, capture_output=True, text=True, check=False)
            if finished.returncode:
                sys.exit(f"case M={candidates} failed:\n{finished.stderr}")
            outcomes.append(json.loads(finished.stdout.strip().splitlines()[-1]))

    threads = sorted({outcome["threads"] for outcome in outcomes})
    print(f"one agent step = ingest one reading + suggest(1), EI, patch size {PATCH_SIZE}; "
          f"{args.steps} timed steps per K after {WARM_UP_STEPS} untimed ones; "
          f"torch threads {', '.join(map(str, threads))}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("RSS before: resident size before the agent is built; peak RSS: "
          "resource.getrusage ru_maxrss of the case's own process")
    print(_table(outcomes))


if __name__ == "__main__":
    main()
