"""Subcommands of the ``hae`` command line."""
