"""Helpers for OTLP `AnyValue` / `KeyValue` protobufs: typed reads that say *why* a value is unusable.

Translation validates hard (a string where a loss belongs rejects the span), so every read goes through
`typed()`, which raises `AttributeProblem` with a one-line reason instead of coercing silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

MAX_STRING_BYTES = 64 * 1024
"""Largest string/bytes attribute accepted; a bigger one rejects its span (protects the store and the UI)."""
MAX_ATTRIBUTES = 4096
"""Most attributes accepted on one span or resource."""

Plain: TypeAlias = str | bool | int | float | bytes | list["Plain"] | dict[str, "Plain"] | None
"""An AnyValue as a Python value: scalars, arrays (lists) and key/value lists (dicts) of them."""


class AttributeProblem(ValueError):
    """An attribute is missing, of the wrong type or too large; the message names it."""


def _too_big(key: str, size: int) -> AttributeProblem:
    return AttributeProblem(f"attribute {key!r} is {size} bytes (limit {MAX_STRING_BYTES})")


def plain(value: AnyValue, key: str = "?") -> Plain:
    """Convert an AnyValue to a Python value; oversized strings raise AttributeProblem."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        if len(value.string_value) > MAX_STRING_BYTES and len(value.string_value.encode()) > MAX_STRING_BYTES:
            raise _too_big(key, len(value.string_value.encode()))
        return value.string_value
    if kind == "bytes_value":
        if len(value.bytes_value) > MAX_STRING_BYTES:
            raise _too_big(key, len(value.bytes_value))
        return bytes(value.bytes_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return int(value.int_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "array_value":
        return [plain(item, key) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value, f"{key}.{kv.key}") for kv in value.kvlist_value.values}
    raise AttributeProblem(f"attribute {key!r} has unsupported value kind {kind}")


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Plain]:
    """All key/values as a dict (last one wins, as in the OTel SDK); enforces size and count limits."""
    result: dict[str, Plain] = {}
    for count, pair in enumerate(pairs, start=1):
        if count > MAX_ATTRIBUTES:
            raise AttributeProblem(f"more than {MAX_ATTRIBUTES} attributes")
        result[pair.key] = plain(pair.value, pair.key)
    return result


def _type_name(value: object) -> str:
    return "array" if isinstance(value, list) else "map" if isinstance(value, dict) else type(value).__name__


def get_str(attrs: Mapping[str, Plain], key: str, *, required: bool = False, default: str = "") -> str:
    """A string attribute; a non-string value is a problem (we never stringify numbers silently)."""
    value = attrs.get(key)
    if value is None:
        if required:
            raise AttributeProblem(f"missing required attribute {key!r}")
        return default
    if not isinstance(value, str):
        raise AttributeProblem(f"attribute {key!r} must be a string, got {_type_name(value)}")
    return value


def _number(attrs: Mapping[str, Plain], key: str, required: bool, expected: str) -> int | float | None:
    """The attribute if it is numeric (bools are not), None if absent and optional; else AttributeProblem."""
    value = attrs.get(key)
    if value is None:
        if required:
            raise AttributeProblem(f"missing required attribute {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AttributeProblem(f"attribute {key!r} must be {expected}, got {_type_name(value)}")
    return value


def get_int(attrs: Mapping[str, Plain], key: str, *, required: bool = False, default: int = 0) -> int:
    """An integer attribute; a double with an integral value is accepted (some SDKs widen ints)."""
    value = _number(attrs, key, required, "an integer")
    if value is None:
        return default
    if isinstance(value, float):
        if not value.is_integer():
            raise AttributeProblem(f"attribute {key!r} must be an integer, got {value!r}")
        value = int(value)
    return value


def get_float(attrs: Mapping[str, Plain], key: str, *, required: bool = False, default: float = float("nan")) -> float:
    """A numeric attribute as float; NaN and infinities pass (they are facts about training)."""
    value = _number(attrs, key, required, "a number")
    return default if value is None else float(value)


def scalar(value: Plain, key: str) -> str | int | float | bool:
    """A value for a scalar-only column (hyperparameters, resource): arrays of scalars become JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(item, str | bool | int | float) for item in value):
        return json.dumps(value)
    raise AttributeProblem(f"attribute {key!r} must be a scalar or an array of scalars, got {_type_name(value)}")


def to_any_value(value: object) -> AnyValue:
    """The inverse of `plain` for test builders and the metrics path."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        result = AnyValue()
        result.array_value.values.extend(to_any_value(item) for item in value)
        return result
    return AnyValue(string_value=str(value))
