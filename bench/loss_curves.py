"""The saw-tooth in the loss curves users read (Figure 3, Kibana, the progress bar), before and after (issue 12).

Trains the benchmark twice with the same seed and no stopping rule, once drawing collocation points once per
chunk of 100 steps (the old behaviour: every chunk's first steps report the residual on new points, the rest on
points the networks are fitting) and once per step (today's default), with the real trainer. Prints per mode:
{"bench": "loss_curves", "redraw": "chunk", "sawtooth": 3.1, "steps_per_s": 610, ...}
where sawtooth = median over chunks of (L_R of a chunk's first step) / (median L_R of its steps 10-100):
1 means no saw-tooth at the chunk boundaries. `excursions_per_1000` counts epochs whose L_R exceeds 3x the
median of the 101 epochs around it: those are optimiser excursions (a few epochs long, anywhere in a chunk, fewer
as the learning rate anneals), not redraws. `steps_per_s` compares the cost of the two modes (one TensorFlow
thread). With --figure
PATH it draws Figure 3 for both modes side by side (residual loss per epoch, log scale).

Usage: python bench/loss_curves.py [--epochs 6000] [--figure docs/figures/loss_sawtooth.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()

    from pinnprov.pinn.trainer import configure_threads

    configure_threads(1)
    import numpy as np

    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.losses import RECORD_FIELDS
    from pinnprov.pinn.trainer import train

    residual = RECORD_FIELDS.index("loss_residual")
    curves = {}
    for redraw in ("chunk", "step"):
        config = TrainConfig(epochs=args.epochs, seed=args.seed, stopping="none", collocation_redraw=redraw,
                             time_budget_s=0)
        result = train(config, crosshole_benchmark())
        loss = result.history[:, residual]
        k = config.steps_per_call
        chunks = loss[: len(loss) // k * k].reshape(-1, k)[1:]  # the first chunk starts from random networks
        jump = chunks[:, 0] / np.median(chunks[:, 10:], axis=1)
        sawtooth = float(np.median(jump))
        window = np.lib.stride_tricks.sliding_window_view(np.pad(loss, 50, mode="edge"), 101)
        excursions = int(np.sum(loss[k:] > 3 * np.median(window, axis=1)[k:]))  # after the first chunk
        curves[f"points drawn every {redraw}"] = (np.arange(len(loss)), loss)
        print(json.dumps({"bench": "loss_curves", "redraw": redraw, "epochs": result.epochs,
                          "sawtooth": round(sawtooth, 3),
                          "excursions_per_1000": round(1000 * excursions / (len(loss) - k), 2),
                          "steps_per_s": round(result.epochs / result.seconds, 1),
                          "r2": round(result.metrics["r2"], 4), "load_avg_1m": round(os.getloadavg()[0], 2)}),
              flush=True)
    if args.figure:
        from pinnprov.pinn.figures import loss_curves_figure

        args.figure.parent.mkdir(parents=True, exist_ok=True)
        loss_curves_figure(args.figure, curves, "Residual loss L_R per epoch, benchmark, same seed",
                           ylabel="L_R")
    return 0


if __name__ == "__main__":
    sys.exit(main())
