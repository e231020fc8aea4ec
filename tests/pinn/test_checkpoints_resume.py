"""Checkpoints and resume: a run resumed from its checkpoint continues exactly as the uninterrupted run does.

Tolerance: on CPU with fixed seeds the resumed run replays the same float32 operations from the same state
(networks, Adam moments, step, schedule, sampler random state), so its losses must match the uninterrupted run's
to 1e-6 relative and its final R^2 to 1e-6 (they are bit-identical here; the bound leaves room for BLAS order).
"""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.core.artifacts import ROLE_CHECKPOINT, sha256_file
from pinnprov.pinn import checkpoints as ckpt
from pinnprov.pinn.benchmark import crosshole_benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.observer import ArtifactWritten, EpochEnded, ModelSnapshot, RunStarted
from pinnprov.pinn.trainer import configure_threads, train

configure_threads(1)

SMALL = dict(tau_layers=2, tau_units=12, velocity_layers=2, velocity_units=12, collocation_count=200,
             steps_per_call=50, stopping="converged", convergence_window=100, convergence_tolerance=1e-6,
             threads=1, jit_compile=False, regularizer="support", lr_initial=3e-3, lr_decay_steps=100, seed=5)
RTOL = 1e-6


class Recorder:
    def __init__(self) -> None:
        self.epochs: list[EpochEnded] = []
        self.artifacts: list[ArtifactWritten] = []
        self.snapshots: list[ModelSnapshot] = []
        self.start: RunStarted | None = None

    def on_run_start(self, event: RunStarted) -> None:
        self.start = event

    def on_epoch_end(self, event: EpochEnded) -> None:
        self.epochs.append(event)

    def on_adaptation(self, event: object) -> None:
        pass

    def on_run_end(self, event: object) -> None:
        pass

    def on_artifact(self, event: ArtifactWritten) -> None:
        self.artifacts.append(event)

    def on_model_snapshot(self, event: ModelSnapshot) -> None:
        self.snapshots.append(event)


@pytest.fixture(scope="module")
def data():
    return crosshole_benchmark()


def test_policy_parses_epochs_durations_and_off(tmp_path):
    assert ckpt.CheckpointPolicy.parse(tmp_path, "2000").every_epochs == 2000
    assert ckpt.CheckpointPolicy.parse(tmp_path, "10m").every_s == 600
    assert ckpt.CheckpointPolicy.parse(tmp_path, "90s").every_s == 90
    assert not ckpt.CheckpointPolicy.parse(tmp_path, "off").enabled
    with pytest.raises(ValueError, match="checkpoint_every"):
        ckpt.CheckpointPolicy.parse(tmp_path, "ten minutes")


def test_resumed_run_matches_the_uninterrupted_one(tmp_path, data):
    config = TrainConfig(**SMALL, epochs=400)
    whole = Recorder()
    full = train(config, data, [whole], checkpoints=ckpt.CheckpointPolicy.parse(tmp_path / "a", "200"),
                 snapshot_every=100)
    # the "killed" run: stopped after 200 epochs, its checkpoint at 200 is all the resume gets
    first = Recorder()
    train(config.replace(epochs=200), data, [first], checkpoints=ckpt.CheckpointPolicy.parse(tmp_path / "b", "200"))
    written = [a for a in first.artifacts if a.role == ROLE_CHECKPOINT]
    assert [a.epoch for a in written] == [200]
    assert written[0].sha256 == sha256_file(written[0].path) and written[0].size_bytes > 0
    checkpoint = ckpt.load(tmp_path / "b")
    assert checkpoint.epochs == 200 and checkpoint.run_id == first.start.run_id
    second = Recorder()
    resumed = train(config, data, [second], resume=checkpoint, resumed_by=("user:test", "node lost"))
    assert second.start.resumed is not None and second.start.resumed.run_id == first.start.run_id
    assert second.start.resumed.epoch == 200 and second.start.resumed.agent == "user:test"
    assert second.start.run_id != first.start.run_id
    assert [e.epoch for e in second.epochs] == list(range(200, full.epochs))
    expected = [e.loss for e in whole.epochs[200:]]
    assert np.allclose([e.loss for e in second.epochs], expected, rtol=RTOL, atol=0)
    assert resumed.epochs == full.epochs and resumed.stop_reason == full.stop_reason
    assert resumed.metrics["r2"] == pytest.approx(full.metrics["r2"], abs=RTOL)
    # snapshots: the exact model once, then every 100 epochs and the final model
    kinds = [(s.kind, s.epoch) for s in whole.snapshots]
    assert kinds[0] == ("exact", 0) and ("pinn", 100) in kinds and kinds[-1] == ("pinn", full.epochs)
    assert len(whole.snapshots[-1].values) == 4 * whole.snapshots[-1].nx * whole.snapshots[-1].nz


def test_checkpoints_are_atomic_and_pruned(tmp_path, data):
    config = TrainConfig(**{**SMALL, "stopping": "none"}, epochs=250)
    recorder = Recorder()
    train(config, data, [recorder], checkpoints=ckpt.CheckpointPolicy.parse(tmp_path, "50", keep=2))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [ckpt.file_name(200), ckpt.file_name(250)]  # no temp file left, older ones pruned
    assert [a.epoch for a in recorder.artifacts if a.role == ROLE_CHECKPOINT] == [50, 100, 150, 200, 250]


def test_resume_refuses_another_data_set(tmp_path, data):
    import dataclasses

    config = TrainConfig(**SMALL, epochs=100)
    train(config, data, [], checkpoints=ckpt.CheckpointPolicy.parse(tmp_path, "100"))
    other = dataclasses.replace(data, traveltimes=data.traveltimes * 1.01)
    with pytest.raises(ValueError, match="resume: .* data set"):
        train(config, other, [], resume=ckpt.load(tmp_path))
