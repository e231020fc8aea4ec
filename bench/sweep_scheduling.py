"""Static lanes (run i on slot i mod slots, each slot trains its share in order) vs Dask (free workers pull the next
run) on a simulated uneven sweep: one JSON line per (schedule, sweep).

A run is a child process that sleeps its duration (what a trainer costs the scheduler: a process that lasts; the
sleep keeps this 2-core machine's other users from skewing the comparison), launched the same way by both: the
lanes by one thread per slot, Dask by tasks on real `dask worker` processes with CPU=1 each: `dask-pull` submits
one task per free worker (what `pinnprov sweep --scheduler` does), `dask-eager` submits all at once (Dask then
assigns resource-restricted tasks to workers immediately, a static split that work stealing only partly repairs).
Measured: wall time, runs/s, and the workers' idle fraction, 1 - (sum of run durations) / (slots x wall).

    python bench/sweep_scheduling.py [--slots 4] [--runs 16] [--seed 7] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))


def simulated_run(seconds: float) -> float:
    """One 'training run': a child process that lasts `seconds`; returns how long it really took."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import time; time.sleep({seconds})"], check=True)
    return time.perf_counter() - started


def sweeps(runs: int, seed: int, scale: float) -> dict[str, list[float]]:
    rng = random.Random(seed)
    return {
        # log-normal lengths, as runs stopped early by steering or the data-only stopping rule look
        "lognormal": [scale * min(12.0, rng.lognormvariate(0.3, 0.8)) for _ in range(runs)],
        # every 4th run long: i mod slots puts them all on one lane when slots divides 4
        "every-4th-long": [scale * (6.0 if i % 4 == 0 else 1.0) for i in range(runs)],
        "uniform": [scale * 2.0 for _ in range(runs)],
    }


def static_lanes(durations: list[float], slots: int) -> float:
    lanes = [durations[i::slots] for i in range(slots)]
    threads = [threading.Thread(target=lambda lane=lane: [simulated_run(d) for d in lane]) for lane in lanes]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def dask_eager(durations: list[float], address: str) -> float:
    """Every task submitted at once: Dask assigns resource-restricted tasks to workers right away."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        started = time.perf_counter()
        futures = [client.submit(simulated_run, d, resources={"CPU": 1}, pure=False) for d in durations]
        client.gather(futures)
        return time.perf_counter() - started


def dask_pull(durations: list[float], address: str, slots: int) -> float:
    """What `pinnprov sweep --scheduler` does: one task per free unit, the next when one finishes."""
    from distributed import Client, as_completed

    with Client(address, set_as_default=False) as client:
        started = time.perf_counter()
        backlog = list(durations)
        running = as_completed([client.submit(simulated_run, backlog.pop(0), resources={"CPU": 1}, pure=False)
                                for _ in range(min(slots, len(backlog)))], loop=client.loop)
        for _done in running:
            if backlog:
                running.add(client.submit(simulated_run, backlog.pop(0), resources={"CPU": 1}, pure=False))
        return time.perf_counter() - started


def result(schedule: str, sweep: str, durations: list[float], slots: int, wall: float) -> dict[str, object]:
    busy = sum(durations)
    return {"bench": "sweep_scheduling", "schedule": schedule, "sweep": sweep, "runs": len(durations),
            "slots": slots, "busy_s": round(busy, 2), "wall_s": round(wall, 2),
            "runs_per_s": round(len(durations) / wall, 4), "idle_fraction": round(1 - busy / (slots * wall), 3),
            "ideal_wall_s": round(max(max(durations), busy / slots), 2), "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every run's length")
    args = parser.parse_args()
    from dask_cluster import local_dask_cluster  # the tests' real scheduler + `dask worker` processes

    with tempfile.TemporaryDirectory() as tmp, local_dask_cluster(
            Path(tmp), {f"w{i}": "CPU=1" for i in range(args.slots)}) as cluster:
        for name, durations in sweeps(args.runs, args.seed, args.scale).items():
            print(json.dumps(result("static-lanes", name, durations, args.slots,
                                    static_lanes(durations, args.slots))), flush=True)
            print(json.dumps(result("dask-pull", name, durations, args.slots,
                                    dask_pull(durations, cluster.address, args.slots))), flush=True)
            print(json.dumps(result("dask-eager", name, durations, args.slots,
                                    dask_eager(durations, cluster.address))), flush=True)


if __name__ == "__main__":
    main()
