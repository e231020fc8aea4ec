"""A MonetDB for the benchmarks, found or started the way the tests do it (tests/monetdb_server.py).

PINNPROV_TEST_MONETDB_URL if set (an admin URL of a scratch database); otherwise a server started from
PINNPROV_TEST_MONETDB_LAUNCHER (e.g. ../shared/monetdb/serve) or `mserver5` on PATH, in `directory` (kept,
with its data, when the caller gives one: bench/query.py reuses its 10M-row store), else a temporary one.
Every benchmark writes into a schema of its own (a user whose default schema it is), so earlier rows never
count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from monetdb_server import (  # noqa: E402
    LAUNCHER_ENV,
    URL_ENV,
    MonetdbServer,
    drop_private_schema,
    private_schema_url,
)

_STARTED: list[MonetdbServer] = []


def server_pid() -> int | None:
    """The mserver5 this module started (to measure its CPU), None for a server given by URL."""
    return _STARTED[-1].pid() if _STARTED else None


def available() -> bool:
    return bool(os.environ.get(URL_ENV) or os.environ.get(LAUNCHER_ENV) or shutil.which("mserver5"))


@contextlib.contextmanager
def admin_url(directory: Path | None = None) -> Iterator[str]:
    """An admin URL; a server started here is stopped on exit (its data stays in `directory` if given)."""
    given = os.environ.get(URL_ENV, "")
    if given:
        yield given
        return
    if not available():
        raise SystemExit(f"no MonetDB: set {URL_ENV}, or {LAUNCHER_ENV} (e.g. ../shared/monetdb/serve), "
                         "or put mserver5 on PATH")
    launcher = os.environ.get(LAUNCHER_ENV, "")
    temporary = directory is None
    folder = Path(tempfile.mkdtemp(prefix="pinnprov-bench-monetdb-")) if directory is None else directory
    server = MonetdbServer(folder, Path(launcher).resolve() if launcher else None).start()
    _STARTED.append(server)
    try:
        yield server.url
    finally:
        _STARTED.remove(server)
        server.stop()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_schema(admin: str, name: str) -> Iterator[str]:
    """The URL of a new, empty schema `name` (dropped on exit)."""
    url = private_schema_url(admin, name)
    try:
        yield url
    finally:
        drop_private_schema(admin, name)


def persistent_schema_url(admin: str, name: str) -> str:
    """The URL of schema `name` owned by user `name`, created on first use and kept (its password is reset)."""
    import secrets
    import urllib.parse

    import pymonetdb

    from pinnprov.store.monetdb_store import parse_monetdb_url

    password = secrets.token_hex(8)
    conn = pymonetdb.connect(autocommit=True, **parse_monetdb_url(admin))
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM sys.users WHERE name = %(n)s", {"n": name})
        exists = cursor.fetchone()[0] > 0
        if exists:
            cursor.execute(f"ALTER USER \"{name}\" WITH PASSWORD '{password}'")
    finally:
        conn.close()
    if not exists:
        return private_schema_url(admin, name)
    parts = urllib.parse.urlsplit(admin)
    return f"monetdb://{name}:{password}@{parts.hostname}:{parts.port or 50000}{parts.path}"
