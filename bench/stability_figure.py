"""The stability figure: R^2 against epoch per case and configuration, from bench/trajectory.py output.

Reads the JSON lines of one or more trajectory runs (`"bench": "trajectory"` checkpoints and, with --stability,
the `"bench": "stability"` summary whose stop epoch is marked), draws one panel per case and one line per label.

Usage: python bench/stability_figure.py OUT.png RUN.jsonl [RUN.jsonl ...] [--labels old=...,default=...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--labels", default="", help="label=legend text, comma-separated")
    args = parser.parse_args()
    legends = dict(item.split("=", 1) for item in args.labels.split(",") if "=" in item)
    curves: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    stops: dict[tuple[str, str], int] = {}
    for path in args.runs:
        for line in path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if row.get("bench") == "trajectory" and row.get("r2") is not None:
                curves[row["case"]][row["label"]].append((row["epoch"], row["r2"]))
            elif row.get("bench") == "stability" and row.get("stop_epoch"):
                stops[(row["case"], row["label"])] = row["stop_epoch"]
    if not curves:
        parser.error("no trajectory lines in the given files")
    from matplotlib.figure import Figure

    cases = sorted(curves)
    figure = Figure(figsize=(4.0 * len(cases), 3.4), dpi=150, layout="constrained")
    axes = figure.subplots(1, len(cases), sharey=True, squeeze=False)[0]
    for ax, case in zip(axes, cases, strict=True):
        for label, points in sorted(curves[case].items()):
            points.sort()
            (line,) = ax.plot([p[0] / 1000 for p in points], [p[1] for p in points], label=legends.get(label, label))
            if (case, label) in stops:
                stop = stops[(case, label)] / 1000
                ax.axvline(stop, color=line.get_color(), linestyle=":", linewidth=1)
                ax.axvspan(stop, 3 * stop, color=line.get_color(), alpha=0.06)
        ax.set_title(case)
        ax.set_xlabel("epoch (thousands)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("R² against the exact model")
    axes[0].legend(fontsize="small", loc="lower right")
    figure.suptitle("R² along one run: dotted = where the default rule stops, shaded = up to 3x that epoch")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    print(json.dumps({"bench": "stability_figure", "out": str(args.out), "cases": cases}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
