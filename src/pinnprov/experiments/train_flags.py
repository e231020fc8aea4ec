"""`pinnprov train`'s flags on other commands (sweep, paper): each value may be a comma list, i.e. a grid axis.

The flags are read from train's own parser, so a new train flag is available to sweeps without edits here, and
every value is checked with train's own type and choices before any process starts.
"""

from __future__ import annotations

import argparse

from pinnprov.experiments.grid import split_values

# train flags the experiment drivers set themselves for every run (or that make no sense per run)
MANAGED = ("experiment", "run_name", "out", "store", "otlp_endpoint", "threads", "no_progress", "activation",
           "optimizer", "with_baseline", "no_capture", "resume", "resume_agent")
NOT_A_LIST = ("domain",)  # values that contain commas themselves


def train_flag_actions() -> list[argparse.Action]:
    """The optional flags of `pinnprov train` that a driver passes through."""
    from pinnprov.experiments.training import add_train_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser)
    return [a for a in parser._actions if a.option_strings and a.dest not in MANAGED and a.dest != "help"]


def add_train_flags(parser: argparse.ArgumentParser, title: str) -> None:
    """Register train's flags on `parser` as plain strings (comma lists allowed, checked later)."""
    group = parser.add_argument_group(title)
    for action in train_flag_actions():
        if action.nargs == 0:  # switches such as --jit: passed to every run
            group.add_argument(*action.option_strings, dest=action.dest, action="store_true", help=action.help)
        else:
            group.add_argument(*action.option_strings, dest=action.dest, metavar=action.metavar or "V",
                               help=action.help)


def _long_flag(action: argparse.Action) -> str:
    return next(option for option in action.option_strings if option.startswith("--"))


def _check_type(flag: str, action: argparse.Action, value: str) -> None:
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{flag}: invalid choice {value!r} (choose from {', '.join(map(str, action.choices))})")
    if callable(action.type):
        try:
            action.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{flag}: invalid value {value!r}") from None


def collect(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """(extra axes: flag -> comma list, fixed train args) from the parsed pass-through flags."""
    axes: dict[str, str] = {}
    fixed: list[str] = []
    for action in train_flag_actions():
        value = getattr(args, action.dest, None)
        if value is None or value is False:
            continue
        flag = _long_flag(action)
        if action.nargs == 0:
            fixed.append(flag)
            continue
        values = [value] if action.dest in NOT_A_LIST else split_values(flag[2:], value)
        for item in values:
            _check_type(flag, action, item)
        if len(values) > 1:
            axes[flag[2:]] = value
        else:
            fixed += [flag, values[0]]
    return axes, fixed
