"""The Keras callback given only capture settings (one import, one argument): it opens the run API's capture and
the matching steering source itself; a real `model.fit`, a real embedded SQLite store, `pinnprov steer` typed as a
user would."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

from collector_process import rows, wait_for  # noqa: E402

from pinnprov.cli import main as cli  # noqa: E402
from pinnprov.integrations.keras import ProvenanceCallback  # noqa: E402

pytestmark = pytest.mark.slow
_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "PINNPROV_CAPTURE", "PINNPROV_CAPTURE_EVERY", "PINNPROV_STORE", "PINNPROV_STEERING_ENDPOINT")


@pytest.fixture(autouse=True)
def _embedded_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PINNPROV_SPOOL_DIR", str(tmp_path / "spool"))


class _Steer(keras.callbacks.Callback):
    """`pinnprov steer RUN --stop` from "another terminal", once the run is in the store."""

    def __init__(self, db: Path, run: str) -> None:
        super().__init__()
        self.db, self.run, self.sent = db, run, False

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if self.sent or not rows(self.db, "SELECT 1 FROM run WHERE run_name = ?", (self.run,)):
            return
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli(["steer", self.run, "--store", f"sqlite:///{self.db}", "--stop", "--reason", "enough"]) == 0
        self.sent = True


def test_one_argument_records_and_steers_a_fit(tmp_path: Path) -> None:
    db = tmp_path / "prov.db"
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    steer = _Steer(db, "keras-one")
    with ProvenanceCallback(store=f"sqlite:///{db}", run_name="keras-one", steering_interval_s=0.05) as callback:
        history = model.fit(x, y, epochs=2000, batch_size=64, verbose=0, callbacks=[callback, steer])
    epochs = len(history.history["loss"])
    assert steer.sent and epochs < 2000
    assert rows(db, "SELECT status, epochs FROM run") == [("stopped", epochs)]
    assert len(rows(db, "SELECT epoch FROM epoch_metric")) == epochs
    assert [r[0] for r in rows(db, "SELECT parameter FROM adaptation")] == ["stop"]
    wait_for(lambda: rows(db, "SELECT state FROM steering_command") == [("applied",)], 10, what="ack stored")


def test_a_bad_setting_fails_when_the_callback_is_made() -> None:
    with pytest.raises(ValueError, match="capture_every"):
        ProvenanceCallback(store="sqlite:///x.db", capture_every=0)
    with pytest.raises(TypeError, match="not both"):
        ProvenanceCallback([], store="sqlite:///x.db", settings=object())  # type: ignore[arg-type]
