"""R^2 along one long training run: how a run's answer depends on when it stops (issue 12, stability).

Trains one configuration on one data set for a fixed number of epochs with no stopping rule (the trainer's
own loop: compiled chunks, collocation redrawn per chunk), scores the velocity model every `--every` epochs and
prints one JSON line per checkpoint:
{"bench": "trajectory", "case": "layered", "label": "default", "epoch": 5000, "r2": 0.61, "data_rms_s": ...}
A stopping rule can then be replayed on the saved per-chunk history (--out DIR/<case>-<label>.npz: epoch,
data RMS, loss).

--stability: the configuration's own stopping rule (the default: converged) watches the run without ending it;
training goes on to 3x the epoch where the rule (or the epoch cap of the configuration) would have stopped it
(--epochs must not end it first), and a last line gives
{"bench": "stability", "case": ..., "stop_epoch": 31000, "r2_at_stop": 0.70, "r2_at_3x": 0.69, "delta": -0.01}
(the issue's criterion: |delta| <= 0.05 on the tuning set).

Usage: python bench/trajectory.py --case layered [--label L] [--set key=value ...] [--epochs 90000]
       [--every 2500] [--seed 1234] [--out DIR] [--stability]   (--case benchmark for the paper's data set)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
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
    parser.add_argument("--stability", action="store_true", help="run to 3x the stopping epoch, compare R^2")
    args = parser.parse_args()

    from pinnprov.pinn.trainer import configure_threads

    configure_threads(1)
    import numpy as np

    from pinnprov.pinn import model_suite
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.losses import DATA_RMS, LOSS
    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.scoring import score
    from pinnprov.pinn.stepper import make_chunk
    from pinnprov.pinn.stopping import make_rule, progress_of

    overrides = dict(item.split("=", 1) for item in args.set)
    config = TrainConfig.from_mapping({key: parse_value(value) for key, value in overrides.items()})
    planned = config.epochs  # where a real run ends if its rule never fires
    config = config.replace(seed=args.seed, epochs=args.epochs)
    data = crosshole_benchmark() if args.case == "benchmark" else model_suite.case(args.case).data()
    problem = Problem(config, data)
    chunk = make_chunk(problem, "xla" if config.jit_compile else "graph")
    rule_name = config.stopping
    rule = make_rule(rule_name, noise_level_s=config.noise_level_s, factor=config.discrepancy_factor,
                     patience=config.holdout_patience, window=config.convergence_window,
                     tolerance=config.convergence_tolerance)
    started = time.time()
    history: list[tuple[int, float, float]] = []
    epochs, end, stop_epoch, r2_at_stop = 0, args.epochs, 0, None
    while epochs < end:
        if config.collocation_redraw == "chunk" and epochs:
            problem.sampler.resample()
        records = chunk(config.steps_per_call)
        epochs += len(records)
        history.append((epochs, float(np.median(records[:, DATA_RMS])), float(np.median(records[:, LOSS]))))
        progress = progress_of(epochs - 1, records, problem.holdout_rms_s())
        if args.stability and not stop_epoch and (rule.check(progress).stop or epochs >= planned):
            stop_epoch, r2_at_stop = epochs, score(problem, data).r2
            end = 3 * epochs
        if epochs % args.every == 0:
            scored = score(problem, data)
            print(json.dumps({"bench": "trajectory", "case": args.case, "label": args.label, "seed": args.seed,
                              "epoch": epochs, "r2": scored.r2, "rmse_m_s": scored.rmse_m_s,
                              "data_rms_s": scored.data_rms_s, "noise_level_s": data.noise_rms_s,
                              "seconds": round(time.time() - started, 1),
                              "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    if args.stability:
        r2_end = score(problem, data).r2
        print(json.dumps({"bench": "stability", "case": args.case, "label": args.label, "seed": args.seed,
                          "rule": rule_name, "stop_epoch": stop_epoch, "end_epoch": epochs, "r2_at_stop": r2_at_stop,
                          "r2_at_end": r2_end, "delta": None if r2_at_stop is None or r2_end is None
                          else round(r2_end - r2_at_stop, 4), "seconds": round(time.time() - started, 1)}),
              flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez(args.out / f"{args.case}-{args.label}-seed{args.seed}.npz", history=np.asarray(history),
                 velocity=score(problem, data).grid_v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
