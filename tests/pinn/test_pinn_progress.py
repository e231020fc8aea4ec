"""The tqdm progress observer shows epochs, every loss component and the learning rate."""

from __future__ import annotations

import io
import time

from pinnprov.pinn.observer import Adapted, DatasetIdentity, EpochEnded, RunEnded, RunStarted
from pinnprov.pinn.progress import ProgressBar


def test_progress_bar_reports_losses_and_steering() -> None:
    stream = io.StringIO()
    bar = ProgressBar(interval_s=0.0, stream=stream, disable=False)
    bar.on_run_start(RunStarted("a" * 32, "adam-tanh-x", "e", time.time(), {"epochs": 10},
                                DatasetIdentity("d", "0" * 64, 100)))
    for epoch in range(10):
        bar.on_epoch_end(EpochEnded(epoch, 0.0, 0.1, 0.1, 1.5 / (epoch + 1), 0.01, 0.2, 0.3, 1e-3))
    bar.on_adaptation(Adapted(10, 0.0, "learning_rate", 1e-3, 5e-4, "user:ana", "slower"))
    bar.on_run_end(RunEnded("completed", 0.0, 10))
    text = stream.getvalue()
    assert "10/10" in text and "L=0.15" in text and "L_BC=0.01" in text and "L_R=0.2" in text
    assert "L_D=0.3" in text and "lr=0.001" in text
    assert "learning_rate 0.001 -> 0.0005 (user:ana: slower)" in text


def test_progress_bar_rate_limits_updates() -> None:
    stream = io.StringIO()
    bar = ProgressBar(total=100000, interval_s=3600.0, stream=stream, disable=False)
    bar.on_run_start(RunStarted("a" * 32, "r", "e", 0.0, {}, DatasetIdentity("d", "0" * 64, 1)))
    before = len(stream.getvalue())
    for epoch in range(5000):
        bar.on_epoch_end(EpochEnded(epoch, 0.0, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 1e-3))
    assert len(stream.getvalue()) - before < 400  # at most one redraw within the interval
    bar.on_run_end(RunEnded("completed", 0.0, 5000))
    assert "5000/100000" in stream.getvalue()
