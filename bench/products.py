"""What a run's products cost (issue 21): checkpoints, the saved networks and the velocity-model snapshots.

One JSON line per result:
- checkpoint: save (numpy copy + npz + fsync + rename) and load+restore time, file size, for the benchmark networks
  (the tuned default TrainConfig: tau and v 8 x 20, Adam) and a larger pair;
- networks: the tau and v Keras files (time to build and save, sizes);
- snapshot: bytes per snapshot (raw float32, base64 in the span), bytes per run at the default spacing, and the
  training thread's cost of one snapshot (evaluate v on the scoring grid, pack, emit the span through a real
  ProvenanceObserver with a BatchSpanProcessor), also per epoch amortised over the default 1,000 epochs.
Not a timed test: numbers go to docs/benchmarks.md with date, machine and commit.

    .venv/bin/python bench/products.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _median_ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 3)


def checkpoint_costs(label: str, overrides: dict[str, object], repeat: int) -> None:
    from pinnprov.pinn import checkpoints as ckpt
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.keras_export import save_networks
    from pinnprov.pinn.problem import Problem

    config = TrainConfig(**overrides)  # type: ignore[arg-type]
    problem = Problem(config, crosshole_benchmark())
    meta = {"run_id": "0" * 32, "epochs": 1000, "reported_lr": 1e-3, "rule": {"losses": [[i, 1.0] for i in range(20)]},
            "seconds": 1.0, "config": {}, "dataset_sha256": "0" * 64}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ckpt.file_name(1000)
        saves, loads = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            ckpt.save(path, problem, meta)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            ckpt.restore(problem, ckpt.load(path))
            loads.append(time.perf_counter() - start)
        parameters = sum(int(v.shape.num_elements()) for v in problem.variables)
        print(json.dumps({"bench": "products", "what": "checkpoint", "networks": label, "parameters": parameters,
                          "bytes": path.stat().st_size, "save_ms": _median_ms(saves), "load_ms": _median_ms(loads),
                          "repeat": repeat}), flush=True)
        start = time.perf_counter()
        written = save_networks(problem, Path(folder) / "networks")
        seconds = time.perf_counter() - start
        print(json.dumps({"bench": "products", "what": "networks", "networks": label,
                          "save_ms": round(1e3 * seconds, 1),
                          "bytes": {role: p.stat().st_size for role, p in written}}), flush=True)


def snapshot_costs(repeat: int, run_epochs: int) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pinnprov.capture.observer import ProvenanceObserver
    from pinnprov.capture.provider import batch_processor, build_tracer_provider
    from pinnprov.core import vocabulary as v
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.observer import DatasetIdentity, RunStarted
    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.products import DEFAULT_SNAPSHOT_EVERY, snapshot_event
    from pinnprov.pinn.scoring import grid_for

    data = crosshole_benchmark()
    problem = Problem(TrainConfig(), data)
    grid_x, grid_z = grid_for(data)
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider([batch_processor(exporter)], Resource.create({}))
    observer = ProvenanceObserver(provider, flush_promptly=False)
    run_id = "1" * 32
    observer.on_run_start(RunStarted(run_id, "bench", "bench", time.time(), {}, DatasetIdentity("b", "0" * 64, 1)))
    samples = []
    for epoch in range(repeat + 3):
        start = time.perf_counter()
        event = snapshot_event(run_id, epoch, grid_x, grid_z, problem.velocity_m_s(grid_x, grid_z))
        observer.on_model_snapshot(event)
        if epoch >= 3:  # the first calls trace the velocity network
            samples.append(time.perf_counter() - start)
    provider.force_flush()
    spans = [s for s in exporter.get_finished_spans() if s.name == v.SNAPSHOT_SPAN]
    encoded = len(str(spans[-1].attributes[v.SNAPSHOT_VALUES]))
    per_run = run_epochs // DEFAULT_SNAPSHOT_EVERY + 2  # every 1,000 epochs, the final model and the exact one
    cost_ms = _median_ms(samples)
    print(json.dumps({"bench": "products", "what": "snapshot", "grid": f"{event.nx}x{event.nz}",
                      "raw_bytes": len(event.values), "span_attribute_bytes": encoded,
                      "run_epochs": run_epochs, "snapshots_per_run": per_run,
                      "bytes_per_run": per_run * encoded, "training_thread_ms": cost_ms,
                      "training_thread_us_per_epoch": round(1e3 * cost_ms / DEFAULT_SNAPSHOT_EVERY, 3),
                      "repeat": repeat}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--run-epochs", type=int, default=40_000, help="a typical run's length (converged rule)")
    args = parser.parse_args()
    from pinnprov.pinn.trainer import configure_threads

    configure_threads(1)
    checkpoint_costs("8x20 (benchmark default)", {}, args.repeat)
    checkpoint_costs("10x64", {"tau_layers": 10, "tau_units": 64, "velocity_layers": 10, "velocity_units": 64},
                     args.repeat)
    snapshot_costs(args.repeat * 5, args.run_epochs)


if __name__ == "__main__":
    main()
