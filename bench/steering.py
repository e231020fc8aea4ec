"""Cost of steering for the trainer: the per-epoch poll, the store read behind it, command latency, and the
training throughput with a live StoreCommandSource against none at all.

    .venv/bin/python bench/steering.py                 # 4 pairs of 20000-epoch tiny runs (a few minutes)
    .venv/bin/python bench/steering.py --epochs 500 --pairs 1   # smoke run

One JSON line per result: steering_poll_cost, steering_fetch_cost, steering_latency, steering_overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TINY = dict(tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=200,
            boundary_points=20, steps_per_call=20, stopping="none", threads=1, seed=5)


def _emit(**fields: object) -> None:
    print(json.dumps({**fields, "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)


def _store_with_runs(path: Path, runs: int, commands_per_run: int) -> tuple[str, str]:
    """A store with `runs` running runs, each with acknowledged commands; returns (url, one run id)."""
    from pinnprov.core import steering
    from pinnprov.store import steering_channel as channel
    from pinnprov.store.access import acknowledge_command, open_store
    from pinnprov.store.records import RunStartRecord
    from pinnprov.store.sqlite_sink import SqliteSink

    sink = SqliteSink(path)
    ids = [secrets.token_hex(16) for _ in range(runs)]
    sink.export([RunStartRecord(r, secrets.token_hex(8), f"run-{i}", "bench", time.time(), {})
                 for i, r in enumerate(ids)])
    sink.shutdown()
    url = f"sqlite:///{path}"
    with open_store(url, read_only=False) as store:
        for run_id in ids:
            for _ in range(commands_per_run):
                command = steering.new_command("scale_lr", 0.9)
                channel.submit(store, run_id, command)
                acknowledge_command(store, command.command_id, applied=True)
    return url, ids[0]


def poll_cost(url: str, run_id: str, calls: int = 1_000_000) -> None:
    from pinnprov.wiring import store_command_source

    with store_command_source(url, interval_s=0.5) as source:
        source.poll(run_id, 0)  # starts the worker
        started = time.perf_counter()
        for epoch in range(calls):
            source.poll(run_id, epoch)
        elapsed = time.perf_counter() - started
    _emit(bench="steering_poll_cost", source="StoreCommandSource", calls=calls,
          ns_per_poll=round(elapsed / calls * 1e9, 1), fetches_meanwhile=source.fetches)


def fetch_cost(url: str, run_id: str, repeats: int = 2000) -> None:
    from pinnprov.store.access import open_store
    from pinnprov.store.steering_channel import pending

    with open_store(url, read_only=False) as store:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            pending(store, run_id)
            times.append(time.perf_counter() - started)
        commands = store.execute("SELECT COUNT(*) FROM steering_command").rows[0][0]
    _emit(bench="steering_fetch_cost", commands_in_store=commands, median_us=round(statistics.median(times) * 1e6, 1),
          p99_us=round(sorted(times)[int(0.99 * len(times))] * 1e6, 1))


def latency(url: str, run_id: str, repeats: int = 10, interval_s: float = 0.5) -> None:
    """Seconds from `pinnprov steer` writing a command to the trainer's poll() returning it."""
    from pinnprov.core import steering
    from pinnprov.store import steering_channel as channel
    from pinnprov.store.access import open_store
    from pinnprov.wiring import store_command_source

    delays = []
    with store_command_source(url, interval_s=interval_s) as source, open_store(url, read_only=False) as store:
        source.poll(run_id, 0)
        for _ in range(repeats):
            time.sleep(interval_s * 0.37)  # desynchronise from the worker's schedule
            command = steering.new_command("scale_lr", 1.0)
            channel.submit(store, run_id, command)
            started = time.perf_counter()
            while not source.poll(run_id, 0):
                time.sleep(0.001)
            delays.append(time.perf_counter() - started)
            source.acknowledge(run_id, command, True, "")
    _emit(bench="steering_latency", interval_s=interval_s, repeats=repeats,
          median_s=round(statistics.median(delays), 3), max_s=round(max(delays), 3))


def overhead(url: str, epochs: int, pairs: int) -> None:
    """Training with NoCommands vs a live StoreCommandSource, alternating in this process.

    Reports median ratios (store / none) of wall time and of process CPU time (training plus the poller's
    worker thread); CPU time is what a loaded, shared machine disturbs least. 1.0 = no overhead.
    """
    from pinnprov.capture.steering_poller import StoreCommandSource
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.steering import NoCommands
    from pinnprov.pinn.trainer import configure_threads, train
    from pinnprov.wiring import store_command_source

    configure_threads(1)
    data = crosshole_benchmark()
    config = TrainConfig(**TINY, epochs=epochs)
    train(config.replace(epochs=200), data)  # warm-up: imports, first tracing
    wall: dict[str, list[float]] = {"none": [], "store": []}
    cpu: dict[str, list[float]] = {"none": [], "store": []}
    fetches = 0
    for pair in range(pairs):
        order = ("none", "store") if pair % 2 == 0 else ("store", "none")
        for kind in order:
            source = store_command_source(url, interval_s=0.5) if kind == "store" else NoCommands()
            started, cpu_started = time.perf_counter(), time.process_time()
            train(config, data, (), source)
            wall[kind].append(time.perf_counter() - started)
            cpu[kind].append(time.process_time() - cpu_started)
            if isinstance(source, StoreCommandSource):
                source.close()
                fetches += source.fetches
    wall_ratio = statistics.median(s / n for s, n in zip(wall["store"], wall["none"], strict=True))
    cpu_ratio = statistics.median(s / n for s, n in zip(cpu["store"], cpu["none"], strict=True))
    _emit(bench="steering_overhead", epochs=epochs, pairs=pairs, steps_per_poll=TINY["steps_per_call"],
          epochs_per_s_none=round(epochs / statistics.median(wall["none"]), 1),
          epochs_per_s_store=round(epochs / statistics.median(wall["store"]), 1),
          wall_ratio_median=round(wall_ratio, 4), cpu_ratio_median=round(cpu_ratio, 4),
          store_fetches=fetches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        url, run_id = _store_with_runs(Path(tmp) / "bench.db", runs=1000, commands_per_run=5)
        poll_cost(url, run_id)
        fetch_cost(url, run_id)
        latency(url, run_id)
        overhead(url, args.epochs, args.pairs)


if __name__ == "__main__":
    main()
