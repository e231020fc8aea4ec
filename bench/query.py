"""Latency of the named queries on a big store: 1,000 runs x 10,000 epochs (10M epoch rows) by default.

The store is generated once through the real SQLite sink (bulk batches of PROV records, one transaction
per run) and cached under /tmp, keyed by its size; a half-built file is never reused. Each query is then
timed on a read-only connection, and one JSON line per query is printed:

  {"bench": "query", "query": "epochs", "ms_median": ..., "ms_p99": ..., "runs": 1000, "epochs": 10000, ...}

Usage: python bench/query.py [--runs 1000] [--epochs 10000] [--repeat 50] [--path FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.queries import QueryOptions, run_query  # noqa: E402
from collector.records import EpochRecord, RunEndRecord, RunStartRecord  # noqa: E402
from collector.sinks.sqlite import SqliteSink  # noqa: E402
from collector.store import open_store  # noqa: E402

T0 = 1_700_000_000.0


def _run_id(n: int) -> str:
    return f"{random.Random(n).getrandbits(128):032x}"


def generate(path: Path, runs: int, epochs: int) -> float:
    """Write the store through the sink; returns seconds taken."""
    started = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    sink = SqliteSink(partial, synchronous="OFF", export_timeout_s=600)
    optimizers = ("adam", "rmsprop")
    for n in range(runs):
        run_id, start = _run_id(n), T0 + n * 3600.0
        hyper = {
            "optimizer": optimizers[n % 2],
            "activation": "sigmoid",
            "lr.schedule": "exponential_decay",
            "lr.initial": 1e-3,
            "lr.decay_rate": 0.99,
            "lr.decay_steps": 1000,
            "seed": n,
        }
        batch: list = [
            RunStartRecord(
                run_id,
                f"{n:016x}",
                f"run-{n:05d}",
                f"exp-{n % 10}",
                start,
                hyper,
                "crosshole",
                "ab" * 32,
                100,
                "benchmark",
                "node-1",
                "bench",
            )
        ]
        clock = start
        for epoch in range(epochs):
            elapsed = 2.0 + (epoch % 7) * 0.1
            lr = 1e-3 * 0.99 ** (epoch / 1000)
            loss = 1000.0 / (epoch + 1)
            batch.append(
                EpochRecord(
                    run_id,
                    f"{epoch + 1:016x}",
                    epoch,
                    clock,
                    clock + elapsed,
                    elapsed,
                    loss,
                    loss * 1e-5,
                    loss * 1e-3,
                    loss * 0.5,
                    lr,
                )
            )
            clock += elapsed
        batch.append(RunEndRecord(run_id, f"{n + 1:08x}" + "f" * 8, clock, "completed", epochs))
        result = sink.export(batch)
        if not result.ok:
            raise SystemExit(f"generation failed: {result}")
        if n % 100 == 99:
            print(f"# generated {n + 1}/{runs} runs in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    sink.shutdown()
    partial.replace(path)
    return time.perf_counter() - started


def is_complete(path: Path, runs: int, epochs: int) -> bool:
    if not path.is_file():
        return False
    try:
        with open_store(str(path)) as store:
            rows = store.execute("SELECT COUNT(*), MIN(last_epoch), MAX(last_epoch) FROM run").rows
    except (ValueError, OSError):
        return False
    return rows == [(runs, epochs - 1, epochs - 1)]


def timed(store: object, name: str, options: QueryOptions, repeat: int) -> tuple[list[float], int]:
    samples, count = [], 0
    run_query(store, name, options)  # warm the page cache once
    for _ in range(repeat):
        begin = time.perf_counter()
        count = len(run_query(store, name, options).rows)
        samples.append((time.perf_counter() - begin) * 1000)
    return samples, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()
    path = args.path or Path(f"/tmp/pinnprov-bench-query-{args.runs}x{args.epochs}.db")
    generated_s = None
    if not is_complete(path, args.runs, args.epochs):
        generated_s = generate(path, args.runs, args.epochs)
        print(
            json.dumps(
                {
                    "bench": "query_store_generation",
                    "runs": args.runs,
                    "epochs": args.epochs,
                    "rows": args.runs * args.epochs,
                    "seconds": round(generated_s, 1),
                    "rows_per_s": round(args.runs * args.epochs / generated_s),
                }
            ),
            flush=True,
        )
    size_mb = round(os.path.getsize(path) / 1e6)
    middle = _run_id(args.runs // 2)
    cases = [
        ("epochs", QueryOptions(run_id=middle)),
        ("epochs_every_1000", QueryOptions(run_id=middle, every=1000)),
        ("epochs_last_100", QueryOptions(run_id=middle, last=100)),
        ("latest", QueryOptions()),
        ("latest_experiment", QueryOptions(experiment="exp-3")),
        ("lr", QueryOptions()),
    ]
    with open_store(str(path)) as store:
        for label, options in cases:
            name = label.split("_")[0]
            samples, rows = timed(store, name, options, args.repeat)
            samples.sort()
            p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
            print(
                json.dumps(
                    {
                        "bench": "query",
                        "query": label,
                        "ms_median": round(statistics.median(samples), 2),
                        "ms_p99": round(p99, 2),
                        "rows_returned": rows,
                        "runs": args.runs,
                        "epochs": args.epochs,
                        "store_mb": size_mb,
                        "repeat": args.repeat,
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
