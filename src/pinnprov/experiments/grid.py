"""Hyperparameter grids: the cartesian product of comma-separated value lists, one axis per train flag.

Why flags (not config keys): a grid point becomes a `pinnprov train` command line, so the same parser that
validates a single run validates every point, and a point's name is readable in progress lines and tables.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class GridPoint:
    """One configuration of a sweep: the varied flags' values, in axis order."""

    values: tuple[tuple[str, str], ...]  # ((flag without dashes, value), ...)
    fixed_args: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """Short readable label, e.g. 'tanh-adam' (values only, in axis order)."""
        return "-".join(_label_part(value) for _, value in self.values) or "default"

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def train_args(self) -> list[str]:
        """The `pinnprov train` arguments of this point: the fixed ones, then the varied flags."""
        args = list(self.fixed_args)
        for flag, value in self.values:
            args += [f"--{flag}", value]
        return args


def _label_part(value: str) -> str:
    """A value as it appears in a run name: file paths by their stem, unsafe characters replaced."""
    if "/" in value or value.endswith((".csv", ".json", ".yaml", ".yml")):
        value = Path(value).stem
    return _NAME_SAFE.sub("_", value)


def split_values(flag: str, text: str) -> list[str]:
    """Parse 'a,b,c' into ['a', 'b', 'c']; empty items and duplicates are errors naming the flag."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"--{flag}: empty value in {text!r} (expected a comma-separated list such as a,b)")
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"--{flag}: duplicate value(s) {', '.join(duplicates)} in {text!r}")
    return items


def expand(axes: Mapping[str, str], fixed_args: Sequence[str] = ()) -> list[GridPoint]:
    """All combinations of the axes (first axis varies slowest), each with the same fixed arguments.

    `axes` maps a train flag (without dashes) to its comma-separated values; an axis with one value is a
    constant that still appears in labels, so 'tanh-adam' and 'tanh-rmsprop' stay self-explanatory.
    """
    names = list(axes)
    value_lists = [split_values(name, axes[name]) for name in names]
    points = [
        GridPoint(values=tuple(zip(names, combination, strict=True)), fixed_args=tuple(fixed_args))
        for combination in itertools.product(*value_lists)
    ]
    labels = [point.label for point in points]
    clashes = sorted({label for label in labels if labels.count(label) > 1})
    if clashes:  # e.g. "1e-3" on two axes that sanitise to the same label: names must stay unique per store
        raise ValueError(f"grid: configurations share the label(s) {', '.join(clashes)}; vary fewer flags at once")
    return points
