"""Store connections for the UI: read-only ones kept per worker thread, a writable one only to queue a command.

Why per thread: request handlers run on a thread pool, SQLite connections belong to the thread that opened them,
and opening a MonetDB connection per poll would cost more than the query. Each read is its own transaction
(SQLite autocommit, MonetDB rolled back), so a kept connection still sees every epoch the trainer commits.
A failing connection is dropped and reopened on the next request (the store may have been recreated).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pinnprov.core.settings import resolve_store_url
from pinnprov.store.access import open_store, sqlite_path


class ReadStores:
    def __init__(self, url: str | None) -> None:
        self.url = resolve_store_url(url)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    @contextmanager
    def read(self) -> Iterator[Any]:
        """This thread's read-only store; FileNotFoundError while the store does not exist yet."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.url)  # read_only=True: the database refuses writes, a missing file stays missing
            self._local.store = store
            with self._lock:
                self._open.append(store)
        try:
            yield store
        except (LookupError, ValueError):
            raise  # the request's problem (unknown run, bad option), not the connection's
        except Exception:
            self._discard(store)
            raise

    def _discard(self, store: Any) -> None:
        self._local.store = None
        with self._lock:
            if store in self._open:
                self._open.remove(store)
        with contextlib.suppress(Exception):  # already broken; the next request opens a fresh one
            store.close()

    def close(self) -> None:
        """Close the kept connections at shutdown; one that refuses (another thread's) goes with the process."""
        with self._lock:
            stores, self._open = self._open, []
        for store in stores:
            with contextlib.suppress(Exception):  # SQLite: "objects created in a thread can only be used in that"
                store.close()

    @property
    def label(self) -> str:
        """The store URL without credentials, for the page header."""
        from pinnprov.core.urls import redact

        return redact(self.url)


def open_writable(url: str) -> Any:
    """A writable store for queuing one steering command; never creates a missing SQLite store."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"store not found: {path}")
    return open_store(url, read_only=False)
