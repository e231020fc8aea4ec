"""Capture overhead measured inside one training run, capture switched on and off every few chunks.

Why: on a shared machine two identical 60 s runs minutes apart can differ by tens of percent, which hides a
1 % effect. Here one process trains once; the trainer runs `steps_per_call` epochs per compiled call and then
replays them to the observers, and a switch forwards the replay to the provenance observer only in every
other segment of `segment_chunks` chunks. A chunk's period (start of its call to the start of the next call)
contains the call and the replay, so it includes everything capture costs the training thread, plus whatever
the export threads take from it. Load drift over a few seconds affects both sides alike.

The first chunk of each segment is left out on both sides: the export of the previous ON segment's last spans
spills into it. Chunk 0 (graph tracing) is left out too. `ratio` is the median over ON segments of the ON
segment's mean chunk period over the mean of its two OFF neighbours; `ratio_quartiles` shows the spread, i.e.
how much of the result is the machine's noise.

    .venv/bin/python bench/overhead_interleaved.py --seconds 120

`--system-metrics`: capture stays on throughout and the trainer's *system metrics* (pinnprov/capture/system_metrics.py)
are switched instead: in OFF segments the sampler answers with an empty sample (no /proc, psutil or NVML reading,
no points), so `ratio` is what sampling and exporting the system metrics costs the training thread. `--interval`
sets their period (default 1 s, five times the default rate, to make any cost visible).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from pinnprov.pinn.observer import Adapted, EpochEnded, RunEnded, RunStarted, TrainingObserver


class Switch:
    """Forwards epochs to `inner` only in ON segments; remembers when each chunk's compiled call started."""

    def __init__(self, inner: TrainingObserver, steps_per_call: int, segment_chunks: int) -> None:
        self.inner = inner
        self.steps = steps_per_call
        self.segment = segment_chunks
        self.chunk_starts: list[float] = []

    def is_on(self, chunk: int) -> bool:
        return (chunk // self.segment) % 2 == 0

    def on_run_start(self, event: RunStarted) -> None:
        self.inner.on_run_start(event)

    def on_epoch_end(self, event: EpochEnded) -> None:
        chunk, index = divmod(event.epoch, self.steps)
        if index == 0:
            self.chunk_starts.append(event.started_at)  # the trainer's call_start for this chunk
        if self.is_on(chunk):
            self.inner.on_epoch_end(event)

    def on_adaptation(self, event: Adapted) -> None:
        self.inner.on_adaptation(event)

    def on_run_end(self, event: RunEnded) -> None:
        self.inner.on_run_end(event)

    def on_model_snapshot(self, event: object) -> None:
        """Model snapshots (every 1,000 epochs by default, issue 21) go through in ON segments only, like epochs."""
        chunk = getattr(event, "epoch", 0) // self.steps
        handler = getattr(self.inner, "on_model_snapshot", None)
        if handler is not None and self.is_on(max(chunk - 1, 0)):
            handler(event)

    def on_artifact(self, event: object) -> None:
        handler = getattr(self.inner, "on_artifact", None)
        if handler is not None:
            handler(event)


class SystemSwitch(Switch):
    """Forwards every epoch; switches the system metrics' sampling on and off by segment instead."""

    sampling = True

    def on_epoch_end(self, event: EpochEnded) -> None:
        chunk, index = divmod(event.epoch, self.steps)
        if index == 0:
            self.chunk_starts.append(event.started_at)
            SystemSwitch.sampling = self.is_on(chunk)
        self.inner.on_epoch_end(event)


def _switchable_sampler() -> None:
    """OFF segments: the sampler reads nothing and the gauges observe nothing."""
    from pinnprov.capture import system_metrics

    read = system_metrics.SystemSampler._read

    def switched(self: system_metrics.SystemSampler) -> system_metrics.Sample:
        return read(self) if SystemSwitch.sampling else system_metrics.Sample()

    system_metrics.SystemSampler._read = switched  # type: ignore[method-assign]


def interleaved(epoch_s: float, seconds: float, segment_chunks: int = 4, system: bool = False,
                interval_s: float = 1.0) -> dict[str, object]:
    """Train for about `seconds` with capture switched every `segment_chunks` chunks; compare chunk periods.

    `system`: capture always on, the system metrics (every `interval_s`) switched instead."""
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.trainer import configure_threads, train
    from pinnprov.wiring import CaptureStats, open_capture

    configure_threads(1)
    base = TrainConfig()
    epochs = max(base.steps_per_call * segment_chunks * 4, int(seconds / epoch_s) // base.steps_per_call
                 * base.steps_per_call)
    config = base.replace(epochs=epochs, threads=1, stopping="none", run_name=f"interleaved-{os.getpid()}")
    stats = CaptureStats()
    load_before = [round(x, 2) for x in os.getloadavg()]
    if system:
        _switchable_sampler()
        os.environ["PINNPROV_SYSTEM_METRICS"], os.environ["PINNPROV_SYSTEM_METRICS_INTERVAL"] = "1", str(interval_s)
    with tempfile.TemporaryDirectory() as tmp, open_capture(store=f"{tmp}/i.sqlite", stats=stats) as (observer,):
        switch = (SystemSwitch if system else Switch)(observer, config.steps_per_call, segment_chunks)
        began = time.perf_counter()
        train(config, crosshole_benchmark(), [switch])
        trained = time.perf_counter() - began
    periods: dict[bool, list[float]] = {True: [], False: []}
    segments: dict[int, list[float]] = {}
    for chunk in range(1, len(switch.chunk_starts) - 1):
        if chunk % segment_chunks == 0:
            continue  # first chunk of a segment: the other side's export may spill into it
        period = switch.chunk_starts[chunk + 1] - switch.chunk_starts[chunk]
        periods[switch.is_on(chunk)].append(period)
        segments.setdefault(chunk // segment_chunks, []).append(period)
    # Each ON segment against the mean of its two OFF neighbours: drift slower than a few chunks cancels.
    means = {index: statistics.fmean(values) for index, values in segments.items()}
    local = [means[i] / statistics.fmean((means[i - 1], means[i + 1]))
             for i in means if i % 2 == 0 and i - 1 in means and i + 1 in means]
    quartiles = statistics.quantiles(local, n=4) if len(local) >= 2 else [float("nan")] * 3
    on, off = statistics.median(periods[True]), statistics.median(periods[False])
    return {
        "bench": "overhead_interleaved", "switched": f"system metrics every {interval_s:g} s" if system else "capture",
        "ratio": round(statistics.median(local), 4),
        "overhead_percent": round((statistics.median(local) - 1) * 100, 2),
        "ratio_quartiles": [round(quartiles[0], 4), round(quartiles[2], 4)], "segment_pairs": len(local),
        "ratio_of_medians": round(on / off, 4),
        "chunk_s_on": round(on, 4), "chunk_s_off": round(off, 4), "chunks_on": len(periods[True]),
        "chunks_off": len(periods[False]), "segment_chunks": segment_chunks, "steps_per_call": config.steps_per_call,
        "epochs": epochs, "train_s": round(trained, 1), "spans": stats.spans_ended,
        "undelivered": sum(stats.dropped.values()) + sum(stats.failed.values()), "tf_threads": 1,
        "cpus": os.cpu_count(), "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="training seconds (default 120)")
    parser.add_argument("--epoch-s", type=float, default=0.02, help="expected seconds per epoch, to size the run")
    parser.add_argument("--segment-chunks", type=int, default=4)
    parser.add_argument("--system-metrics", action="store_true", help="switch the system metrics, not capture")
    parser.add_argument("--interval", type=float, default=1.0, help="system metrics period in s (default 1)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(json.dumps(interleaved(args.epoch_s, args.seconds, args.segment_chunks, args.system_metrics,
                                 args.interval)), flush=True)


if __name__ == "__main__":
    main()
