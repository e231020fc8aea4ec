"""A Keras `model.fit` user's files as PROV entities: `ProvenanceCallback.log_artifact(path, role=...)` after a real
fit, in SQLite and the real MonetDB, then `pinnprov.lineage` walks back from the saved model to the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import pinnprov  # noqa: E402
from pinnprov.core.artifacts import sha256_file  # noqa: E402
from pinnprov.pinn.observer import DatasetIdentity  # noqa: E402
from pinnprov.wiring import open_capture  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "monetdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prov.db'}"
    return str(request.getfixturevalue("monetdb_url"))


def test_keras_fit_log_artifact_and_lineage(tmp_path: Path, store_url: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")).astype("float32")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    dataset = DatasetIdentity(name="linear", sha256="ab" * 32, picks=64, source="generated")
    saved = tmp_path / "model.keras"
    with open_capture(store=store_url) as observers, \
            pinnprov.ProvenanceCallback(observers, run_name="keras-products", dataset=dataset) as callback:
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
        model.save(saved)
        digest = callback.log_artifact(saved, role="model")
    assert digest == sha256_file(saved)
    with pinnprov.open_store(store_url) as store:
        found = pinnprov.lineage(store, saved)
        assert found is not None
        assert found.facts.run["run_name"] == "keras-products" and found.facts.run["dataset_sha256"] == "ab" * 32
        assert found.artifact.role == "model" and found.artifact.epoch == 3
        assert found.artifact.media_type == "application/x-keras"
        entity = f"artifact/{found.artifact.artifact_id}"
        derived = store.execute("SELECT used_entity_id FROM was_derived_from WHERE generated_entity_id = :e",
                                {"e": entity}).rows
        assert [tuple(r) for r in derived] == [("dataset/" + "ab" * 32,)]
        other = tmp_path / "other.bin"
        other.write_bytes(b"nothing")
        assert pinnprov.lineage(store, other) is None
