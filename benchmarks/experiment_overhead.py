"""Wall time per adaptive step, split into agent, devices and bookkeeping.

Runs the adaptive experiment on the real Cu/ZnO data with simulated devices
(no real-time delays) into an embedded Tiled catalog in a temporary folder,
and prints median and 95th percentile per step of: the agent (ingest, fit,
prediction, acquisition), the devices (beam move and spectrum acquisition),
and the bookkeeping (RunEngine, documents, Tiled writes). A second run
without the Tiled writer shows what the writer costs.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from hae_bluesky.catalog import open_catalog
from hae_bluesky.data import load_dataset, scalarizer_preset
from hae_bluesky.experiment import run_simulated_experiment


def _row(label: str, seconds: list[float]) -> str:
    values = np.asarray(seconds) * 1e3
    return (f"{label:<12} median {np.median(values):8.1f} ms   "
            f"p95 {np.percentile(values, 95):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()

    spectrum_image = load_dataset("cuzn")
    settings = {"scalarizer": scalarizer_preset("cu_l23"), "policy": {"kind": "ei", "xi": 0.01},
                "n_seeds": args.seeds, "budget": args.budget, "seed": 0}
    with tempfile.TemporaryDirectory() as folder, open_catalog(folder) as catalog:
        for label, target in (("with Tiled", catalog), ("no writer", None)):
            result = run_simulated_experiment(spectrum_image, target, **settings)
            times = result.step_times
            print(f"{label}: {len(times.total)} steps, wall {result.wall_seconds:.1f} s")
            print("  " + _row("agent", times.agent))
            print("  " + _row("devices", times.device))
            print("  " + _row("bookkeeping", times.bookkeeping))
            print("  " + _row("total", times.total))


if __name__ == "__main__":
    main()
