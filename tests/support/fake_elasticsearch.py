"""A small Elasticsearch *server* on loopback (not a client mock) and the checks that it behaves like one.

The real `elasticsearch` client talks to it over HTTP, so the tests see the exact requests the client
sends (paths, compatibility headers, auth, ndjson bulk bodies) and exercise the real client's error
handling. It speaks: GET /, index templates, HEAD/PUT index, PUT _mapping, POST _bulk (index, create,
update with doc/upsert/doc_as_upsert), POST _mget, GET _doc. Failures are scripted: whole-request statuses
(`fail_requests`) and per-document statuses (`item_failures`). It answers as a server of the installed
client's major version; another `server_major` makes it negotiate the client's `compatible-with=N` header
like a real node of that major: N and N-1 are accepted (REST compatibility), anything else is refused with
the real 400 media_type_header_exception. Where the sink depends on the server's answers they have the real
shapes, from elastic/elasticsearch's sources:
- version negotiation: server/src/main/java/org/elasticsearch/rest/RestCompatibleVersionHelper.java
  (getCompatibleVersion's messages), raised as RestRequest.MediaTypeHeaderException("Invalid media-type
  value on headers [Accept, Content-Type]") with the status_exception as its cause;
- a mapping conflict on PUT _mapping: FieldMapper.merge's IllegalArgumentException, "mapper [f] cannot be
  changed from type [a] to [b]" (server/src/main/java/org/elasticsearch/index/mapper/FieldMapper.java);
- `X-Elastic-Product: Elasticsearch` on every answer (the client refuses a 2xx without it:
  elasticsearch-py's BaseClient.perform_request, UnsupportedProductError); `product_header=False` drops it.
The whole ES suite runs with either client major (tests/test_es_majors.py does it for 8.x):
    PYTHONPATH=<dir with elasticsearch 8.x> pytest tests/test_es_*.py
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import elasticsearch

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])
"""The fake answers as a server of the installed client's major version unless told otherwise."""
OTHER_MAJOR = 8 if CLIENT_MAJOR != 8 else 7
"""A server major that refuses the installed client (older: REST compatibility only reaches back)."""
NEWER_MAJOR = CLIENT_MAJOR + 1
"""A server major that accepts the installed client through REST compatibility (N-1)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def ndjson(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class FakeState:
    server_major: int = CLIENT_MAJOR
    api_key: str | None = None  # required "ApiKey <this>" if set
    basic: tuple[str, str] | None = None  # required user/password if set
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    indices: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"mappings", "docs"}
    requests: list[Request] = field(default_factory=list)
    fail_requests: list[int] = field(default_factory=list)  # statuses for the next bulk requests, popped
    item_failures: Callable[[str, str, dict[str, Any]], int | None] | None = None  # (index, id, source)
    product_header: bool = True  # X-Elastic-Product: Elasticsearch on every answer, like a real node

    def bulk_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/_bulk")]


def _template_for(state: FakeState, index: str) -> dict[str, Any] | None:
    best = None
    for body in state.templates.values():
        for pattern in body.get("index_patterns", []):
            if re.fullmatch(pattern.replace("*", ".*"), index) and (
                best is None or body.get("priority", 0) > best.get("priority", 0)
            ):
                best = body
    return best


def _type_error(mappings: dict[str, Any], source: dict[str, Any], prefix: str = "") -> str | None:
    """What a real mapping would refuse: a non-number in a numeric field, a non-string in a keyword/date."""
    properties = mappings.get("properties", {})
    for key, value in source.items():
        spec = properties.get(key)
        if spec is None:
            continue
        kind = spec.get("type", "object")
        if kind in ("long", "double") and (isinstance(value, bool) or not isinstance(value, int | float | type(None))):
            return f"failed to parse field [{prefix}{key}] of type [{kind}]"
        if kind == "object" and isinstance(value, dict):
            nested = _type_error(spec, value, f"{prefix}{key}.")
            if nested:
                return nested
    return None


def _compatible_version(header: str | None) -> int | None:
    found = re.search(r"compatible-with=(\d+)", header or "")
    return int(found.group(1)) if found else None


def _negotiate(major: int, accept: str | None, content_type: str | None, has_body: bool) -> dict[str, Any] | None:
    """RestCompatibleVersionHelper.getCompatibleVersion: None if acceptable, else the real 400 error body."""
    accept_version = _compatible_version(accept) or major
    content_version = _compatible_version(content_type) or major
    cause = None
    if not major - 1 <= accept_version <= major:
        cause = (f"Accept version must be either version {major} or {major - 1}, but found {accept_version}. "
                 f"Accept={accept}")
    elif has_body and not major - 1 <= content_version <= major:
        cause = (f"Content-Type version must be either version {major} or {major - 1}, but found "
                 f"{content_version}. Content-Type={content_type}")
    elif has_body and content_version != accept_version:
        cause = ("A compatible version is required on both Content-Type and Accept headers if either one has "
                 "requested a compatible version and the compatible versions must match. "
                 f"Accept={accept}, Content-Type={content_type}")
    if cause is None:
        return None
    reason = "Invalid media-type value on headers [Accept, Content-Type]"
    return {"error": {"root_cause": [{"type": "media_type_header_exception", "reason": reason}],
                      "type": "media_type_header_exception", "reason": reason,
                      "caused_by": {"type": "status_exception", "reason": cause}}, "status": 400}


def _mapping_conflict(current: dict[str, Any], update: dict[str, Any], prefix: str = "") -> str | None:
    """FieldMapper.merge: a mapped field cannot change its type (new fields are fine)."""
    for name, spec in update.get("properties", {}).items():
        old = current.get("properties", {}).get(name)
        if old is None:
            continue
        old_type, new_type = old.get("type", "object"), spec.get("type", "object")
        if old_type != new_type:
            return f"mapper [{prefix}{name}] cannot be changed from type [{old_type}] to [{new_type}]"
        nested = _mapping_conflict(old, spec, f"{prefix}{name}.")
        if nested:
            return nested
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return

    def _reply(self, status: int, body: Any = None, extra: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if self.state.product_header:
            self.send_header("X-Elastic-Product", "Elasticsearch")
        mimetype = f"application/vnd.elasticsearch+json;compatible-with={self.state.server_major}"
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    @property
    def state(self) -> FakeState:
        return self.server.state

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if self.state.api_key is not None:
            return header == f"ApiKey {self.state.api_key}"
        if self.state.basic is not None:
            expected = base64.b64encode(":".join(self.state.basic).encode()).decode()
            return header == f"Basic {expected}"
        return True

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = Request(self.command, unquote(parts.path), parse_qs(parts.query), headers, body)
        self.state.requests.append(request)
        refusal = _negotiate(self.state.server_major, self.headers.get("Accept"), self.headers.get("Content-Type"),
                             bool(body))
        if refusal is not None:
            self._reply(400, refusal)
            return
        if not self._authorised():
            self._reply(401, {"error": {"type": "security_exception", "reason": "unable to authenticate"},
                              "status": 401}, {"WWW-Authenticate": 'ApiKey, Basic realm="security"'})
            return
        self._route(request)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    def _route(self, request: Request) -> None:
        path, method = request.path, request.method
        segments = [s for s in path.split("/") if s]
        if path == "/" and method == "GET":
            number = f"{self.state.server_major}.1.0"
            self._reply(200, {"name": "fake", "version": {"number": number}, "tagline": "You Know, for Search"})
        elif len(segments) == 2 and segments[0] == "_index_template":
            if method == "PUT":
                self.state.templates[segments[1]] = json.loads(request.body)
                self._reply(200, {"acknowledged": True})
            elif segments[1] in self.state.templates:
                self._reply(200, {"index_templates": [{"name": segments[1],
                                                       "index_template": self.state.templates[segments[1]]}]})
            else:
                self._reply(404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
        elif segments == ["_bulk"] and method in ("POST", "PUT"):
            self._bulk(request)
        elif len(segments) == 2 and segments[1] == "_mget":
            self._mget(segments[0], json.loads(request.body))
        elif len(segments) == 2 and segments[1] == "_mapping" and method == "PUT":
            index = self.state.indices.get(segments[0])
            if index is None:
                self._reply(404, {"error": {"type": "index_not_found_exception"}, "status": 404})
                return
            update = json.loads(request.body)
            conflict = _mapping_conflict(index["mappings"], update)
            if conflict:
                self._reply(400, {"error": {"root_cause": [{"type": "illegal_argument_exception", "reason": conflict}],
                                            "type": "illegal_argument_exception", "reason": conflict}, "status": 400})
                return
            index["mappings"].setdefault("properties", {}).update(update.get("properties", {}))
            self._reply(200, {"acknowledged": True})
        elif len(segments) == 3 and segments[1] == "_doc" and method == "GET":
            doc = self.state.indices.get(segments[0], {}).get("docs", {}).get(segments[2])
            if doc is None:
                self._reply(404, {"_index": segments[0], "_id": segments[2], "found": False})
            else:
                self._reply(200, {"_index": segments[0], "_id": segments[2], "found": True, "_source": doc})
        elif len(segments) == 1 and method == "HEAD":
            self._reply(200 if segments[0] in self.state.indices else 404)
        elif len(segments) == 1 and method == "PUT":
            if segments[0] in self.state.indices:
                self._reply(400, {"error": {"type": "resource_already_exists_exception",
                                            "reason": f"index [{segments[0]}] already exists"}, "status": 400})
                return
            self._create_index(segments[0])
            self._reply(200, {"acknowledged": True, "shards_acknowledged": True, "index": segments[0]})
        else:
            self._reply(404, {"error": {"type": "fake_unsupported", "reason": f"{method} {path}"}, "status": 404})

    def _create_index(self, name: str) -> dict[str, Any]:
        template = _template_for(self.state, name) or {}
        mappings = json.loads(json.dumps(template.get("template", {}).get("mappings", {})))
        index = {"mappings": mappings, "docs": {}}
        self.state.indices[name] = index
        return index

    def _mget(self, index_name: str, body: dict[str, Any]) -> None:
        index = self.state.indices.get(index_name)
        docs = []
        for doc_id in body.get("ids", []):
            if index is None:
                docs.append({"_index": index_name, "_id": doc_id,
                             "error": {"type": "index_not_found_exception", "reason": "no such index"}})
            elif doc_id in index["docs"]:
                docs.append({"_index": index_name, "_id": doc_id, "found": True, "_source": index["docs"][doc_id]})
            else:
                docs.append({"_index": index_name, "_id": doc_id, "found": False})
        self._reply(200, {"docs": docs})

    def _bulk(self, request: Request) -> None:
        if self.state.fail_requests:
            status = self.state.fail_requests.pop(0)
            kind = "es_rejected_execution_exception" if status == 429 else "unavailable"
            self._reply(status, {"error": {"type": kind, "reason": "scripted failure"}, "status": status})
            return
        lines = request.ndjson()
        items, errors = [], False
        for meta_line, source in zip(lines[0::2], lines[1::2], strict=True):
            (op, meta), = meta_line.items()
            item = self._bulk_item(op, meta, source)
            errors = errors or item["status"] >= 300
            items.append({op: item})
        self._reply(200, {"took": 1, "errors": errors, "items": items})

    def _bulk_item(self, op: str, meta: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        name, doc_id = meta["_index"], meta["_id"]
        result: dict[str, Any] = {"_index": name, "_id": doc_id}
        hook = self.state.item_failures
        forced = hook(name, doc_id, source) if hook else None
        if forced:
            kind = "es_rejected_execution_exception" if forced == 429 else "scripted_failure"
            return {**result, "status": forced, "error": {"type": kind, "reason": "scripted"}}
        index = self.state.indices.get(name) or self._create_index(name)
        docs = index["docs"]
        if op == "update":
            if doc_id in docs:
                document = {**docs[doc_id], **source.get("doc", {})}
            elif source.get("doc_as_upsert"):
                document = dict(source["doc"])
            elif "upsert" in source:
                document = dict(source["upsert"])
            else:
                return {**result, "status": 404, "error": {"type": "document_missing_exception", "reason": "missing"}}
        else:
            document = source
        problem = _type_error(index["mappings"], document)
        if problem:
            return {**result, "status": 400, "error": {"type": "document_parsing_exception", "reason": problem}}
        created = doc_id not in docs
        if op == "create" and not created:
            return {**result, "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}
        docs[doc_id] = document
        return {**result, "status": 201 if created else 200, "result": "created" if created else "updated"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeElasticsearch:
    """Context manager: `with FakeElasticsearch() as es: es.url, es.state`."""

    def __init__(self, state: FakeState | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.state = state or FakeState()
        self._server = _Server(self.state)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-es", daemon=True)

    def __enter__(self) -> FakeElasticsearch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# --- the fake must satisfy the real client, or every test built on it proves nothing -------------------
