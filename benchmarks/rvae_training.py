"""Training time of the rotationally invariant VAE behind the feature-space views.

Two cases: every 5 x 5 patch of the Cu/ZnO HAADF image (50 x 40 pixels,
1,656 patches), and 3,000 patches of 10 x 10 pixels from a 64 x 64
synthetic plasmonic twin (the first 3,000 of its 3,025 patches). Each case
is trained with the defaults of :func:`train_rvae` (40 epochs, batch 128,
one torch thread) and prints the wall time, the time per epoch and per
1,000 patch passes, and the first and last epoch's loss.

Run with ``HAE_DATA_DIR`` pointing at the folder that holds the Cu/ZnO
recording.
"""

from __future__ import annotations

import argparse

import numpy as np

from hae_bluesky.analysis.feature_space import train_rvae
from hae_bluesky.data import extract_patches, load_dataset, make_plasmonic_twin


def _report(label: str, patches: np.ndarray, epochs: int, threads: int) -> None:
    space = train_rvae(patches, epochs=epochs, num_threads=threads)
    seconds = space.training_seconds
    passes = len(patches) * epochs
    print(f"{label}: M={len(patches):,} patches of {patches.shape[1]}x{patches.shape[2]}, "
          f"{epochs} epochs, {threads} thread(s): {seconds:.2f} s "
          f"({seconds / epochs * 1e3:.0f} ms per epoch, "
          f"{seconds / passes * 1e6:.0f} ms per 1,000 patch passes), "
          f"loss {space.loss_history[0]:.1f} -> {space.loss_history[-1]:.1f} per patch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--twin-patches", type=int, default=3000)
    args = parser.parse_args()

    recording = load_dataset("cuzn")
    cuzn = extract_patches(recording.haadf, 5, recording.pixel_size_nm)
    _report("Cu/ZnO HAADF, N=5", cuzn.values, args.epochs, args.threads)

    twin = make_plasmonic_twin((64, 64), seed=0)
    twin_patches = extract_patches(twin.haadf, 10, twin.pixel_size_nm)
    if len(twin_patches) < args.twin_patches:
        raise SystemExit(
            f"the twin has only {len(twin_patches)} patches of 10 x 10; ask for fewer"
        )
    _report("synthetic twin 64x64, N=10", twin_patches.values[:args.twin_patches],
            args.epochs, args.threads)


if __name__ == "__main__":
    main()
