"""The store side of steering: queue a command for a running run, read a run's pending commands, acknowledge them.

What a command is and how it is validated lives in pinnprov/core/steering.py (shared with the trainer side); these
are thin adapters over pinnprov.store.access's steering-command API, used by `pinnprov steer`, the collector's HTTP
handler, alert actions and the embedded store-backed command source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinnprov.core.steering import Acknowledgement, SteeringCommand, command_from_json

if TYPE_CHECKING:
    from pinnprov.store.access import CommandRow, Store

# --- the store side: thin adapters over pinnprov.store.access's steering-command API -------------------------

FINISHED = ("completed", "stopped", "failed")
_STATUS_SQL = "SELECT status FROM run WHERE run_id = :run_id"


def run_status(store: Store, run_id: str) -> str | None:
    """The run's status ('running' until its end arrives), or None for a run the store does not know."""
    rows = store.execute(_STATUS_SQL, {"run_id": run_id}).rows
    if not rows:
        return None
    return str(rows[0][0] or "running")


def _as_command(row: CommandRow) -> SteeringCommand:
    return command_from_json(
        {
            "command_id": row.command_id,
            "kind": row.kind,
            "value": row.value if row.value is not None else 0.0,
            "parameter": row.parameter,
            "agent": row.agent,
            "reason": row.reason,
        }
    )


def pending(store: Store, run_id: str) -> list[SteeringCommand]:
    """Pending commands of one run, oldest first (rows that would not validate are skipped, not fatal)."""
    from pinnprov.store.access import pending_commands

    commands = []
    for row in pending_commands(store, run_id):
        try:
            commands.append(_as_command(row))
        except ValueError:
            continue  # written by something other than `submit`; the trainer could not apply it anyway
    return commands


def acknowledge(store: Store, run_id: str, ack: Acknowledgement) -> bool:
    """Mark the command applied/refused; True if the run has this command (acknowledging twice is a no-op)."""
    from pinnprov.store.access import acknowledge_command, list_commands

    if not any(row.command_id == ack.command_id for row in list_commands(store, run_id)):
        return False
    acknowledge_command(store, ack.command_id, applied=ack.applied, detail=ack.detail)
    return True


def submit(store: Store, run_id: str, command: SteeringCommand) -> None:
    """Queue a command for a running run; ValueError (one line) for an unknown or finished run.

    The status check and the insert are two statements: a run that ends in between simply never applies the
    command (it stays pending and `pinnprov query --sql` shows it), which is the same outcome as a command
    that arrives after the trainer's last poll.
    """
    from pinnprov.store.access import insert_command

    status = run_status(store, run_id)
    if status is None:
        raise ValueError(f"unknown run {run_id}")
    if status in FINISHED:
        raise ValueError(f"run {run_id} has already ended (status {status}); steering applies to running runs only")
    insert_command(
        store,
        command_id=command.command_id,
        run_id=run_id,
        kind=command.kind,
        value=None if command.kind == "stop" else command.value,
        parameter=command.parameter,
        agent=command.agent,
        reason=command.reason,
    )


class StoreChannel:
    """One provenance store as a trainer's command channel: pending commands of a run, and acknowledgements.

    This is what the trainer-side store poller (pinnprov.capture.steering_poller.StoreCommandSource) is handed by
    the composition root. It holds one writable connection: acknowledgements update the command rows, and
    opening creates the schema if the capture has not written its first batch yet.
    """

    def __init__(self, store_url: str) -> None:
        from pinnprov.store.access import open_store

        self._store = open_store(store_url, read_only=False)

    def pending(self, run_id: str) -> list[SteeringCommand]:
        return pending(self._store, run_id)

    def acknowledge(self, run_id: str, ack: Acknowledgement) -> bool:
        return acknowledge(self._store, run_id, ack)

    def close(self) -> None:
        self._store.close()
