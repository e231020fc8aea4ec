"""pinnprov's run API against MLflow, side by side in one process run, on one loop that reports the same five
numbers per epoch (L, L_BC, L_R, L_D, learning rate).

Each variant runs the same loop of `--epochs` epochs; an epoch is `--epoch-ms` of sleep (a training step that
releases the GIL, as TensorFlow's and PyTorch's ops do) and then the logging call. Per variant, one JSON line:

- `log_us_median`, `log_us_p99`: training-thread time of the logging call per logged epoch (perf_counter_ns
  around the call);
- `cpu_us_per_epoch`: process CPU time (every thread: the loop, the capture's worker, the exporters, MLflow's
  threads) from the start of the run to the end of its final wait, per epoch, minus the no-logging baseline's;
- `start_s`: opening the run (imports, store, schema); not in the CPU per epoch, which counts from the open run;
- `end_wait_s`: the wait at the end of the run (`Run.end()`, `mlflow.end_run()` with its async flush);
- `read_40k_s`: the time to read one run's 40,000-epoch loss history back (pinnprov: `run_query(..., "epochs")`
  on the store; MLflow: `MlflowClient.get_metric_history(run_id, "loss")`). The 40,000-epoch runs are written
  beforehand: pinnprov's through the run API, MLflow's with `log_batch` (its per-epoch calls would take minutes).

Variants: `baseline` (no logging), `pinnprov-sqlite` (the run API into an embedded SQLite store),
`pinnprov-collector` (the run API to a real `pinnprov collector` on loopback, OTLP/gRPC; the collector's own CPU
is reported apart as `collector_cpu_us_per_epoch`), `mlflow-sync` (`mlflow.log_metrics`, SQLite backend) and
`mlflow-async` (`synchronous=False`). Needs the `bench` extra (mlflow); without it the MLflow lines say so.

    .venv/bin/python bench/peers.py --epochs 2000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

READ_EPOCHS = 40_000
LOSSES = ("loss", "loss_bc", "loss_residual", "loss_data", "learning_rate")


def _numbers(epoch: int) -> tuple[float, float, float, float, float]:
    decay = 1.0 / (1.0 + epoch)
    return decay, 0.1 * decay, 0.5 * decay, 0.4 * decay, 1e-3 * 0.999**epoch


def _loop(epochs: int, epoch_s: float, log: Callable[[int, tuple[float, ...]], None] | None) -> list[int]:
    """The training loop: `epoch_s` of GIL-free work, then one logging call; its durations in ns."""
    durations = []
    clock = time.perf_counter_ns
    for epoch in range(epochs):
        time.sleep(epoch_s)
        values = _numbers(epoch)
        if log is not None:
            began = clock()
            log(epoch, values)
            durations.append(clock() - began)
    return durations


def _result(name: str, epochs: int, durations: list[int], cpu_s: float, baseline_cpu_us: float,
            end_wait_s: float, **extra: Any) -> dict[str, Any]:
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0
    return {
        "bench": "peers", "variant": name, "epochs": epochs,
        "log_us_median": round(statistics.median(ordered) / 1e3, 2) if ordered else 0.0,
        "log_us_p99": round(p99 / 1e3, 2),
        "cpu_us_per_epoch": round(cpu_s / epochs * 1e6 - baseline_cpu_us, 1),
        "end_wait_s": round(end_wait_s, 3), **extra,
    }


def baseline(epochs: int, epoch_s: float) -> float:
    """CPU microseconds per epoch of the loop without logging."""
    cpu = time.process_time()
    _loop(epochs, epoch_s, None)
    return (time.process_time() - cpu) / epochs * 1e6


def _read_pinnprov(store_url: str, run_id: str) -> tuple[float, int]:
    import pinnprov

    began = time.perf_counter()
    with pinnprov.open_store(store_url) as store:
        table = pinnprov.run_query(store, "epochs", pinnprov.QueryOptions(run_id=run_id, every=1))
    return time.perf_counter() - began, len(table.rows)


def _wait_epochs(store_url: str, run_id: str, count: int, timeout_s: float = 300.0) -> None:
    """Until the store holds `count` epochs of the run (a collector writes after the sender is done)."""
    import pinnprov

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with pinnprov.open_store(store_url) as store:
                held = store.execute("SELECT COUNT(*) FROM epoch_metric WHERE run_id = :r", {"r": run_id}).rows
            if held and held[0][0] >= count:
                return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{store_url}: run {run_id} did not reach {count} epochs")


def pinnprov_run(name: str, epochs: int, epoch_s: float, baseline_cpu_us: float, store_url: str,
                 **settings: Any) -> dict[str, Any]:
    import pinnprov

    began = time.perf_counter()
    run = pinnprov.start_run(f"{name}-{os.getpid()}", experiment="peers", **settings)
    start_s = time.perf_counter() - began
    cpu = time.process_time()  # from the open run: imports and opening the store are once per process

    def log(epoch: int, v: tuple[float, ...]) -> None:
        run.log_epoch(epoch, loss=v[0], loss_bc=v[1], loss_residual=v[2], loss_data=v[3], learning_rate=v[4])

    durations = _loop(epochs, epoch_s, log)
    began = time.perf_counter()
    run.end()
    end_wait = time.perf_counter() - began
    cpu_s = time.process_time() - cpu
    _wait_epochs(store_url, run.run_id, epochs)
    return _result(name, epochs, durations, cpu_s, baseline_cpu_us, end_wait, start_s=round(start_s, 3),
                   dropped=run.dropped)


def pinnprov_read(name: str, store_url: str, **settings: Any) -> dict[str, Any]:
    """A 40,000-epoch run written through the run API as fast as it goes, then read back."""
    import pinnprov

    began = time.perf_counter()
    with pinnprov.start_run(f"{name}-40k-{os.getpid()}", experiment="peers", steering=False, **settings) as run:
        for epoch in range(READ_EPOCHS):
            v = _numbers(epoch)
            run.log_epoch(epoch, loss=v[0], loss_bc=v[1], loss_residual=v[2], loss_data=v[3], learning_rate=v[4])
    _wait_epochs(store_url, run.run_id, READ_EPOCHS)
    written = time.perf_counter() - began
    seconds, count = _read_pinnprov(store_url, run.run_id)
    assert count == READ_EPOCHS, count
    return {"read_40k_s": round(seconds, 3), "write_40k_s": round(written, 2)}


@contextmanager
def collector(workdir: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen[bytes]]]:
    """A real `pinnprov collector` on loopback (ports chosen by the OS); yields its endpoints and process."""
    ready = workdir / "ready.json"
    command = [sys.executable, "-m", "pinnprov", "collector", "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint",
               "127.0.0.1:0", "--store", f"sqlite:///{workdir / 'collector.db'}", "--spool-dir",
               str(workdir / "collector-spool"), "--ready-file", str(ready)]
    with open(workdir / "collector.log", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"collector did not start: {(workdir / 'collector.log').read_text()[-2000:]}")
            time.sleep(0.05)
        endpoints = json.loads(ready.read_text())
        yield endpoints, process
    finally:
        process.terminate()
        process.wait(60)


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mlflow_run(name: str, epochs: int, epoch_s: float, baseline_cpu_us: float, uri: str,
               synchronous: bool) -> dict[str, Any]:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("peers")
    began = time.perf_counter()
    mlflow.start_run(run_name=f"{name}-{os.getpid()}")
    start_s = time.perf_counter() - began
    cpu = time.process_time()

    def log(epoch: int, v: tuple[float, ...]) -> None:
        mlflow.log_metrics(dict(zip(LOSSES, v, strict=True)), step=epoch, synchronous=synchronous)

    durations = _loop(epochs, epoch_s, log)
    began = time.perf_counter()
    if not synchronous:
        mlflow.flush_async_logging()
    mlflow.end_run()
    end_wait = time.perf_counter() - began
    cpu_s = time.process_time() - cpu
    return _result(name, epochs, durations, cpu_s, baseline_cpu_us, end_wait, start_s=round(start_s, 3))


def mlflow_read(uri: str) -> dict[str, Any]:
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("peers") or client.get_experiment(client.create_experiment("peers"))
    run = client.create_run(experiment.experiment_id, run_name=f"mlflow-40k-{os.getpid()}")
    began = time.perf_counter()
    now = int(time.time() * 1000)
    batch: list[Metric] = []
    for epoch in range(READ_EPOCHS):
        for key, value in zip(LOSSES, _numbers(epoch), strict=True):
            batch.append(Metric(key, value, now, epoch))
        if len(batch) >= 1000 - len(LOSSES):
            client.log_batch(run.info.run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch)
    client.set_terminated(run.info.run_id)
    written = time.perf_counter() - began
    began = time.perf_counter()
    history = client.get_metric_history(run.info.run_id, "loss")
    seconds = time.perf_counter() - began
    assert len(history) == READ_EPOCHS, len(history)
    return {"read_40k_s": round(seconds, 3), "write_40k_s": round(written, 2)}


def machine() -> dict[str, Any]:
    model = ""
    with suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "load": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2000, help="epochs per timed run (default 2000)")
    parser.add_argument("--epoch-ms", type=float, default=1.7, help="GIL-free work per epoch (default 1.7 ms)")
    parser.add_argument("--no-read", action="store_true", help="skip the 40,000-epoch read-back")
    parser.add_argument("--only", nargs="*", help="variants to run (default all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    os.environ.pop("PINNPROV_STORE", None)
    epoch_s = args.epoch_ms / 1e3
    wanted = set(args.only or ("pinnprov-sqlite", "pinnprov-collector", "mlflow-sync", "mlflow-async"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["PINNPROV_SPOOL_DIR"] = str(tmp / "spool")
        base_us = baseline(args.epochs, epoch_s)
        print(json.dumps({"bench": "peers", "variant": "baseline", "epochs": args.epochs, "epoch_ms": args.epoch_ms,
                          "cpu_us_per_epoch": round(base_us, 1), **machine()}), flush=True)
        results: dict[str, dict[str, Any]] = {}
        if "pinnprov-sqlite" in wanted:
            url = f"sqlite:///{tmp / 'pinnprov.db'}"
            result = pinnprov_run("pinnprov-sqlite", args.epochs, epoch_s, base_us, url, store=url)
            if not args.no_read:
                result.update(pinnprov_read("pinnprov-sqlite", url, store=url))
            results["pinnprov-sqlite"] = result
            print(json.dumps(result), flush=True)
        if "pinnprov-collector" in wanted:
            with collector(tmp) as (endpoints, process):
                url = f"sqlite:///{tmp / 'collector.db'}"
                remote = {"otlp_endpoint": endpoints["grpc"], "steering_endpoint_url": endpoints["http"]}
                before = _process_cpu_s(process.pid)
                result = pinnprov_run("pinnprov-collector", args.epochs, epoch_s, base_us, url, **remote)
                result["collector_cpu_us_per_epoch"] = round((_process_cpu_s(process.pid) - before) / args.epochs
                                                             * 1e6, 1)
                if not args.no_read:
                    result.update(pinnprov_read("pinnprov-collector", url, **remote))
            results["pinnprov-collector"] = result
            print(json.dumps(result), flush=True)
        for name, synchronous in (("mlflow-sync", True), ("mlflow-async", False)):
            if name not in wanted:
                continue
            try:
                import mlflow  # noqa: F401
            except ImportError:
                print(json.dumps({"bench": "peers", "variant": name, "skipped": "mlflow not installed "
                                  "(pip install '.[bench]')"}), flush=True)
                continue
            uri = f"sqlite:///{tmp / 'mlflow.db'}"
            result = mlflow_run(name, args.epochs, epoch_s, base_us, uri, synchronous)
            if not args.no_read and synchronous:
                result.update(mlflow_read(uri))
            results[name] = result
            print(json.dumps(result), flush=True)
        mine, theirs = results.get("pinnprov-sqlite"), results.get("mlflow-async")
        if mine and theirs:
            cost = mine["log_us_median"] + max(mine["cpu_us_per_epoch"], 0.0)
            peer = theirs["log_us_median"] + max(theirs["cpu_us_per_epoch"], 0.0)
            print(json.dumps({"bench": "peers", "variant": "ratio", "pinnprov_sqlite_over_mlflow_async":
                              round(cost / peer, 4) if peer else None,
                              "definition": "(thread median + CPU per epoch) pinnprov-sqlite / mlflow-async"}),
                  flush=True)


if __name__ == "__main__":
    main()
