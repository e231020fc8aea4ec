"""The `pinnprov` console script: finds the subcommands in `pinnprov.cli.commands` and runs one.

Each module of `pinnprov.cli.commands` defines `register(subparsers)` and sets `handler=` on its parser, so
adding a command never edits this file. Handlers import their heavy dependencies (TensorFlow, gRPC)
lazily, so `pinnprov query` starts fast. Errors a user can fix become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

import pinnprov
import pinnprov.cli.commands

EXIT_USAGE = 2


class UserError(Exception):
    """A problem the user can fix (bad input, unknown run, unreachable service): shown as one line."""


def error_line(prog: str, message: str) -> str:
    """The one shape of every error the CLI prints: `pinnprov COMMAND: error: MESSAGE`, one line."""
    first = message.splitlines()[0] if message else "error"
    return f"{prog}: error: {first}\n"


class OneLineParser(argparse.ArgumentParser):
    """Argparse prints its whole usage on a bad flag; users get one line naming the problem.

    Subcommand parsers are created with the parent's class (argparse's default), so every command gets it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, error_line(self.prog, message))


def _quiet_tensorflow() -> None:
    # TensorFlow prints C++ start-up chatter unless told otherwise *before* it is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pinnprov", description=(pinnprov.__doc__ or "").splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pinnprov {pinnprov.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(pinnprov.cli.commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"pinnprov.cli.commands.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (UserError, ValueError, FileNotFoundError, PermissionError) as error:
        print(error_line(f"pinnprov {args.command}", str(error) or type(error).__name__), end="", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"pinnprov {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
