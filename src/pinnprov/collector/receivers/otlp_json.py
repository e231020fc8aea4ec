"""OTLP/JSON <-> protobuf, per the OTLP specification's JSON mapping.

The spec follows proto3's JSON mapping (lowerCamelCase names, enums as integers, 64-bit integers as
decimal strings or numbers) with one deliberate exception that `google.protobuf.json_format` does not
know: trace and span ids are *hex* strings, not base64. So ids are converted on the way in and out
(only the id fields: `bytesValue` attribute values stay base64), and json_format does the rest.
Unknown fields are ignored, as the spec asks of receivers. Nesting deeper than the interpreter's recursion
limit (`[` x 100,000 is a 100 kB body) is a `TooDeep` refusal, never a RecursionError escaping.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class TooDeep(ValueError):
    """The JSON nests deeper than can be parsed: a refusal of the body like any other ValueError."""

# JSON field name -> id length in bytes (json_format accepts camelCase and the proto names)
_ID_FIELDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _ids_hex_to_base64(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        converted = {}
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in _ID_FIELDS and isinstance(value, str):
                converted[key] = _hex_to_base64(value, _ID_FIELDS[key], where)
            else:
                converted[key] = _ids_hex_to_base64(value, where)
        return converted
    if isinstance(node, list):
        return [_ids_hex_to_base64(item, f"{path}[{index}]") for index, item in enumerate(node)]
    return node


def _hex_to_base64(text: str, length: int, where: str) -> str:
    if text == "":
        return ""
    if len(text) != 2 * length:
        raise ValueError(f"{where}: expected {2 * length} hex digits, got {len(text)} characters")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{where}: not hex: {text[:40]!r}") from None
    return base64.b64encode(raw).decode()


def _ids_base64_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (base64.b64decode(value).hex() if key in _ID_FIELDS and isinstance(value, str) else
                  _ids_base64_to_hex(value))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_ids_base64_to_hex(item) for item in node]
    return node


def parse(body: bytes, message: M) -> M:
    """Fill `message` from an OTLP/JSON body; ValueError with a short reason if it is not one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"body is not JSON: {error}") from None
    except RecursionError:
        raise TooDeep("body nests JSON arrays or objects too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    try:
        json_format.ParseDict(_ids_hex_to_base64(data, "$"), message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError) as error:
        raise ValueError(" ".join(str(error).split())[:300]) from None
    except RecursionError:
        raise TooDeep("body nests OTLP values too deeply") from None
    return message


def to_dict(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of a message (hex ids, lowerCamelCase, enums as integers)."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    converted: dict[str, Any] = _ids_base64_to_hex(data)  # a dict in, a dict out
    return converted


def dumps(message: Message) -> bytes:
    return json.dumps(to_dict(message), separators=(",", ":")).encode()
