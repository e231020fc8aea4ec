"""Steering end to end on the embedded store: a real training run, the real embedded capture writing a real
SQLite file, the real StoreCommandSource polling it, and `pinnprov steer` typed from "another terminal" (the
CLI entry point on another thread). The lr seen by later epochs changes, stop ends the run as `stopped`, and
the store, the named query and the PROV export all carry the adaptations with their agent."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

from collector_process import rows, wait_for  # noqa: E402

from pinnprov.cli import main as cli  # noqa: E402
from pinnprov.core.steering import user_agent  # noqa: E402
from pinnprov.pinn.benchmark import crosshole_benchmark  # noqa: E402
from pinnprov.pinn.config import TrainConfig  # noqa: E402
from pinnprov.pinn.trainer import configure_threads, train  # noqa: E402

TINY = dict(lr_decay_rate=0.99, tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=200,
            boundary_points=20, steps_per_call=20, stopping="none", threads=1, seed=5, lr_initial=1e-3)
NEW_LR = 2.5e-4


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


def _command_state(db: Path, command_id: str) -> str:
    found = rows(db, "SELECT state FROM steering_command WHERE command_id = ?", (command_id,))
    return found[0][0] if found else ""


def _steer(db: Path, *args: str, outputs: list[str] | None = None) -> str:
    code, out, err = _cli("steer", "steer-e2e", "--store", f"sqlite:///{db}", *args)
    assert code == 0, err
    if outputs is not None:
        outputs.append(out)
    return out.split(" as command ")[1].split()[0]


@pytest.fixture(scope="module")
def steered_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train until told to stop: set-lr once the run is in the store, then stop once that was applied."""
    from pinnprov.capture.steering_poller import StoreCommandSource
    from pinnprov.core.steering import new_command
    from pinnprov.wiring import open_capture, store_command_source

    configure_threads(1)
    db = tmp_path_factory.mktemp("steer") / "prov.db"
    url = f"sqlite:///{db}"
    config = TrainConfig(**TINY, epochs=10_000_000, run_name="steer-e2e", experiment="steering")
    outcome: dict = {"db": db}
    give_up = threading.Event()

    class GuardedSource:
        """The real source; if the user thread fails, a local stop ends the run so the test cannot hang."""

        def __init__(self, inner: StoreCommandSource) -> None:
            self.inner = inner

        def poll(self, run_id: str, epoch: int) -> list:
            if give_up.is_set():
                return [new_command("stop", reason="test gave up")]
            return self.inner.poll(run_id, epoch)

        def acknowledge(self, run_id: str, command, applied: bool, detail: str) -> None:
            self.inner.acknowledge(run_id, command, applied, detail)

    def user() -> None:
        try:
            wait_for(lambda: rows(db, "SELECT 1 FROM run WHERE run_name = 'steer-e2e'"), 120, what="run in store")
            outcome["lr_command"] = _steer(db, "--set-lr", str(NEW_LR), "--reason", "loss oscillates")
            wait_for(lambda: _command_state(db, outcome["lr_command"]) == "applied", 120, what="set-lr applied")
            # let a few more chunks run at the new rate before stopping
            applied_at = rows(db, "SELECT MAX(epoch) FROM epoch_metric")[0][0]
            wait_for(lambda: rows(db, "SELECT MAX(epoch) FROM epoch_metric")[0][0] >= applied_at + 60, 120,
                     what="epochs after set-lr")
            outcome["stop_output"] = []
            outcome["stop_command"] = _steer(db, "--stop", "--reason", "enough for the test", "--wait", "120",
                                             outputs=outcome["stop_output"])
        except BaseException as error:  # surface in the main thread, and end the run so the test cannot hang
            outcome["user_error"] = error
            give_up.set()

    with open_capture(store=url) as observers, store_command_source(url, interval_s=0.2) as commands:
        helper = threading.Thread(target=user, daemon=True)
        helper.start()
        result = train(config, crosshole_benchmark(), observers, GuardedSource(commands))
        helper.join(60)
    if "user_error" in outcome:
        raise outcome["user_error"]
    outcome["result"] = result
    outcome["acknowledged"] = commands.acknowledged
    return outcome


def test_stop_ends_the_run_cleanly_with_status_stopped(steered_run: dict) -> None:
    db, result = steered_run["db"], steered_run["result"]
    assert result.status == "stopped" and result.stop_reason == "enough for the test"
    status, epochs, error = rows(db, "SELECT status, epochs, error FROM run WHERE run_name = 'steer-e2e'")[0]
    assert status == "stopped" and epochs == result.epochs and not error
    stored = [r[0] for r in rows(db, "SELECT epoch FROM epoch_metric ORDER BY epoch")]
    assert stored == list(range(result.epochs))  # everything it captured is kept
    assert _command_state(db, steered_run["stop_command"]) == "applied"
    assert steered_run["acknowledged"] == 2
    queued, answer = steered_run["stop_output"][0].splitlines()  # --wait prints the trainer's answer
    assert queued.startswith("queued stop for run steer-e2e (") and f"(agent {user_agent()})" in queued
    assert answer == f"applied: stopping after epoch {result.epochs - 1}"


