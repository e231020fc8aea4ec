"""pinnprov.integrations.deepxde against DeepXDE from PyPI on its TensorFlow backend: a small 1-D Poisson PINN
(-u'' = pi^2 sin(pi x) on [-1, 1], u(+-1) = 0, three observations of u = sin(pi x) as a PointSetBC) trained by
`Model.train`, recorded into a real embedded SQLite store and steered with `pinnprov steer` typed as a user would.
Other backends run in a subprocess (DeepXDE picks its backend once per process) where their framework is
installed, and are skipped with the reason otherwise."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from collector_process import rows, wait_for

os.environ.setdefault("DDE_BACKEND", "tensorflow")
dde = pytest.importorskip("deepxde", reason="DeepXDE is not installed (pip install '.[deepxde]')")
if dde.backend.backend_name != "tensorflow":
    pytest.skip(f"DeepXDE's backend in this process is {dde.backend.backend_name}, not tensorflow",
                allow_module_level=True)

from pinnprov.cli import main as cli  # noqa: E402
from pinnprov.integrations.deepxde import ProvenanceCallback, term_kinds  # noqa: E402

_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "PINNPROV_CAPTURE", "PINNPROV_CAPTURE_EVERY", "PINNPROV_STORE", "PINNPROV_STEERING_ENDPOINT")


@pytest.fixture(autouse=True)
def _embedded_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def _steer(db: Path, run: str, *flags: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(["steer", run, "--store", f"sqlite:///{db}", *flags])
    assert code == 0, err.getvalue()
    return out.getvalue().split(" as command ")[1].split()[0]


def _poisson(decay: tuple[object, ...] | None = None) -> object:
    import numpy as np

    dde.config.set_random_seed(3)
    geometry = dde.geometry.Interval(-1, 1)

    def pde(x: object, u: object) -> object:
        return -dde.grad.hessian(u, x) - np.pi**2 * dde.backend.tf.sin(np.pi * x)

    observed = np.array([[-0.5], [0.25], [0.75]])
    conditions = [dde.icbc.DirichletBC(geometry, lambda x: 0 * x, lambda _, on_boundary: on_boundary),
                  dde.icbc.PointSetBC(observed, np.sin(np.pi * observed))]
    data = dde.data.PDE(geometry, pde, conditions, num_domain=32, num_boundary=2, num_test=40)
    net = dde.nn.FNN([1, 16, 16, 1], "tanh", "Glorot uniform")
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-3, decay=decay, loss_weights=[1.0, 1.0, 2.0])
    return model


# Far more steps than the steering needs: the stop command ends these runs; the cap only bounds a broken one
# (on a loaded machine the capture's worker and the store can lag the training by thousands of steps).
CAP = 200_000


class _Steerer(dde.callbacks.Callback):  # type: ignore[misc]
    """Types `pinnprov steer` commands between steps, as another terminal would: each once the run is in the store
    (and the previous one was answered), so every command reaches a running training."""

    def __init__(self, db: Path, run: str, commands: list[list[str]]) -> None:
        super().__init__()
        self.db, self.run, self.pending, self.sent = db, run, list(commands), []  # type: list[str]

    def on_epoch_end(self) -> None:
        if not self.pending or self.model.train_state.step % 10:
            return
        if not rows(self.db, "SELECT 1 FROM run WHERE run_name = ?", (self.run,)):
            return
        answered = rows(self.db, "SELECT COUNT(*) FROM steering_command WHERE state != 'pending'")[0][0]
        if answered == len(self.sent):
            self.sent.append(_steer(self.db, self.run, *self.pending.pop(0)))


def test_a_deepxde_run_is_recorded_by_term_kind_and_steered_between_steps(tmp_path: Path) -> None:
    db = tmp_path / "prov.db"
    model = _poisson()
    callback = ProvenanceCallback(name="poisson", hyperparameters={"problem": "poisson-1d"},
                                  store=f"sqlite:///{db}", spool_dir=tmp_path / "spool", steering_interval_s=0.1)
    steerer = _Steerer(db, "poisson", [["--set-lr", "5e-4", "--reason", "oscillates"],
                                       ["--set-weight", "residual=3"], ["--stop", "--reason", "good enough"]])
    started = time.monotonic()
    with callback:
        model.train(iterations=CAP, display_every=20, callbacks=[callback, steerer], verbose=0)
    assert time.monotonic() - started < 240 and len(steerer.sent) == 3, "the stop never reached Model.train"
    steps = model.train_state.step
    assert steps < CAP
    set_lr, set_weight, stop = steerer.sent

    ((status, epochs, experiment, dataset),) = rows(db, "SELECT status, epochs, experiment, dataset_name FROM run")
    assert (status, experiment, dataset) == ("stopped", "deepxde", "PDE")
    stored = rows(db, "SELECT epoch, loss, loss_residual, loss_bc, loss_data, learning_rate FROM epoch_metric "
                      "ORDER BY epoch")
    assert epochs == len(stored) and [row[0] for row in stored] == [*range(20, steps, 20), steps][:len(stored)]
    for _, loss, residual, boundary, data, _ in stored:
        assert None not in (loss, residual, boundary, data)
        assert loss == pytest.approx(residual + boundary + data)
    terms = dict(rows(db, "SELECT name, COUNT(*) FROM epoch_extra GROUP BY name"))
    assert terms["loss_term_0"] == terms["loss_term_2"] == terms["loss_test"] == len(stored)
    rates = [row[5] for row in stored]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(5e-4)

    hp = dict(rows(db, "SELECT name, value FROM run_hyperparameter"))
    assert hp["optimizer"] == "adam" and float(hp["lr.initial"]) == pytest.approx(1e-3)
    assert hp["network.layer_sizes"] == "1-16-16-1" and hp["network.activation"] == "tanh"
    assert hp["network.initializer"] == "GlorotUniform" and hp["network.parameters"] == str(2 * 16 + 16 * 17 + 17)
    assert hp["loss_weights"] == "1,1,2" and hp["loss_terms"] == "residual,boundary,data"
    assert hp["deepxde.backend"] == "tensorflow" and hp["problem"] == "poisson-1d" and hp["data.num_domain"] == "32"

    wait_for(lambda: len(rows(db, "SELECT 1 FROM steering_command WHERE state != 'pending'")) == 3, 10,
             what="acknowledgements stored")
    states = dict(rows(db, "SELECT command_id, state || ': ' || COALESCE(detail, '') FROM steering_command"))
    assert states[set_lr].startswith("applied") and states[stop].startswith("applied")
    assert states[set_weight] == "refused: set_weight: DeepXDE compiles its loss weights into the training step"
    adaptations = rows(db, "SELECT parameter, new_value, reason, command_id FROM adaptation ORDER BY at")
    assert [(p, r, c) for p, _, r, c in adaptations] == [("learning_rate", "oscillates", set_lr),
                                                          ("stop", "good enough", stop)]
    assert float(adaptations[0][1]) == pytest.approx(5e-4)


def test_a_user_map_and_a_decay_schedule(tmp_path: Path) -> None:
    """`loss_terms` overrides the kinds; an LR change under Model.compile(decay=...) is refused with the reason."""
    db = tmp_path / "prov.db"
    model = _poisson(decay=("inverse time", 100, 0.5))
    assert term_kinds(model, 3) == ["residual", "boundary", "data"]
    callback = ProvenanceCallback(name="mapped", loss_terms={2: "boundary"}, store=f"sqlite:///{db}",
                                  spool_dir=tmp_path / "spool", steering_interval_s=0.1)
    steerer = _Steerer(db, "mapped", [["--scale-lr", "0.5"], ["--stop"]])
    model.train(iterations=CAP, display_every=50, callbacks=[callback, steerer], verbose=0)
    assert len(steerer.sent) == 2
    stored = rows(db, "SELECT loss, loss_bc, loss_data FROM epoch_metric")
    assert stored and all(data is None and bc is not None for _, bc, data in stored)
    hp = dict(rows(db, "SELECT name, value FROM run_hyperparameter"))
    assert hp["lr.schedule"] == "InverseTimeDecay" and hp["loss_terms"] == "residual,boundary,boundary"
    wait_for(lambda: len(rows(db, "SELECT 1 FROM steering_command WHERE state != 'pending'")) == 2, 10,
             what="acknowledgements stored")
    states = [state for (state,) in rows(db, "SELECT state || ': ' || COALESCE(detail, '') FROM steering_command "
                                             "ORDER BY created_at")]
    assert states[0] == "refused: the learning rate follows a decay schedule (Model.compile decay=) and cannot be set"
    assert states[1].startswith("applied")


def test_a_failing_train_call_is_recorded_as_failed(tmp_path: Path) -> None:
    db = tmp_path / "prov.db"
    model = _poisson()

    class Boom(dde.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self) -> None:
            if self.model.train_state.step == 30:
                raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError), ProvenanceCallback(name="boom", store=f"sqlite:///{db}",
                                                         spool_dir=tmp_path / "spool") as callback:
        model.train(iterations=100, display_every=10, callbacks=[callback, Boom()], verbose=0)
    assert rows(db, "SELECT status, error, epochs FROM run") == [("failed", "RuntimeError: out of memory", 3)]


def test_a_bad_capture_setting_fails_before_training() -> None:
    with pytest.raises(ValueError, match="capture_every"):
        ProvenanceCallback(store="sqlite:///x.db", capture_every=0)
    with pytest.raises(ValueError, match="loss_terms"):
        ProvenanceCallback(loss_terms=["residual", "pde"])


_OTHER_BACKEND = textwrap.dedent("""
    import os, sys
    import numpy as np
    import deepxde as dde
    from pinnprov.integrations.deepxde import ProvenanceCallback
    geometry = dde.geometry.Interval(-1, 1)
    def pde(x, u):
        return -dde.grad.hessian(u, x)[0] - np.pi**2 * dde.backend.sin(np.pi * x)
    data = dde.data.PDE(geometry, pde, [dde.icbc.DirichletBC(geometry, lambda x: 0 * x, lambda _, b: b)],
                        num_domain=16, num_boundary=2)
    model = dde.Model(data, dde.nn.FNN([1, 8, 1], "tanh", "Glorot uniform"))
    model.compile("adam", lr=1e-3)
    model.train(iterations=40, display_every=10, verbose=0,
                callbacks=[ProvenanceCallback(name="other", store=sys.argv[1], steering=False)])
""")


@pytest.mark.parametrize(("backend", "needs"), [("jax", ("jax", "flax")), ("pytorch", ("torch",)),
                                                ("paddle", ("paddle",))])
def test_other_backends_where_installed(tmp_path: Path, backend: str, needs: tuple[str, ...]) -> None:
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"DeepXDE's {backend} backend needs {', '.join(missing)}, not installed here")
    db = tmp_path / "prov.db"
    env = {**os.environ, "DDE_BACKEND": backend, "PINNPROV_SPOOL_DIR": str(tmp_path / "spool")}
    done = subprocess.run([sys.executable, "-c", _OTHER_BACKEND, f"sqlite:///{db}"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows(db, "SELECT status, epochs FROM run") == [("completed", 4)]
    assert rows(db, "SELECT value FROM run_hyperparameter WHERE name = 'deepxde.backend'") == [(backend,)]
