"""Overhead of provenance capture: the same training run without and with capture into the embedded store.

Each run is its own process (same start-up, same TensorFlow tracing), one TensorFlow thread, the benchmark
configuration with a fixed epoch count (stopping rule off, so both runs do identical work). Runs alternate
(off/on, on/off, ...) so that drift in the load of this shared machine hits both sides alike; the result is
the median of the per-pair ratios. Also measured in isolation: the training-thread cost of one
`on_epoch_end` call into a live embedded capture (its SQLite writer busy in the background).

    .venv/bin/python bench/overhead.py                   # >= 60 s of training per run, 4 pairs
    .venv/bin/python bench/overhead.py --seconds 5 --pairs 1   # smoke run

Also runs bench/overhead_interleaved.py (capture switched on and off within one run, 2 x --seconds), the
comparison that survives a busy shared machine: {"bench": "overhead_interleaved", ...}.

Prints one JSON line per result: {"bench": "overhead", ...} and {"bench": "observer_epoch_cost", ...}.
`ratio` is the median wall-time ratio (what a user waits); `cpu_ratio` the median ratio of the process's
CPU time (training thread plus the export threads), which a busy shared machine disturbs far less and
which bounds what capture takes from the other jobs on the node.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CALIBRATION_EPOCHS = 300


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _EpochTimes:
    """A plain TrainingObserver that keeps each epoch's wall time (for calibration only)."""

    def __init__(self) -> None:
        self.elapsed: list[float] = []

    def on_run_start(self, event: object) -> None: ...

    def on_epoch_end(self, event: object) -> None:
        self.elapsed.append(event.elapsed_s)  # type: ignore[attr-defined]

    def on_adaptation(self, event: object) -> None: ...

    def on_run_end(self, event: object) -> None: ...


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(epochs: int, capture: bool, store: str, capture_every: int, calibrate: bool) -> dict[str, float]:
    """One training run in this process; returns its timings (wall and CPU of the whole process)."""
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.trainer import configure_threads, train
    from pinnprov.wiring import CaptureStats, open_capture

    config = TrainConfig(epochs=epochs, threads=1, stopping="none", run_name=f"overhead-{os.getpid()}")
    configure_threads(1)
    data = crosshole_benchmark()
    stats = CaptureStats()
    times = _EpochTimes()
    began = time.perf_counter()
    with open_capture(store=store, capture_every=capture_every, enabled=capture, stats=stats) as observers:
        opened, cpu_opened = time.perf_counter(), _cpu_s()
        result = train(config, data, [*observers, times] if calibrate else observers)
        trained, cpu_trained = time.perf_counter(), _cpu_s()
    closed, cpu_closed = time.perf_counter(), _cpu_s()
    dropped = sum(stats.dropped.values()) + sum(stats.failed.values())
    steady = statistics.median(times.elapsed[len(times.elapsed) // 2:]) if times.elapsed else 0.0
    return {"train_s": trained - opened, "total_s": closed - began, "close_s": closed - trained,
            "cpu_train_s": cpu_trained - cpu_opened, "cpu_total_s": cpu_closed - cpu_opened,
            "epochs": result.epochs, "spans": stats.spans_ended, "undelivered": dropped, "epoch_s": steady}


def _run(epochs: int, capture: bool, store: Path, capture_every: int, calibrate: bool = False) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--epochs", str(epochs),
               "--store", f"sqlite:///{store}", "--capture-every", str(capture_every)]
    if capture:
        command.append("--capture")
    if calibrate:
        command.append("--calibrate")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"overhead worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _interleaved(epoch_s: float, seconds: float) -> str:
    """The in-run on/off comparison (bench/overhead_interleaved.py) in its own process; its JSON line."""
    command = [sys.executable, str(Path(__file__).with_name("overhead_interleaved.py")), "--seconds", str(seconds),
               "--epoch-s", str(epoch_s)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"interleaved overhead run failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _epoch_events(count: int) -> list:
    from pinnprov.pinn.observer import EpochEnded

    now = time.time()
    return [EpochEnded(i, now + i * 1e-3, now + (i + 1) * 1e-3, 1e-3, 0.0123, 1.2e-6, 4.5e-4, 1.1e-2, 9.9e-4,
                       {"data_rms_s": 2.1e-5, "objective": 0.0123}) for i in range(count)]


def _timed_calls(capture_every: int, events: list, burst: int, pause_s: float) -> tuple[list, list, float]:
    """Microseconds per on_epoch_end (wall, and CPU of the calling thread) per burst of `burst` events, and the
    process CPU per epoch from the first event to the end of the final flush (all threads: export included).

    The thread CPU time is what the call itself costs; the wall time adds waiting for the GIL and, on a shared
    machine, for a core.
    """
    import uuid

    from pinnprov.pinn.observer import DatasetIdentity, RunEnded, RunStarted
    from pinnprov.wiring import open_capture

    wall: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, open_capture(store=f"{tmp}/cost.sqlite",
                                                            capture_every=capture_every) as (observer,):
        observer.on_run_start(RunStarted(uuid.uuid4().hex, "cost", "bench", time.time(), {"optimizer": "adam"},
                                         DatasetIdentity("crosshole", "0" * 64, 100, "benchmark")))
        time.sleep(0.5)
        process_began = _cpu_s()
        for start in range(0, len(events), burst):
            chunk = events[start:start + burst]
            began, began_cpu = time.perf_counter(), time.thread_time()
            for event in chunk:
                observer.on_epoch_end(event)
            cpu.append((time.thread_time() - began_cpu) / len(chunk) * 1e6)
            wall.append((time.perf_counter() - began) / len(chunk) * 1e6)
            if pause_s:
                time.sleep(pause_s)  # like TensorFlow computing the next chunk: the GIL is free for the exporter
        observer.on_run_end(RunEnded("completed", time.time(), len(events)))
    return wall, cpu, (_cpu_s() - process_began) / len(events) * 1e6


def observer_epoch_cost(capture_every: int) -> dict[str, object]:
    """Training-thread cost of on_epoch_end into a live embedded capture, events shaped like the trainer's.

    isolated: 20 000 calls with export held back (no background thread competing for the GIL): the cost of
    building and ending the spans and metrics. trainer_like: bursts of 100 events (one compiled chunk) with a
    0.25 s pause between them, export running as configured: what the trainer actually pays.
    """
    held = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "65536"}
    saved = {key: os.environ.get(key) for key in held}
    os.environ.update(held)
    try:
        isolated_wall, isolated_cpu, _ = _timed_calls(capture_every, _epoch_events(20_000), 4_000, 0.0)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    bursts_wall, bursts_cpu, process_cpu = _timed_calls(capture_every, _epoch_events(4_000), 100, 0.25)
    return {"bench": "observer_epoch_cost", "capture_every": capture_every,
            "us_cpu_isolated": round(statistics.median(isolated_cpu), 2),
            "us_wall_isolated": round(statistics.median(isolated_wall), 2),
            "us_cpu_trainer_like": round(statistics.median(bursts_cpu), 2),
            "us_wall_trainer_like": round(statistics.median(bursts_wall), 2),
            "us_wall_trainer_like_p90": round(statistics.quantiles(bursts_wall, n=10)[-1], 2),
            "us_cpu_all_threads_trainer_like": round(process_cpu, 1), "load": _load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="training seconds per run (default 60)")
    parser.add_argument("--pairs", type=int, default=4, help="with/without pairs (default 4)")
    parser.add_argument("--capture-every", type=int, default=1)
    parser.add_argument("--epochs", type=int, help="fixed epoch count (default: calibrated to --seconds)")
    parser.add_argument("--skip-micro", action="store_true", help="skip the on_epoch_end micro-benchmark")
    parser.add_argument("--skip-interleaved", action="store_true", help="skip the in-run on/off comparison")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--capture", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--calibrate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.epochs, args.capture, args.store, args.capture_every, args.calibrate)))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "overhead.sqlite"
        epochs = args.epochs
        if epochs is None:
            calibration = _run(CALIBRATION_EPOCHS, False, store, 1, calibrate=True)  # steady-state epoch time
            epochs = max(CALIBRATION_EPOCHS, int(args.seconds / calibration["epoch_s"]))
        without: list[dict] = []
        with_capture: list[dict] = []
        for pair in range(args.pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)
            for capture in order:
                (with_capture if capture else without).append(_run(epochs, capture, store, args.capture_every))
    ratios = [w["train_s"] / o["train_s"] for w, o in zip(with_capture, without, strict=True)]
    ratios_total = [w["total_s"] / o["total_s"] for w, o in zip(with_capture, without, strict=True)]
    cpu_ratios = [w["cpu_total_s"] / o["cpu_total_s"] for w, o in zip(with_capture, without, strict=True)]
    ratio = statistics.median(ratios)
    print(json.dumps({
        "bench": "overhead", "ratio": round(ratio, 4), "overhead_percent": round((ratio - 1) * 100, 2),
        "ratio_total": round(statistics.median(ratios_total), 4),
        "cpu_ratio": round(statistics.median(cpu_ratios), 4), "cpu_ratios": [round(r, 4) for r in cpu_ratios],
        "pairs": args.pairs,
        "capture_every": args.capture_every, "epochs": epochs, "ratios": [round(r, 4) for r in ratios],
        "train_s_without": [round(r["train_s"], 2) for r in without],
        "train_s_with": [round(r["train_s"], 2) for r in with_capture],
        "close_s_with": [round(r["close_s"], 3) for r in with_capture],
        "spans": with_capture[0]["spans"], "undelivered": sum(r["undelivered"] for r in with_capture),
        "tf_threads": 1, "cpus": os.cpu_count(), "load_before": load_before, "load_after": _load(),
    }), flush=True)
    epoch_s = calibration["epoch_s"] if args.epochs is None else statistics.median(
        r["train_s"] / r["epochs"] for r in without)
    if not args.skip_interleaved:
        print(_interleaved(epoch_s, 2 * args.seconds), flush=True)
    if not args.skip_micro:
        for every in sorted({1, args.capture_every, 10}):
            cost = observer_epoch_cost(every)
            print(json.dumps(cost), flush=True)
            # Bottom-up estimate, robust to the machine's load: what capture costs per epoch of this run.
            print(json.dumps({
                "bench": "overhead_accounting", "capture_every": every, "epoch_s": round(epoch_s, 5),
                "training_thread_percent": round(cost["us_cpu_trainer_like"] / (epoch_s * 1e6) * 100, 3),
                "all_threads_cpu_percent": round(cost["us_cpu_all_threads_trainer_like"] / (epoch_s * 1e6) * 100, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
