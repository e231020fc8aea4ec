"""`pinnprov alerts`: firings read back from a real SQLite store written by a real pipeline; rule checking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_alerts_engine import Harness, run_spec

from pinnprov.cli import main


@pytest.fixture
def store(tmp_path: Path) -> str:
    harness = Harness(tmp_path / "prov.db", [
        {"name": "loss-high", "kind": "threshold", "metric": "loss", "threshold": 0.1, "actions": []},
        {"name": "diverged", "kind": "non_finite", "actions": []},
    ])
    harness.feed(run_spec(1, [1.0, 0.01, 1.0]), run_spec(2, [0.01, float("nan"), 0.01]))
    harness.close()
    return f"sqlite:///{tmp_path / 'prov.db'}"


def test_lists_every_firing_oldest_first(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--store", store, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_name"], r["rule"], r["epoch"]) for r in rows] == [
        ("run-1", "loss-high", 0), ("run-2", "diverged", 1), ("run-1", "loss-high", 2)]
    assert rows[0]["at"].endswith("Z") and rows[0]["message"] == "run run-1 epoch 0: loss = 1 > 0.1"
    assert "alert_id" not in rows[0]


def test_filters_by_run_rule_and_limit(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--store", store, "--run", "run-1", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "at,run_name,rule,epoch,metric,value,threshold,message,actions" and len(lines) == 3
    assert main(["alerts", "--store", store, "--rule", "loss-high", "--limit", "1", "--format", "json"]) == 0
    assert [r["epoch"] for r in json.loads(capsys.readouterr().out)] == [2]
    assert main(["alerts", "--store", store, "--run", "run-9"]) == 2
    assert "unknown run 'run-9'" in capsys.readouterr().err


def test_table_output_is_readable(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--store", store, "--run", "run-2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["at", "run_name", "rule", "epoch", "metric", "value", "threshold", "message", "actions"]
    assert "diverged" in out[2] and "loss is nan" in out[2]


def test_check_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "collector.yaml"
    good.write_text("rules:\n  - {name: hi, kind: threshold, metric: loss, threshold: 1e-2, after_epoch: 5000}\n")
    assert main(["alerts", "--check-rules", str(good)]) == 0
    assert "ok  hi: threshold on loss (all runs; actions: log)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: hi, kind: threshold, metric: loss, treshold: 1}\n")
    assert main(["alerts", "--check-rules", str(bad)]) == 2
    assert "rule 'hi': unknown key 'treshold'" in capsys.readouterr().err
