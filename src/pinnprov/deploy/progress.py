"""One readable line per task and host from ansible-runner's event stream.

ansible-runner calls `event_handler(event)` for every event of the playbook run (play start, task start,
per-host results, retries, final stats). We print what a person deploying wants to follow:

    PLAY  Bring up the collector
      changed  chifflet-1   Install pinnprov into the collector virtualenv
      ok       chifflet-1   Wait for the collector to listen on port 4318
      FAILED   chifflot-2   Check that the GPUs answer nvidia-smi: nvidia-smi: command not found

and keep the results, so the caller can summarise failures at the end without re-reading Ansible's output.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass(frozen=True)
class TaskResult:
    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped | ignored
    message: str = ""


def short_host(host: str) -> str:
    """chifflot-1.lille.grid5000.fr -> chifflot-1 (node names are unique across Grid5000 sites)."""
    return host if host.replace(".", "").isdigit() else host.split(".")[0]


def failure_message(result: Mapping[str, Any]) -> str:
    """The most useful single line of a failed result: msg, else stderr, else stdout, else the rc."""
    errors = result.get("argument_errors")
    if isinstance(errors, list) and errors:  # argument spec validation: say which variables are wrong
        return "invalid role variables: " + "; ".join(str(error) for error in errors)
    message = result.get("msg")
    if isinstance(message, str) and message.strip().splitlines()[0].rstrip().endswith(":"):
        # "Some header:\nthe detail" -> one line with the detail
        return " ".join(line.strip() for line in message.strip().splitlines() if line.strip())[:500]
    for key in ("msg", "stderr", "stdout", "module_stderr", "module_stdout"):
        value = result.get(key)
        if isinstance(value, str) and value.strip():
            lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
            # Tracebacks and apt output end with the informative line; messages start with it.
            return lines[-1] if key != "msg" else lines[0]
    if "rc" in result:
        return f"exit status {result['rc']}"
    return ""


@dataclass
class Progress:
    """Event handler for ansible_runner.run; prints progress and records every per-host result."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    show_skipped: bool = False
    results: list[TaskResult] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._print(f"PLAY  {data.get('play') or data.get('name') or ''}".rstrip())
        elif kind in _RESULT_EVENTS:
            self._result(kind, data)
        elif kind == "runner_retry":
            result = data.get("res") or {}
            attempt = result.get("attempts", "?")
            retries = result.get("retries", "?")
            self._print(f"  waiting  {short_host(str(data.get('host', ''))):<12} {data.get('task', '')} "
                        f"(attempt {attempt} of {retries})")
        elif kind == "playbook_on_stats":
            self.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
            }
        return True  # keep the event in runner's artifacts

    def _result(self, kind: str, data: Mapping[str, Any]) -> None:
        result = data.get("res") or {}
        status = _RESULT_EVENTS[kind]
        if status == "ok" and result.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        message = failure_message(result) if status in ("failed", "unreachable", "ignored") else ""
        host = str(data.get("host", ""))
        task = str(data.get("task", ""))
        self.results.append(TaskResult(host, task, status, message))
        if status == "skipped" and not self.show_skipped:
            return
        label = status.upper() if status in ("failed", "unreachable") else status
        line = f"  {label:<8} {short_host(host):<12} {task}"
        self._print(f"{line}: {message}" if message else line)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    @property
    def failures(self) -> list[TaskResult]:
        return [result for result in self.results if result.status in ("failed", "unreachable")]

    def changed(self, host: str | None = None) -> int:
        """Changed tasks in the final stats (for all hosts, or one)."""
        counts = self.stats.get("changed", {})
        return sum(counts.values()) if host is None else counts.get(host, 0)

    def recap(self) -> list[str]:
        """One line per host: ok/changed/failed/unreachable/skipped counts, like Ansible's PLAY RECAP."""
        hosts = sorted({host for counts in self.stats.values() for host in counts})
        lines = []
        for host in hosts:
            def count(key: str, host: str = host) -> int:
                return self.stats.get(key, {}).get(host, 0)

            lines.append(
                f"  {short_host(host):<12} ok={count('ok')} changed={count('changed')} "
                f"failed={count('failures')} unreachable={count('dark')} skipped={count('skipped')} "
                f"ignored={count('ignored')}"
            )
        return lines
