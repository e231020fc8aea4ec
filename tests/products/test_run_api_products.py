"""A run-API user's files as PROV entities: `run.log_artifact(path, role=...)` inside `pinnprov.start_run`, in SQLite
and the real MonetDB; `pinnprov lineage FILE` (the CLI) walks back to the run, its data set and its adaptation."""

from __future__ import annotations

from pathlib import Path

import pytest

import pinnprov
from pinnprov.cli import main
from pinnprov.core.artifacts import sha256_file


@pytest.fixture(params=["sqlite", "monetdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prov.db'}"
    return str(request.getfixturevalue("monetdb_url"))


def test_run_api_log_artifact_and_lineage(tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights.npz"
    dataset = {"name": "site-3", "sha256": "cd" * 32, "source": "survey.csv", "picks": 12}
    with pinnprov.start_run(name="api-products", experiment="tomo", hyperparameters={"lr": 1e-3},
                            dataset=dataset, store=store_url, steering=False) as run:
        for epoch in range(5):
            run.log_epoch(epoch, loss=1.0 / (epoch + 1), learning_rate=1e-3)
        run.log_adaptation("learning_rate", 1e-3, 5e-4, agent="user:alice", reason="plateau")
        weights.write_bytes(b"\x93NUMPY fake weights")
        digest = run.log_artifact(weights, role="network")
    assert digest == sha256_file(weights)
    with pinnprov.open_store(store_url) as store:
        found = pinnprov.lineage(store, weights)
    assert found is not None and found.artifact.role == "network" and found.artifact.epoch == 5
    assert found.facts.run["dataset_sha256"] == "cd" * 32
    assert main(["lineage", str(weights), "--store", store_url]) == 0
    text = capsys.readouterr().out
    assert "api-products" in text and "site-3" in text and "by user:alice: plateau" in text and "lr = 0.001" in text
