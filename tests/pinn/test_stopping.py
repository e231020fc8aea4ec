"""Stopping rules on their own (pinn/stopping.py) and the defaults a run picks with and without a noise level."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.losses import RECORD_FIELDS
from pinnprov.pinn.stopping import (
    DEFAULT_HOLDOUT_FRACTION,
    Converged,
    Discrepancy,
    Holdout,
    Progress,
    make_rule,
    progress_of,
)


def feed(rule: Converged, losses: list[float], chunk: int = 100) -> int | None:
    """Epoch at which the rule stops when fed one median loss per chunk, or None."""
    for index, loss in enumerate(losses):
        epoch = (index + 1) * chunk - 1
        if rule.check(Progress(epoch=epoch, data_rms_s=1.0, loss=loss)).stop:
            return epoch
    return None


def test_converged_waits_while_the_loss_falls_and_stops_on_the_plateau() -> None:
    falling = [1.0 * 0.999**k for k in range(400)]  # 10 % per 100 chunks: never within 1 % per window
    plateau = [falling[-1]] * 200
    epoch = feed(Converged(window=2000, tolerance=0.01), falling + plateau)
    assert epoch is not None
    # it needs two windows of plateau-dominated history: stops once the last 40 chunks' median is flat
    assert 400 * 100 < epoch <= (400 + 40) * 100


def test_converged_never_stops_on_a_steady_decline() -> None:
    assert feed(Converged(window=2000, tolerance=0.01), [0.998**k for k in range(600)]) is None


def test_converged_ignores_noise_around_a_falling_trend() -> None:
    # chunk medians of 100 steps scatter by a few per cent (bench/trajectory.py histories); the trend here falls
    # 6 % per window of 20 chunks
    rng = np.random.default_rng(3)
    noisy = [0.997**k * float(np.exp(rng.normal(0, 0.03))) for k in range(300)]
    assert feed(Converged(window=2000, tolerance=0.01), noisy) is None


def test_converged_needs_two_windows_of_history() -> None:
    assert feed(Converged(window=5000, tolerance=0.01), [1.0] * 90) is None  # 9,000 epochs < 2 windows
    assert feed(Converged(window=5000, tolerance=0.01), [1.0] * 100) is not None


def test_the_default_rule_needs_no_noise_level() -> None:
    assert TrainConfig().stopping == "converged" and TrainConfig().noise_level_s == 0.0
    assert isinstance(make_rule("converged", noise_level_s=None, factor=1, patience=1, window=100, tolerance=0.1),
                      Converged)


def test_discrepancy_stops_at_the_stated_level() -> None:
    rule = Discrepancy(noise_level_s=1e-5, factor=1.0)
    assert not rule.check(Progress(epoch=1, data_rms_s=1.1e-5, loss=1.0)).stop
    assert rule.check(Progress(epoch=2, data_rms_s=1.0e-5, loss=1.0)).stop
    with pytest.raises(ValueError, match="needs a noise level"):
        make_rule("discrepancy", noise_level_s=0.0, factor=1, patience=1, window=100, tolerance=0.1)


def test_holdout_keeps_the_best_and_waits_for_patience() -> None:
    rule = Holdout(patience=300)
    seen = [rule.check(Progress(epoch=e, data_rms_s=1, loss=1, holdout_rms_s=h))
            for e, h in ((99, 3.0), (199, 2.0), (299, 2.5), (399, 2.4), (499, 2.6))]
    assert [d.improved for d in seen] == [True, True, False, False, False]
    assert [d.stop for d in seen] == [False, False, False, False, True]
    assert rule.best_epoch == 199


def test_holdout_from_flags_alone_holds_out_the_default_share() -> None:
    config = TrainConfig(stopping="holdout")
    assert config.held_out_fraction == DEFAULT_HOLDOUT_FRACTION
    assert TrainConfig(stopping="holdout", holdout_fraction=0.25).held_out_fraction == 0.25
    assert TrainConfig().held_out_fraction == 0.0  # other rules train on every pick


def test_progress_takes_the_chunks_median_loss_and_last_data_rms() -> None:
    records = np.zeros((5, len(RECORD_FIELDS)), np.float32)
    records[:, RECORD_FIELDS.index("loss")] = [9.0, 1.0, 2.0, 3.0, 4.0]
    records[:, RECORD_FIELDS.index("data_rms_s")] = [5.0, 4.0, 3.0, 2.0, 1.0]
    progress = progress_of(104, records, None)
    assert (progress.epoch, progress.loss, progress.data_rms_s) == (104, 3.0, 1.0)


def test_legacy_collocation_resample_key_still_loads() -> None:
    assert TrainConfig.from_mapping({"collocation_resample": True}).collocation_redraw == "chunk"
    assert TrainConfig.from_mapping({"collocation_resample": False}).collocation_redraw == "never"
    with pytest.raises(ValueError, match="collocation_redraw"):
        TrainConfig(collocation_redraw="sometimes")
