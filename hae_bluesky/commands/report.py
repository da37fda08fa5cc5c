"""``hae report``: figures and a short summary of a stored experiment.

See :mod:`hae_bluesky.analysis.report` for what the report holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hae_bluesky.commands import add_catalog_options, open_catalog_from


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report", help="figures and a summary of a stored experiment",
        description=__doc__.splitlines()[0])
    parser.add_argument("run", metavar="RUN",
                        help="run uid, a unique uid prefix, or -1 for the latest run")
    add_catalog_options(parser)
    parser.add_argument("--out", type=Path,
                        help="folder for the figures and the summary "
                             "(default hae-report-<first 8 characters of the uid>)")
    parser.add_argument("--feature-space", action="store_true",
                        help="also the rVAE latent trajectory with its aggregation points and "
                             "the DKL embedding (trains an rVAE: a few seconds)")
    parser.add_argument("--rvae-epochs", type=int, default=40,
                        help="training epochs of the rVAE for --feature-space (default 40)")
    parser.add_argument("--dataset",
                        help="recording the run was simulated on, when the run's own "
                             "(start['hae']['dataset']) is not at hand")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Write the report of one run and print its summary."""
    # Imported here so that `hae --help` and the other commands start fast.
    from hae_bluesky.analysis.report import (
        REPORT_STREAMS,
        find_run,
        format_summary,
        write_report,
    )
    from hae_bluesky.analysis.runs import load_run
    from hae_bluesky.experiment import choose_spectrum_image

    catalog = open_catalog_from(args)
    try:
        record = load_run(find_run(catalog, args.run), streams=REPORT_STREAMS)
    finally:
        catalog.close()

    spectrum_image = None
    if args.dataset:
        spectrum_image, _ = choose_spectrum_image(args.dataset, fallback_to_twin=False)
    out = args.out if args.out is not None else Path(f"hae-report-{record.uid[:8]}")
    summary = write_report(record, out, spectrum_image=spectrum_image,
                           feature_space=args.feature_space, rvae_epochs=args.rvae_epochs)
    print(format_summary(summary))
    print(f"report written to {out.resolve()}")
    return 0
