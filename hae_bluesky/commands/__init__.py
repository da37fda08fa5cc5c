"""Subcommands of the ``hae`` command line, and the options they share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_catalog_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--catalog``, ``--tiled-uri`` and ``--api-key`` (read by :func:`open_catalog_from`)."""
    parser.add_argument("--catalog", type=Path,
                        help="embedded catalog folder (default $HAE_CATALOG_DIR or "
                             "catalog/ in the user data folder)")
    parser.add_argument("--tiled-uri", help="existing Tiled server instead of an embedded one")
    parser.add_argument("--api-key", help="API key of --tiled-uri")


def open_catalog_from(args: argparse.Namespace) -> Any:
    """Open the catalog the options of :func:`add_catalog_options` name.

    Raises
    ------
    ValueError
        If both ``--catalog`` and ``--tiled-uri`` are given, or the server
        cannot be used.
    """
    from hae_bluesky.catalog import open_catalog

    if args.tiled_uri and args.catalog:
        raise ValueError("give either --catalog or --tiled-uri, not both")
    if args.tiled_uri:
        return open_catalog(uri=args.tiled_uri, api_key=args.api_key)
    return open_catalog(args.catalog)
