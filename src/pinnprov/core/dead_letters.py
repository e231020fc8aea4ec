"""The dead-letter file: requests that can never be delivered, set aside for a human instead of retried forever.

One JSON object per line: {"at": unix seconds, "signal": "traces" | "metrics" | "raw", "reason": "...",
"payload_base64": the request exactly as received}. Appended and fsynced; one writer at a time. To replay an
entry after fixing its cause, decode the payload and POST it to /v1/traces (Content-Type application/x-protobuf).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path


class DeadLetters:
    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path, self.fsync = path, fsync
        self._lock = threading.Lock()

    def add(self, signal: str, payload: bytes, reason: str) -> Path:
        entry = {"at": time.time(), "signal": signal, "reason": reason,
                 "payload_base64": base64.b64encode(payload).decode()}
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a") as file:
            file.write(line)
            file.flush()
            if self.fsync:
                os.fsync(file.fileno())
        return self.path

    def add_file_tail(self, path: Path, offset: int, reason: str) -> None:
        """Set aside the bytes of `path` from `offset` on (a corrupt spool segment's rest)."""
        with open(path, "rb") as file:
            file.seek(offset)
            raw = file.read()
        if raw:
            self.add("raw", raw, f"{reason} ({path.name} from byte {offset})")
