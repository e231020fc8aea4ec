"""Accuracy on the paper's crosshole benchmark: the PINN (tuned defaults of `pinnprov train`) and PyGIMLi.

Prints one JSON line per method, e.g.
{"bench": "accuracy", "method": "pinn", "r2": 0.55, "rmse_m_s": 310.0, "seconds": 512.3, ...}
The PINN stops on data alone (discrepancy principle at the data set's noise level) or at the time budget
(15 minutes by default); the exact model only scores the result. Target: PINN R2 >= 0.52 (the paper's),
PyGIMLi about 0.29 here.

Usage: python bench/accuracy.py [--methods pinn,pygimli] [--budget 900] [--seed 1234] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def run_pinn(budget_s: float, seed: int, threads: int, out: Path | None) -> dict[str, object]:
    from pinn.benchmark import crosshole_benchmark
    from pinn.config import TrainConfig
    from pinn.trainer import train

    config = TrainConfig(time_budget_s=budget_s, seed=seed, threads=threads, run_name=f"accuracy-seed{seed}")
    result = train(config, crosshole_benchmark())
    if out is not None:
        import numpy as np

        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"velocity_pinn_seed{seed}.npy", result.velocity_grid)
    m = result.metrics
    return {"r2": round(m["r2"], 4), "rmse_m_s": round(m["rmse_m_s"], 1), "seconds": round(m["seconds"], 1),
            "epochs": result.epochs, "data_rms_s": m["data_rms_s"], "stop_reason": result.stop_reason,
            "seed": seed}


def run_pygimli() -> dict[str, object]:
    from pinn.baseline_pygimli import invert
    from pinn.benchmark import crosshole_benchmark

    result = invert(crosshole_benchmark())
    return {"r2": round(result.r2, 4), "rmse_m_s": round(result.rmse_m_s, 1), "seconds": round(result.seconds, 1),
            "data_rms_s": result.data_rms_s, "lam": 1000.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="pinn,pygimli")
    parser.add_argument("--budget", type=float, default=900.0, help="PINN wall-time budget in seconds")
    parser.add_argument("--seeds", default="1234", help="comma-separated PINN seeds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="save velocity grids here")
    args = parser.parse_args()
    from pinn.trainer import configure_threads

    configure_threads(args.threads)
    for method in args.methods.split(","):
        if method == "pinn":
            for seed in (int(s) for s in args.seeds.split(",")):
                line = {"bench": "accuracy", "method": "pinn", **run_pinn(args.budget, seed, args.threads, args.out)}
                line["load_avg_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(line), flush=True)
        elif method == "pygimli":
            try:
                line = {"bench": "accuracy", "method": "pygimli", **run_pygimli()}
            except ImportError as error:
                line = {"bench": "accuracy", "method": "pygimli", "error": f"unavailable: {error}"}
            line["load_avg_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(line), flush=True)
        else:
            parser.error(f"unknown method {method!r} (choose pinn, pygimli)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
