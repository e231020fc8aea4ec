"""Figure 2 of an RML ensemble from `bench/accuracy.py --ensemble N --out DIR` grids: truth, PyGIMLi, the single run,
the ensemble's mean and its std, plus a map of where the truth falls outside the 90 % interval.

Usage: python bench/uncertainty_figure.py CASE DIR OUT.png [--seed 1234] [--members 8] [--inflation C]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    from accuracy import load_data

    from pinnprov.experiments import ensemble as ens
    from pinnprov.pinn.figures import comparison_figure, grid_extent
    from pinnprov.pinn.metrics import r2
    from pinnprov.pinn.scoring import grid_for, true_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case")
    parser.add_argument("grids", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--inflation", type=float, default=ens.SPREAD_INFLATION)
    args = parser.parse_args()
    data = load_data(args.case)
    grid_x, grid_z = grid_for(data)
    truth = true_model(data)(grid_x, grid_z)
    single = np.load(args.grids / f"{args.case}-pinn-seed{args.seed}.npy")
    members = [single] + [np.load(args.grids / f"{args.case}-rml{k}-seed{args.seed}.npy")
                          for k in range(1, args.members)]
    mean, std = ens.ensemble_stats(members)
    low, high = ens.interval(mean, std, len(members), inflation=args.inflation)
    panels: list[tuple[str, np.ndarray, float | None]] = [("True model", truth, None)]
    baseline = args.grids / f"{args.case}-pygimli-seed0.npy"
    if baseline.exists():
        pygimli = np.load(baseline)
        panels.append(("PyGIMLi", pygimli, r2(pygimli, truth)))
    panels += [("Single run", single, r2(single, truth)), (f"Ensemble mean ({len(members)})", mean, r2(mean, truth))]
    outside = np.where((truth < low) | (truth > high), np.abs(mean - truth), 0.0)
    covered = ens.coverage(low, high, truth)
    comparison_figure(args.out, panels, grid_extent(grid_x, grid_z),
                      sensors=(np.unique(data.sources, axis=0), np.unique(data.receivers, axis=0)),
                      velocity_range=None, std_panel=("Ensemble std", std),
                      suptitle=f"{args.case}: 90 % interval (c = {args.inflation:g}) covers {covered:.0%} of the "
                               f"cells; Spearman(std, |error|) {ens.uncertainty_skill(std, np.abs(mean - truth)):.2f}"
                               f"; |error| outside the interval up to {outside.max():.0f} m/s")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
