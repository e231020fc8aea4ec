"""What happens when a rule fires: log, webhook, command, steer. Slow actions never block ingestion.

`log` runs inline (it is a logging call). Everything else goes to a small worker pool with a bounded
backlog: a webhook that hangs for its whole timeout delays other actions, never the pipeline; when the
backlog is full, new actions are dropped and counted rather than queued without limit.

- webhook: one JSON POST (the alert as an object) with a timeout; header values may use ${ENV_VAR}
  so tokens stay out of the config file.
- command: an argv list run without a shell, with a timeout; `{rule}`, `{run_name}`, `{epoch}`, ... in
  its arguments are filled in, and the alert is also in PINNPROV_ALERT_* environment variables.
- steer: `stop`, `scale_lr` or `set_lr` for the run, through an injected `SteerFunction` (the collector
  passes one that queues a steering command in the store; see pinnprov/collector/alerts/steering.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pinnprov.collector.counters import Counters
from pinnprov.core.steering import CommandKind, SteeringCommand

log = logging.getLogger(__name__)

SteerFunction = Callable[[str, SteeringCommand], None]
"""(run id, command) -> None; raises on failure. Queues a steering command for the run."""
TEMPLATE_FIELDS = ("rule", "run_id", "run_name", "experiment", "epoch", "metric", "value", "threshold",
                   "message", "alert_id")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class LogSpec:
    kind = "log"
    level: str = "warning"


@dataclass(frozen=True)
class WebhookSpec:
    kind = "webhook"
    url: str = ""
    timeout_s: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CommandSpec:
    kind = "command"
    argv: tuple[str, ...] = ()
    timeout_s: float = 30.0


@dataclass(frozen=True)
class SteerSpec:
    kind = "steer"
    command: CommandKind = "stop"  # stop | scale_lr | set_lr
    value: float = 0.0  # the factor for scale_lr, the rate for set_lr


ActionSpec = LogSpec | WebhookSpec | CommandSpec | SteerSpec


def expand_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ${NAME} by the environment variable (a missing one is an error naming it)."""
    env = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"environment variable {name} is not set")
        return env[name]

    return ENV_REFERENCE.sub(value, text)


def post_json(url: str, payload: Mapping[str, object], timeout_s: float, headers: Mapping[str, str]) -> int:
    """POST `payload` as JSON; returns the HTTP status (raises on connection errors and timeouts)."""
    body = json.dumps(payload, allow_nan=False, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "pinnprov-alerts", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked at load
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class ActionDispatcher:
    """Runs alert actions; `dispatch` returns at once. `drain()` waits for the backlog (tests, shutdown)."""

    def __init__(self, *, steer: SteerFunction | None = None, workers: int = 2, max_pending: int = 1000) -> None:
        self.steer = steer
        self.max_pending = max_pending
        self.counters = Counters()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinnprov-alert-action")
        self._pending = 0
        self._idle = threading.Condition()

    def dispatch(self, actions: tuple[ActionSpec, ...], context: Mapping[str, object]) -> list[str]:
        """Start every action for one firing; returns the kinds started (what the AlertRecord records)."""
        started: list[str] = []
        for spec in actions:
            if isinstance(spec, LogSpec):
                log.log(logging.getLevelName(spec.level.upper()), "alert %s: %s", context["rule"], context["message"])
                started.append(spec.kind)
                continue
            with self._idle:
                if self._pending >= self.max_pending:
                    self.counters.add("actions.dropped")
                    log.warning("alert %s: %s action dropped, %d actions already waiting",
                                context["rule"], spec.kind, self._pending)
                    continue
                self._pending += 1
            self._pool.submit(self._run, spec, dict(context))
            started.append(spec.kind)
        return started

    def _run(self, spec: ActionSpec, context: dict[str, object]) -> None:
        try:
            if isinstance(spec, WebhookSpec):
                self._webhook(spec, context)
            elif isinstance(spec, CommandSpec):
                self._command(spec, context)
            elif isinstance(spec, SteerSpec):
                self._steer(spec, context)
            self.counters.add(f"actions.{spec.kind}.ok")
        except Exception as error:  # noqa: BLE001 - an action failing must not kill the worker
            self.counters.add(f"actions.{spec.kind}.failed")
            log.warning("alert %s: %s action failed: %s", context.get("rule"), spec.kind, error)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _webhook(self, spec: WebhookSpec, context: dict[str, object]) -> None:
        headers = {key: expand_env(value) for key, value in spec.headers}
        status = post_json(spec.url, context, spec.timeout_s, headers)
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook {spec.url} answered {status}")

    def _command(self, spec: CommandSpec, context: dict[str, object]) -> None:
        argv = [part.format_map(context) for part in spec.argv]
        env = {**os.environ, **{f"PINNPROV_ALERT_{key.upper()}": str(value) for key, value in context.items()}}
        try:
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=spec.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"command {argv[0]!r} killed after {spec.timeout_s:g} s") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"command {argv[0]!r} exited with {done.returncode}: {tail[0][:200]}")

    def _steer(self, spec: SteerSpec, context: dict[str, object]) -> None:
        if self.steer is None:
            raise RuntimeError("no steering channel is configured for this collector")
        command = SteeringCommand(
            command_id=str(context["alert_id"]),  # one command per firing, however often it is replayed
            kind=spec.command,  # checked when the rule was loaded
            value=spec.value,
            agent=f"rule:{context['rule']}",
            reason=str(context["message"]),
        )
        self.steer(str(context["run_id"]), command)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until no action is pending; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self.drain(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
