"""One module per subcommand; each defines `register(subparsers)` (see pinnprov.cli)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    # What `ArgumentParser.add_subparsers()` returns; generic only in the type stubs, hence type-checking only.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
