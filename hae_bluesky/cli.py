"""The ``hae`` command: one subcommand per module in ``hae_bluesky.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

#: Modules that each define ``register(subparsers)``; a subcommand sets ``func``.
COMMAND_MODULES: tuple[str, ...] = (
    "hae_bluesky.commands.data",
    "hae_bluesky.commands.demo",
    "hae_bluesky.commands.queue",
    "hae_bluesky.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hae",
        description="Human-in-the-loop automated STEM-EELS experiments on Bluesky.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v: INFO, -vv: DEBUG)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hae`` command line; return the exit status.

    When whoever reads the output stops early (``hae queue state | head -1``),
    the command ends quietly with status 1 instead of a ``BrokenPipeError``
    traceback.
    """
    try:
        try:
            return _run(argv)
        finally:
            # Output to a pipe is buffered: flush it here, where a closed pipe can be
            # handled, not at interpreter exit.
            sys.stdout.flush()
    except BrokenPipeError:
        # The buffer still holds the unwritten output; the interpreter flushes it at
        # exit, so point standard output at the null device for that flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, LookupError) as error:
        print(f"hae: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
