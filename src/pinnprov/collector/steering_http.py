"""HTTP handler logic for remote steering, mounted by the collector's OTLP/HTTP receiver.

    GET  /v1/steering/<run_id>      -> 200 {"run_id", "status", "commands": [...]} pending commands, oldest first
    POST /v1/steering/<run_id>/ack  -> 200 {"acknowledged": <command_id>}   body {"command_id", "applied", "detail"}

Plain functions of (store, request parts) -> (HTTP status, JSON body bytes), with no server in them, so the
receiver keeps one place for transport concerns (bind address, bearer-token auth, TLS, body limits) and these
are tested without sockets. Errors are JSON objects {"error": "..."} with a one-line message.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from pinnprov.core import steering
from pinnprov.store import steering_channel as channel

if TYPE_CHECKING:
    from pinnprov.store.access import Store

log = logging.getLogger(__name__)

PREFIX = "/v1/steering/"
MAX_ACK_BYTES = 64 * 1024
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PATH = re.compile(r"^/v1/steering/([^/]+)(/ack)?/?$")

Response = tuple[int, bytes]


def _json(status: int, payload: dict[str, Any]) -> Response:
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _bad_run_id(run_id: str) -> Response | None:
    if not _RUN_ID.match(run_id):
        return _json(400, {"error": f"run id must be 32 lowercase hex digits, got {run_id[:64]!r}"})
    return None


def handle_steering_get(store: Store, run_id: str) -> Response:
    """Pending commands of a running run; none for a finished one (they can no longer apply)."""
    if (bad := _bad_run_id(run_id)) is not None:
        return bad
    try:
        status = channel.run_status(store, run_id)
        if status is None:
            return _json(404, {"error": f"unknown run {run_id}"})
        commands = [] if status in channel.FINISHED else channel.pending(store, run_id)
    except Exception as error:  # noqa: BLE001 - a store outage is the client's retry, not our crash
        log.warning("steering GET for %s failed: %s", run_id, error)
        return _json(503, {"error": f"store unavailable: {error}"})
    return _json(
        200, {"run_id": run_id, "status": status, "commands": [steering.command_to_json(c) for c in commands]}
    )


def handle_steering_ack(store: Store, run_id: str, body: bytes) -> Response:
    """Record that the trainer applied (or refused) a command; acknowledging twice is harmless."""
    if (bad := _bad_run_id(run_id)) is not None:
        return bad
    if len(body) > MAX_ACK_BYTES:
        return _json(413, {"error": f"acknowledgement larger than {MAX_ACK_BYTES} bytes"})
    try:
        ack = steering.Acknowledgement.from_json(json.loads(body or b"null"))
    except (ValueError, UnicodeDecodeError) as error:
        return _json(400, {"error": f"bad acknowledgement: {str(error).splitlines()[0]}"})
    try:
        known = channel.acknowledge(store, run_id, ack)
    except Exception as error:  # noqa: BLE001
        log.warning("steering ack for %s failed: %s", run_id, error)
        return _json(503, {"error": f"store unavailable: {error}"})
    if not known:
        return _json(404, {"error": f"run {run_id} has no steering command {ack.command_id}"})
    return _json(200, {"acknowledged": ack.command_id})


def handle_steering_request(store: Store, method: str, path: str, body: bytes = b"") -> Response | None:
    """Route one request; None when `path` is not a steering path (the receiver then handles it itself)."""
    path = path.split("?", 1)[0]
    if not path.startswith(PREFIX):
        return None
    match = _PATH.match(path)
    if match is None:
        return _json(404, {"error": f"no such steering resource {path[:200]!r}"})
    run_id, is_ack = match.group(1), bool(match.group(2))
    if is_ack:
        if method != "POST":
            return _json(405, {"error": "use POST to acknowledge a command"})
        return handle_steering_ack(store, run_id, body)
    if method != "GET":
        return _json(405, {"error": "use GET to read pending commands"})
    return handle_steering_get(store, run_id)
