"""The console summary of a run with a baseline prints both R² and both RMSE when the exact model is known."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pinnprov.experiments.run_products import role_of
from pinnprov.experiments.training import print_result


def test_summary_prints_the_pinn_and_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    result = SimpleNamespace(run_name="r", run_id="0" * 32, status="completed", epochs=10, stop_reason="",
                             metrics={"seconds": 1.0, "r2": 0.512, "rmse_m_s": 301.2, "data_rms_s": 1e-5},
                             artifacts=[("network.velocity", Path("out/networks/velocity.keras"))])
    config = SimpleNamespace(noise_level_s=0.0)
    print_result(result, None, config, [Path("out/result.json")], SimpleNamespace(r2=0.291, rmse_m_s=402.5))
    text = capsys.readouterr().out
    assert "velocity R2 0.512, RMSE 301.2 m/s (PINN" in text
    assert "velocity R2 0.291, RMSE 402.5 m/s (PyGIMLi" in text
    assert "out/networks/velocity.keras" in text


def test_summary_without_exact_model_has_no_r2(capsys: pytest.CaptureFixture[str]) -> None:
    result = SimpleNamespace(run_name="r", run_id="0" * 32, status="completed", epochs=10, stop_reason="",
                             metrics={"seconds": 1.0, "data_rms_s": 1e-5}, artifacts=[])
    print_result(result, None, SimpleNamespace(noise_level_s=0.0), [], SimpleNamespace(r2=None, rmse_m_s=None))
    assert "R2" not in capsys.readouterr().out


def test_output_roles() -> None:
    assert role_of(Path("x/velocity_pinn.npy")) == "velocity_grid"
    assert role_of(Path("x/velocity_pygimli.npy")) == "baseline.velocity_grid"
    assert role_of(Path("x/comparison.png")) == "figure"
    assert role_of(Path("x/other.bin")) == "output"
