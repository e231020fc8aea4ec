"""pytest plugin: a real MonetDB server for the MonetDB tests, and a private schema for each test.

Where the server comes from, in this order:
1. `PINNPROV_TEST_MONETDB_URL`: a scratch database you run (its user must be allowed to create users and schemas);
2. a throwaway server this session starts in a temporary directory and stops at the end, from
   - the launcher named by `PINNPROV_TEST_MONETDB_LAUNCHER` (a script with the interface of
     `../shared/monetdb/serve`: `start DIR PORT` prints the URL, `stop DIR`; `.ci/run` points at it), or
   - `mserver5` on PATH;
3. otherwise the MonetDB tests are skipped with that reason. A launcher that is named but cannot start a server is
   an error, not a skip: CI must not turn a broken server into green skips.

Isolation: `monetdb_url` gives every test a new user whose default schema is a new, empty schema, so unqualified
table names (all of pinnprov's) land there; test order does not matter and nothing is left behind.
Tests that stop or kill the server get their own with `monetdb_launch` (never the shared one).
Ports: the OS picks them (mapi_port=0); the real port is read from the server's log.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

URL_ENV = "PINNPROV_TEST_MONETDB_URL"
LAUNCHER_ENV = "PINNPROV_TEST_MONETDB_LAUNCHER"
_LISTENING = re.compile(r"Listening for connection requests on mapi:monetdb://[^:/]+:(\d+)/")
_START_TIMEOUT_S = 60.0


@dataclass
class MonetdbServer:
    """One mserver5 this session started; `stop()`/`kill()` and `start()` again keep its data and port."""

    directory: Path
    launcher: Path | None  # None: mserver5 from PATH
    port: int = 0
    database: str = "pinnprov_test"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"monetdb://monetdb:monetdb@127.0.0.1:{self.port}/{self.database}"

    @property
    def log(self) -> Path:
        return self.directory / "mserver5.log"

    def start(self) -> MonetdbServer:
        """Start (again, on the same port once it has one) and wait until it accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.launcher is not None:
            done = subprocess.run([str(self.launcher), "start", str(self.directory), str(self.port)],
                                  capture_output=True, text=True, timeout=_START_TIMEOUT_S + 30, cwd=self.directory)
            if done.returncode != 0:
                raise RuntimeError(f"{self.launcher} start failed ({done.returncode}): {done.stderr.strip()[-800:]}")
            parts = urllib.parse.urlsplit(done.stdout.strip().splitlines()[-1])
            self.database = parts.path.lstrip("/") or self.database
        else:
            self.log.write_text("")
            log = open(self.log, "ab")  # noqa: SIM115 - owned by the server process
            self._proc = subprocess.Popen(
                ["mserver5", f"--dbpath={self.directory / self.database}", "--set", f"mapi_port={self.port}",
                 "--set", "mapi_listenaddr=127.0.0.1", "--set", "gdk_nr_threads=2"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory)
            log.close()
        self.port = self._wait_listening()
        return self

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = _LISTENING.findall(self.log.read_text(errors="replace")) if self.log.exists() else []
            if found:
                return int(found[-1])
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"mserver5 in {self.directory} is not listening; log tail: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-800:] if self.log.exists() else "(no log)"

    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        pidfile = self.directory / "mserver5.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def alive(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, then SIGKILL after 10 s), as `serve stop` does."""
        if self.launcher is not None:
            subprocess.run([str(self.launcher), "stop", str(self.directory)], capture_output=True, timeout=60,
                           cwd=self.directory)
        elif self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def kill(self) -> None:
        """SIGKILL mserver5: no shutdown, the database recovers from its write-ahead log at the next start."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()
            time.sleep(0.02)


_STARTED_IN = Path.cwd()  # a relative launcher path (.ci/run's ../shared/monetdb/serve) is relative to here


def _server_source() -> tuple[Path | None, str]:
    """(launcher or None for mserver5, '') when a server can be started here, else (None, why not)."""
    launcher = os.environ.get(LAUNCHER_ENV, "")
    if launcher:
        path = Path(launcher).expanduser()
        if not path.is_absolute():
            path = _STARTED_IN / path
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"{LAUNCHER_ENV}={launcher}: not an executable file")
        return path, ""
    if shutil.which("mserver5"):
        return None, ""
    return None, f"no MonetDB: set {URL_ENV} to a scratch database, {LAUNCHER_ENV} to a server launcher, " \
                 "or put mserver5 on PATH"


def launch_server(directory: Path) -> MonetdbServer:
    """Start a new throwaway server in `directory` (pytest skips when none can be started)."""
    launcher, why_not = _server_source()
    if why_not:
        pytest.skip(why_not)
    return MonetdbServer(directory, launcher).start()


@pytest.fixture(scope="session")
def monetdb_server_url() -> Iterator[str]:
    """An admin URL of the session's MonetDB (see the module docstring for where it comes from)."""
    given = os.environ.get(URL_ENV, "")
    if given:
        yield given
        return
    directory = Path(tempfile.mkdtemp(prefix="pinnprov-monetdb-"))
    server = launch_server(directory)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _admin(url: str) -> Any:  # a pymonetdb connection (pymonetdb has no type hints)
    import pymonetdb

    from pinnprov.store.monetdb_store import parse_monetdb_url

    return pymonetdb.connect(autocommit=True, connect_timeout=30, **parse_monetdb_url(url))


def private_schema_url(admin_url: str, name: str) -> str:
    """Create user and schema `name` (the user's default schema) and return the user's URL."""
    password = secrets.token_hex(8)
    conn = _admin(admin_url)
    try:
        cursor = conn.cursor()
        cursor.execute(f"CREATE USER \"{name}\" WITH PASSWORD '{password}' NAME 'pinnprov test' SCHEMA \"sys\"")
        cursor.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
        cursor.execute(f'ALTER USER "{name}" SET SCHEMA "{name}"')
    finally:
        conn.close()
    parts = urllib.parse.urlsplit(admin_url)
    return f"monetdb://{name}:{password}@{parts.hostname}:{parts.port or 50000}{parts.path}"


def drop_private_schema(admin_url: str, name: str) -> None:
    conn = _admin(admin_url)
    try:
        cursor = conn.cursor()
        cursor.execute(f'ALTER USER "{name}" SET SCHEMA "sys"')
        cursor.execute(f'DROP SCHEMA "{name}" CASCADE')
        cursor.execute(f'DROP USER "{name}"')
    finally:
        conn.close()


@pytest.fixture
def monetdb_url(monetdb_server_url: str) -> Iterator[str]:
    """A URL whose tables are this test's alone: a fresh user and schema on the session's server, dropped after."""
    name = f"pp_{secrets.token_hex(6)}"
    url = private_schema_url(monetdb_server_url, name)
    try:
        yield url
    finally:
        drop_private_schema(monetdb_server_url, name)


@pytest.fixture
def monetdb_launch(tmp_path: Path) -> Iterator[Callable[[], MonetdbServer]]:
    """Start servers of this test's own (for tests that stop, kill or crash them); all stopped at the end."""
    started: list[MonetdbServer] = []

    def launch() -> MonetdbServer:
        server = launch_server(tmp_path / f"mdb{len(started)}")
        started.append(server)
        return server

    yield launch
    for server in started:
        server.stop()
