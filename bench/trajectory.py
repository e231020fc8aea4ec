"""R^2 along one long training run: how a run's answer depends on when it stops (issue 12, stability).

Trains one configuration on one data set for a fixed number of epochs with no stopping rule (the trainer's
own loop: compiled chunks, collocation redrawn per chunk), scores the velocity model every `--every` epochs and
prints one JSON line per checkpoint:
{"bench": "trajectory", "case": "layered", "label": "default", "epoch": 5000, "r2": 0.61, "data_rms_s": ...}
A stopping rule can then be replayed on the saved per-chunk history (--out DIR/<case>-<label>.npz: epoch,
data RMS, loss) to read R^2 at its stop and at 3x its stop from the same run.

Usage: python bench/trajectory.py --case layered [--label L] [--set key=value ...] [--epochs 90000]
       [--every 2500] [--seed 1234] [--out DIR]        (--case benchmark for the paper's data set)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True)
    parser.add_argument("--label", default="default")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    parser.add_argument("--epochs", type=int, default=90000)
    parser.add_argument("--every", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from pinn.trainer import configure_threads

    configure_threads(1)
    import numpy as np

    from pinn import model_suite
    from pinn.benchmark import crosshole_benchmark
    from pinn.config import TrainConfig
    from pinn.losses import DATA_RMS, LOSS
    from pinn.problem import Problem
    from pinn.scoring import score
    from pinn.stepper import make_chunk

    overrides = dict(item.split("=", 1) for item in args.set)
    config = TrainConfig.from_mapping({key: parse_value(value) for key, value in overrides.items()}).replace(
        seed=args.seed, epochs=args.epochs)
    data = crosshole_benchmark() if args.case == "benchmark" else model_suite.case(args.case).data()
    problem = Problem(config, data)
    chunk = make_chunk(problem, "xla" if config.jit_compile else "graph")
    started = time.time()
    history: list[tuple[int, float, float]] = []
    epochs = 0
    while epochs < args.epochs:
        if config.collocation_redraw == "chunk" and epochs:
            problem.sampler.resample()
        records = chunk(config.steps_per_call)
        epochs += len(records)
        history.append((epochs, float(np.median(records[:, DATA_RMS])), float(np.median(records[:, LOSS]))))
        if epochs % args.every == 0:
            scored = score(problem, data)
            print(json.dumps({"bench": "trajectory", "case": args.case, "label": args.label, "seed": args.seed,
                              "epoch": epochs, "r2": scored.r2, "rmse_m_s": scored.rmse_m_s,
                              "data_rms_s": scored.data_rms_s, "noise_level_s": data.noise_rms_s,
                              "seconds": round(time.time() - started, 1),
                              "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez(args.out / f"{args.case}-{args.label}-seed{args.seed}.npz", history=np.asarray(history),
                 velocity=score(problem, data).grid_v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
