"""Time and memory of patch extraction at 512 x 512 pixels with N = 15.

Prints the wall time (median of repeats), the size of the patches
themselves, and the peak memory traced by ``tracemalloc`` during extraction
(numpy reports its allocations to it). The ratio peak / patches says whether
extraction needs more memory than its result.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from hae_bluesky.data import extract_patches, make_plasmonic_twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--patch-size", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    image = make_plasmonic_twin((args.size, args.size), seed=0, n_channels=8).haadf
    for normalisation in ("image", "patch"):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            patches = extract_patches(image, args.patch_size, normalisation=normalisation)
            times.append(time.perf_counter() - start)
            del patches

        tracemalloc.start()
        patches = extract_patches(image, args.patch_size, normalisation=normalisation)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        size = patches.values.nbytes
        print(f"{args.size}x{args.size} N={args.patch_size} normalisation={normalisation}: "
              f"M={len(patches):,} patches, median {np.median(times) * 1e3:.1f} ms, "
              f"patches {size / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
              f"(peak/patches {peak / size:.2f})")


if __name__ == "__main__":
    main()