def test_set_lr_changes_the_learning_rate_of_later_epochs(steered_run: dict) -> None:
    db = steered_run["db"]
    (epoch, old, new, agent, reason, command_id), = rows(
        db, "SELECT epoch, old_value, new_value, agent, reason, command_id FROM adaptation "
            "WHERE parameter = 'learning_rate' AND agent LIKE 'user:%'")
    assert command_id == steered_run["lr_command"] and agent == user_agent() and reason == "loss oscillates"
    assert float(old) == pytest.approx(1e-3, rel=0.02) and float(new) == pytest.approx(NEW_LR, rel=1e-6)
    lrs = dict(rows(db, "SELECT epoch, learning_rate FROM epoch_metric"))
    before = [lr for e, lr in lrs.items() if e < epoch]
    after = [lr for e, lr in lrs.items() if e >= epoch]
    assert before and after
    # exponential decay (0.99 per 1000 steps) keeps running from the new value: within 2% of it afterwards
    assert all(1e-3 * 0.97 < lr <= 1e-3 * (1 + 1e-6) for lr in before)
    assert all(NEW_LR * 0.97 < lr <= NEW_LR * (1 + 1e-6) for lr in after)


def test_adaptations_reach_the_named_query_and_the_prov_export(steered_run: dict) -> None:
    db = steered_run["db"]
    code, out, err = _cli("query", "adaptations", "--run", "steer-e2e", "--store", str(db), "--format", "json")
    assert code == 0, err
    listed = json.loads(out)
    by_command = {row["command_id"]: row for row in listed if row["command_id"]}
    assert set(by_command) == {steered_run["lr_command"], steered_run["stop_command"]}
    stop = by_command[steered_run["stop_command"]]
    assert stop["parameter"] == "stop" and stop["agent"] == user_agent() and stop["reason"] == "enough for the test"
    code, out, err = _cli("export-prov", "steer-e2e", "--store", str(db))
    assert code == 0, err
    document = json.loads(out)
    labels = json.dumps(document.get("agent", {}))
    assert user_agent() in labels  # the user is a PROV agent of the run's adaptations
    assert "enough for the test" in out and "loss oscillates" in out


def test_commands_for_finished_or_unknown_runs_are_refused(steered_run: dict) -> None:
    db = steered_run["db"]
    before = rows(db, "SELECT COUNT(*) FROM steering_command")[0][0]
    code, out, err = _cli("steer", "steer-e2e", "--store", str(db), "--set-lr", "1e-4")
    assert code == 2 and out == ""
    assert err.strip() == ("pinnprov steer: error: run steer-e2e "
                           f"({rows(db, 'SELECT run_id FROM run')[0][0]}) has already ended (status stopped); "
                           "steering applies to running runs only")
    code, _, err = _cli("steer", "no-such-run", "--store", str(db), "--stop")
    assert code == 2 and err.startswith("pinnprov steer: error: unknown run 'no-such-run'") and err.count("\n") == 1
    code, _, err = _cli("steer", "latest", "--store", str(db), "--stop")  # latest is the stopped run
    assert code == 2 and "has already ended" in err
    assert rows(db, "SELECT COUNT(*) FROM steering_command")[0][0] == before  # nothing was written


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--set-lr", "-1"], "set_lr: learning rate must be in (0, 10), got -1.0"),
        (["--set-lr", "nan"], "set_lr: value must be a finite number, got nan"),
        (["--scale-lr", "0"], "scale_lr: factor must be > 0, got 0.0"),
        (["--set-weight", "residual"], "--set-weight: expected TERM=W such as residual=10, got 'residual'"),
        (["--set-weight", "physics=2"], "set_weight: loss term must be one of residual, boundary, data, got 'physics'"),
        (["--set-weight", "data=-2"], "set_weight: weight must be >= 0, got -2.0"),
        (["--stop", "--wait", "-1"], "--wait: must be >= 0 seconds, got -1.0"),
    ],
)
def test_bad_commands_are_one_line_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    code, out, err = _cli("steer", "latest", "--store", str(tmp_path / "absent.db"), *flags)
    assert (code, out, err) == (2, "", f"pinnprov steer: error: {message}\n")
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["steer", "latest"], "one of the arguments --set-lr --scale-lr --set-weight --stop is required"),
        (["steer", "latest", "--set-lr", "fast"], "argument --set-lr: invalid float value: 'fast'"),
        (["steer", "latest", "--stop", "--set-lr", "1e-4"], "argument --set-lr: not allowed with argument --stop"),
    ],
)
def test_malformed_command_lines_are_one_line_errors(args: list[str], message: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        cli(args)
    assert exit_info.value.code == 2 and err.getvalue() == f"pinnprov steer: error: {message}\n"


def test_missing_store_is_refused_without_creating_it(tmp_path: Path) -> None:
    code, _, err = _cli("steer", "latest", "--store", str(tmp_path / "absent.db"), "--stop")
    assert code == 2 and err.startswith("pinnprov steer: error: store not found:")
    assert not (tmp_path / "absent.db").exists()
