"""The run page's model view of an ensemble over the real HTTP API (real uvicorn on loopback, a real SQLite store):
an ensemble's run answers its mean, std, p05 and p95 (and exact model) as stored by `EnsembleRecord.add_models`,
its epochs are those of its mean; an ordinary run's answer keeps its old shape (no `ensemble` key); the run page
carries the spread panel's elements, hidden until an ensemble fills them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prov_builders import request_for, run_id, sample_run, write_store
from ui_stores import Served, get, served

from pinnprov.collector.translate_products import snapshot_record
from pinnprov.experiments.ensemble_record import EnsembleRecord
from pinnprov.pinn.observer import DatasetIdentity

NZ, NX = 4, 5
ORDINARY = run_id(1)


def _decode(model: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(model["grid_f32"]), "<f4").reshape(model["nz"], model["nx"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, np.ndarray]]:
    from pinnprov.store.sqlite_sink import SqliteSink

    path = tmp_path_factory.mktemp("ui-ensemble") / "prov.db"
    write_store(path, request_for(sample_run(1, epochs=30, experiment="fig3")))
    sink = SqliteSink(path)  # an ordinary run's PINN snapshot, as the collector stores it
    raw = np.arange(NZ * NX, dtype="<f4").tobytes()
    assert sink.export([snapshot_record(run_id=ORDINARY, record_id="1" * 16, epoch=20, at=1_700_000_000.0,
                                        kind="pinn", nx=NX, nz=NZ, x_min=0.0, x_max=4.0, z_min=0.0, z_max=3.0,
                                        raw=raw)]).ok
    sink.shutdown()
    grid_x, grid_z = np.meshgrid(np.linspace(0.0, 4.0, NX), np.linspace(0.0, 3.0, NZ))
    mean = 2000.0 + 10.0 * grid_x + 50.0 * grid_z
    std = 5.0 + grid_x
    grids = {"mean": mean, "std": std, "p05": mean - 2.0 * std, "p95": mean + 2.0 * std, "exact": mean + 1.0}
    record = EnsembleRecord(f"sqlite:///{path}", "ens-ui", "ens-exp", {"ensemble.size": 3},
                            DatasetIdentity("benchmark", "ab" * 32, 100, "benchmark"))
    record.start()
    record.add_models(grid_x, grid_z, grids)
    record.end("completed", {"r2": 0.7})
    return path, record.run_id, grids


@pytest.fixture(scope="module")
def app(store: tuple[Path, str, dict[str, np.ndarray]]) -> Iterator[Served]:
    with served(f"sqlite:///{store[0]}") as running:
        yield running


def test_an_ensemble_run_answers_its_mean_and_spread(app: Served, store: tuple[Path, str, dict]) -> None:
    _, ensemble_id, grids = store
    assert get(app, "/api/runs/ens-ui/models?epoch=-1").json()["epochs"] == [0]  # the page's poll for epochs
    latest = get(app, "/api/runs/ens-ui/models")
    assert latest.status_code == 200
    data = latest.json()
    assert data["epochs"] == [0] and data["pinn"] is None and data["pygimli"] is None
    assert sorted(data["ensemble"]) == ["mean", "p05", "p95", "std"]
    for kind, model in data["ensemble"].items():
        assert (model["run_id"], model["kind"], model["epoch"], model["nx"], model["nz"]) == (
            ensemble_id, kind, 0, NX, NZ)
        np.testing.assert_array_equal(_decode(model), np.asarray(grids[kind], "<f4"))
    np.testing.assert_array_equal(_decode(data["exact"]), np.asarray(grids["exact"], "<f4"))
    assert get(app, f"/api/runs/{ensemble_id}/models?epoch=0").json() == data


def test_an_ordinary_run_answers_as_before(app: Served) -> None:
    data = get(app, f"/api/runs/{ORDINARY}/models?epoch=20").json()
    assert set(data) == {"epochs", "pinn", "pygimli", "exact"}  # no ensemble key
    assert data["epochs"] == [20] and data["pinn"]["kind"] == "pinn" and data["exact"] is None
    np.testing.assert_array_equal(_decode(data["pinn"]), np.arange(NZ * NX, dtype="<f4").reshape(NZ, NX))


def test_the_run_page_has_the_spread_panel_hidden_until_filled(app: Served) -> None:
    page = get(app, "/runs/ens-ui").text
    assert '<div id="model-spread" hidden>' in page and 'id="model-spread-panels"' in page
    assert get(app, "/static/models.js").status_code == 200
