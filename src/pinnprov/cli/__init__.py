"""The `pinnprov` command line: argument parsing and wiring only (the composition root)."""

from pinnprov.cli.main import main

__all__ = ["main"]
