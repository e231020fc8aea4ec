"""Test helpers for the UI: stores written through the real pipeline and sinks, and the app served on loopback."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prov_builders import RunSpec, epoch_attributes, run_id, sample_run

from pinnprov.core import vocabulary as v

LONG_EPOCHS = 6000
SPIKE_EPOCH = 4321  # one epoch whose total loss jumps: downsampling must keep it
DIP_EPOCH = 1234  # one epoch whose data loss dips
AGENT = "user:tester"


def long_run(n: int = 9, epochs: int = LONG_EPOCHS, experiment: str = "fig3") -> RunSpec:
    """A run with a smooth falling loss, one spike in L and one dip in L_D; still running (no end)."""
    rows = []
    for epoch in range(epochs):
        loss = 1000.0 * math.exp(-epoch / 600) + 1e-3 + 1e-4 * math.sin(epoch)
        rows.append(epoch_attributes(
            epoch,
            loss=1e6 if epoch == SPIKE_EPOCH else loss,
            bc=loss * 1e-5,
            residual=loss * 1e-3,
            data=1e-9 if epoch == DIP_EPOCH else loss * 0.04,
            lr=1e-3 * 0.99 ** (epoch // 100),
            elapsed=0.01 + 0.001 * (epoch % 7),
        ))
    return RunSpec(
        run_id=run_id(n), run_name=f"long-{n}", experiment=experiment, epochs=rows,
        hyperparameters={"optimizer": "rmsprop", "activation": "sigmoid", "lr.schedule": "exponential_decay",
                         "lr.initial": 1e-3, "lr.decay_rate": 0.99, "lr.decay_steps": 100},
        adaptations=[{v.EPOCH: 3000, v.ADAPTATION_PARAMETER: "learning_rate", v.ADAPTATION_OLD: 1e-4,
                      v.ADAPTATION_NEW: 5e-5, v.ADAPTATION_AGENT: "user:bob", v.ADAPTATION_REASON: "plateau"}],
    )


def store_runs() -> list[RunSpec]:
    """Two finished runs and one long running run in experiment fig3, one finished run in another experiment."""
    return [
        sample_run(1, epochs=30, experiment="fig3"),
        sample_run(2, epochs=25, experiment="fig3", optimizer="rmsprop"),
        long_run(),
        sample_run(3, epochs=12, experiment="other"),
    ]


@dataclass
class Served:
    base: str
    token: str
    port: int

    def headers(self, **more: str) -> dict[str, str]:
        return {"X-PinnProv-Token": self.token, **more}


@contextmanager
def served(store_url: str, agent: str = AGENT) -> Iterator[Served]:
    """create_app on a loopback socket (port 0) in a thread: the real uvicorn, the real middleware."""
    from pinnprov.ui.app import UiConfig, create_app
    from pinnprov.ui.security import Guard, new_token
    from pinnprov.ui.server import allowed_hosts, bind, serve_in_thread

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    guard = Guard(new_token(), allowed_hosts("127.0.0.1"), port)
    app = create_app(UiConfig(store_url=store_url, guard=guard, agent=agent))
    running = serve_in_thread(app, sock)
    try:
        _wait_until_listening(port)
        yield Served(f"http://127.0.0.1:{port}", guard.token, port)
    finally:
        running.stop()
        app.state.stores.close()
        sock.close()


def _wait_until_listening(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the UI did not listen on port {port}")


def get(served_app: Served, path: str, **kwargs: Any) -> Any:
    import requests

    headers = kwargs.pop("headers", served_app.headers())
    return requests.get(served_app.base + path, headers=headers, timeout=30, allow_redirects=False, **kwargs)


def post(served_app: Served, path: str, payload: Any, **kwargs: Any) -> Any:
    import requests

    headers = kwargs.pop("headers", served_app.headers())
    return requests.post(served_app.base + path, json=payload, headers=headers, timeout=30, allow_redirects=False,
                         **kwargs)
