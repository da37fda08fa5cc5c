"""``hae data``: list, fetch and describe spectrum images."""

from __future__ import annotations

import argparse
from pathlib import Path

from hae_bluesky.data import (
    DATASETS,
    data_dir,
    load_dataset,
    load_hae_npy,
    load_spectrum_image,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` subcommand."""
    parser = subparsers.add_parser("data", help="list, fetch and describe spectrum images")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list the registered demo data sets")
    listing.set_defaults(func=_list)

    fetch = actions.add_parser("fetch", help="download a data set into the cache and check it")
    fetch.add_argument("name", choices=sorted(DATASETS))
    fetch.set_defaults(func=_info)

    info = actions.add_parser("info", help="describe a data set or a microscope file")
    info.add_argument("name", help="a registered name or a file path")
    info.add_argument("--haadf", type=Path, help="separate HAADF image file")
    info.set_defaults(func=_info)


def _list(args: argparse.Namespace) -> int:
    print(f"data cache: {data_dir()}  (set HAE_DATA_DIR to change it)")
    for name, dataset in DATASETS.items():
        print(f"{name}: {dataset.description}")
        print(f"    scalarizers: {', '.join(dataset.scalarizers) or 'none'}")
    return 0


def _info(args: argparse.Namespace) -> int:
    if args.name in DATASETS:
        record = load_dataset(args.name)
    elif not Path(args.name).is_file():
        raise FileNotFoundError(f"{args.name!r} is neither a registered data set "
                                f"({', '.join(DATASETS)}) nor a file")
    elif Path(args.name).suffix == ".npy":
        record = load_hae_npy(args.name)
    else:
        record = load_spectrum_image(args.name, getattr(args, "haadf", None))
    ny, nx, channels = record.shape
    first, last = record.energy_range
    label = "SYNTHETIC " if record.is_synthetic else ""
    print(f"{label}spectrum image {ny} x {nx} pixels, {channels} channels {first:g}-{last:g} eV,"
          f" pixel size {record.pixel_size_nm:.4g} nm")
    print(f"source: {record.metadata.get('source', 'generated')}")
    if record.metadata.get("haadf_derived"):
        print("HAADF image derived from total counts (no HAADF file given)")
    return 0
