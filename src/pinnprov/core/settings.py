"""Config precedence, defined once: explicit value, then environment variable, then default.

A bad explicit or environment value raises ValueError naming the key; the CLI turns it into one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_STORE_URL = "sqlite:///pinnprov.db"
"""The embedded default store: a SQLite file in the working directory."""
STORE_ENV = "PINNPROV_STORE"


def resolve(key: str, explicit: T | str | None, env_var: str | None, default: T, parse: Callable[[str], T]) -> T:
    """Return the setting `key` by precedence; `parse` converts strings (from flags, files or the environment)."""
    if explicit is not None:
        source, raw = key, explicit
    elif env_var and os.environ.get(env_var, "") != "":
        source, raw = env_var, os.environ[env_var]
    else:
        return default
    if not isinstance(raw, str):
        return raw  # already typed (from a config file or a Python caller)
    try:
        return parse(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: invalid value {raw!r} ({error})") from None


def parse_bool(value: object) -> bool:
    """A yes/no setting as people write it in flags, files and the environment (1/0, true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def resolve_store_url(explicit: str | None = None) -> str:
    """Which provenance store: --store beats $PINNPROV_STORE beats the default SQLite file.

    Here, not in collector/, because the trainer side (capture, steering) must pick the same store the CLI
    queries without importing the collector.
    """
    return resolve("store", explicit, STORE_ENV, DEFAULT_STORE_URL, str)
