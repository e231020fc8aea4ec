"""Training throughput (steps/s) of the inverse PINN: eager vs compiled graph vs XLA, and the full trainer.

One JSON line per result, e.g.
{"bench": "throughput", "mode": "xla", "collocation": 10000, "steps_per_s": 66.1, ...}
Networks are 10 x 20 (tau and v); the loss is the plain three-term loss (no regulariser) unless
--regularizer is given. "trainer" runs pinn.trainer.train end to end with XLA (chunks of K compiled steps,
events replayed to an observer, resampling and steering polls between chunks) to show the loop adds no
per-step Python overhead over "xla".

Usage: python bench/throughput.py [--points 10000,50000] [--modes eager,graph,xla,trainer] [--threads N]
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


class _Clock:
    """Keeps the first epoch's start after the tracing chunk and the last epoch's end."""

    def __init__(self, skip: int) -> None:
        self.skip, self.start, self.end, self.epochs = skip, 0.0, 0.0, 0

    def on_run_start(self, event: object) -> None: ...

    def on_epoch_end(self, event: object) -> None:
        if event.epoch == self.skip:
            self.start = event.started_at
        self.end = event.ended_at
        self.epochs = event.epoch + 1

    def on_adaptation(self, event: object) -> None: ...

    def on_run_end(self, event: object) -> None: ...


def measure(mode: str, points: int, seconds: float, k: int, regularizer: str) -> dict[str, object]:
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig

    config = TrainConfig(tau_layers=10, tau_units=20, velocity_layers=10, velocity_units=20,
                         collocation_count=points, steps_per_call=k, stopping="none", collocation_redraw="chunk",
                         jit_compile=mode == "trainer", regularizer=regularizer, time_budget_s=0.0, threads=0)
    data = crosshole_benchmark()
    if mode == "trainer":
        from pinnprov.pinn.trainer import train

        # Time from the second chunk's start to the last epoch's end, from the events' own timestamps: this
        # covers the compiled calls *and* everything between them (replay to observers, resampling, steering
        # polls), but not the first chunk, which traces the step.
        steps = k * max(3, int(seconds * 30 / max(points / 10000, 1)) // k)
        clock = _Clock(skip=k)
        train(config.replace(epochs=steps), data, [clock])
        wall = clock.end - clock.start
        return {"steps": steps - k, "seconds": round(wall, 3), "steps_per_s": round((steps - k) / wall, 2)}
    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.stepper import make_chunk

    problem = Problem(config, data)
    chunk = make_chunk(problem, mode)
    k_here = 3 if mode == "eager" else k
    start = time.perf_counter()
    chunk(k_here)  # trace/compile
    first_call = time.perf_counter() - start
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        problem.sampler.resample()
        chunk(k_here)
        steps += k_here
    wall = time.perf_counter() - start
    return {"steps": steps, "seconds": round(wall, 3), "steps_per_s": round(steps / wall, 2),
            "first_call_s": round(first_call, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="10000,50000")
    parser.add_argument("--modes", default="eager,graph,xla,trainer")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = default)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    parser.add_argument("--steps-per-call", type=int, default=50)
    parser.add_argument("--regularizer", default="none", help="regulariser of v in the loss (default none)")
    args = parser.parse_args()
    from pinnprov.pinn.trainer import configure_threads

    configure_threads(args.threads)
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    for points in (int(p) for p in args.points.split(",")):
        for mode in args.modes.split(","):
            result = measure(mode, points, args.seconds, args.steps_per_call, args.regularizer)
            line = {"bench": "throughput", "mode": mode, "collocation": points, "networks": "10x20",
                    "threads": threads, "steps_per_call": args.steps_per_call, "regularizer": args.regularizer,
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                    **result}
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
