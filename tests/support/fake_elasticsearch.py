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


# --- time series data streams (TSDS), from the Elasticsearch reference: "Time series data stream (TSDS)",
# "Set up a TSDS", "Time series index settings" and the `histogram` field type. What the fake checks:
# - a template: `index.mode: time_series` needs `data_stream`; `time_series_dimension` only on keyword, ip and
#   integral fields; `time_series_metric` gauge|counter only on numeric fields, histogram only on `histogram`;
#   `index.routing_path` names keyword dimensions (wildcards allowed);
# - a document: only `create` ("only write ops with an op_type of create are allowed in data streams"), no `_id`
#   (a TSDS derives it from the dimensions and @timestamp), a @timestamp, at least one routing dimension, keyword
#   dimension values of at most 1024 bytes, histograms with `values` ascending and `counts` >= 0 of equal length.
_DIMENSION_TYPES = {"keyword", "ip", "long", "integer", "short", "byte", "unsigned_long", "boolean"}
_NUMERIC_TYPES = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}


def _fields(mappings: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted leaf path -> field mapping."""
    found: dict[str, dict[str, Any]] = {}
    for key, spec in mappings.get("properties", {}).items():
        if "properties" in spec:
            found.update(_fields(spec, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = spec
    return found


def _mapping_problem(path: str, spec: dict[str, Any]) -> str | None:
    kind = spec.get("type", "object")
    if spec.get("time_series_dimension") and kind not in _DIMENSION_TYPES:
        return f"Field [time_series_dimension] cannot be set in conjunction with field type [{kind}] ({path})"
    metric = spec.get("time_series_metric")
    if metric is not None:
        allowed = {"histogram"} if kind == "histogram" else {"gauge", "counter"} if kind in _NUMERIC_TYPES else set()
        if metric not in allowed:
            return (f"Unknown value [{metric}] for field [time_series_metric] of [{path}] - accepted values are "
                    f"{sorted(allowed)}")
    return None


def template_problem(body: dict[str, Any]) -> str | None:
    template = body.get("template", {})
    settings, mappings = template.get("settings", {}), template.get("mappings", {})
    fields = _fields(mappings)
    for path, spec in fields.items():
        problem = _mapping_problem(path, spec)
        if problem:
            return problem
    dynamic = {name: entry for item in mappings.get("dynamic_templates", []) for name, entry in item.items()}
    for entry in dynamic.values():
        problem = _mapping_problem(entry.get("path_match", "?"), entry.get("mapping", {}))
        if problem:
            return problem
    if settings.get("index.mode") == "time_series":
        if "data_stream" not in body:
            return "[index.mode=time_series] is only supported in composable templates with a data stream"
        routing = settings.get("index.routing_path") or []
        if isinstance(routing, str):
            routing = [routing]
        for pattern in routing:
            regex = re.compile(pattern.replace(".", r"\.").replace("*", ".*"))
            matched = [spec for path, spec in fields.items() if regex.fullmatch(path)]
            matched += [e["mapping"] for e in dynamic.values() if e.get("path_match") == pattern]
            if not matched:
                continue  # a pattern that matches no field yet is accepted
            if any(m.get("type") != "keyword" or not m.get("time_series_dimension") for m in matched):
                return (f"All fields that match routing_path must be configured with [time_series_dimension: true] "
                        f"and of type [keyword] ({pattern})")
    return None


def _leaves(source: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in source.items():
        if isinstance(value, dict) and not {"values", "counts"} <= set(value):
            found.update(_leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def _dimension_paths(mappings: dict[str, Any], source: dict[str, Any]) -> list[str]:
    fields = _fields(mappings)
    dynamic = [e for item in mappings.get("dynamic_templates", []) for e in item.values()
               if e.get("mapping", {}).get("time_series_dimension")]
    paths = []
    for path in _leaves(source):
        spec = fields.get(path)
        if spec is None:
            dimension = any(re.fullmatch(e["path_match"].replace(".", r"\.").replace("*", ".*"), path) for e in dynamic)
        else:
            dimension = bool(spec.get("time_series_dimension"))
        if dimension:
            paths.append(path)
    return sorted(paths)


def tsds_problem(op: str, meta: dict[str, Any], source: dict[str, Any], mappings: dict[str, Any],
                 settings: dict[str, Any]) -> tuple[int, str, str] | None:
    """(status, error type, reason) a data stream (time series mode) gives this bulk item, None if accepted."""
    if op != "create":
        return 400, "illegal_argument_exception", ("only write ops with an op_type of create are allowed in data "
                                                   "streams")
    if "@timestamp" not in source:
        return 400, "document_parsing_exception", "data stream timestamp field [@timestamp] is missing"
    if settings.get("index.mode") != "time_series":
        return None
    if "_id" in meta:
        return 400, "illegal_argument_exception", (f"_id must be unset or set to a value derived from the dimensions; "
                                                   f"got [{meta['_id']}]")
    leaves = _leaves(source)
    dimensions = _dimension_paths(mappings, source)
    if not dimensions:
        return 400, "document_parsing_exception", "Error extracting routing: source didn't contain any routing fields"
    for path in dimensions:
        value = leaves[path]
        if isinstance(value, str) and len(value.encode()) > 1024:
            return 400, "document_parsing_exception", f"Dimension fields must be less than [1024] bytes ({path})"
        if isinstance(value, list):
            return 400, "document_parsing_exception", f"Dimension field [{path}] cannot be a multi-valued field."
    fields = _fields(mappings)
    for path, value in leaves.items():
        spec = fields.get(path, {})
        if spec.get("type") == "histogram":
            values, counts = value.get("values", []), value.get("counts", [])
            if len(values) != len(counts):
                return 400, "document_parsing_exception", (f"failed to parse field [{path}] of type [histogram]: "
                                                           f"expected same length from [values] and [counts] but got "
                                                           f"[{len(values)} != {len(counts)}]")
            if any(b <= a for a, b in zip(values, values[1:], strict=False)):
                return 400, "document_parsing_exception", (f"failed to parse field [{path}] of type [histogram]: "
                                                           "[values] values must be in increasing order")
            if any(not isinstance(c, int) or c < 0 for c in counts):
                return 400, "document_parsing_exception", (f"failed to parse field [{path}] of type [histogram]: "
                                                           "[counts] elements must be >= 0")
        elif spec.get("type") in ("double", "long") and (isinstance(value, bool) or not isinstance(value, int | float)):
            return 400, "document_parsing_exception", f"failed to parse field [{path}] of type [{spec['type']}]"
    return None


def tsds_id(source: dict[str, Any], mappings: dict[str, Any]) -> str:
    """The document id a TSDS derives: the time series (its dimensions) and the timestamp."""
    leaves = _leaves(source)
    dimensions = {path: leaves[path] for path in _dimension_paths(mappings, source)}
    return json.dumps([dimensions, source["@timestamp"]], sort_keys=True)


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
                body = json.loads(request.body)
                problem = template_problem(body)
                if problem:
                    self._reply(400, {"error": {"root_cause": [{"type": "illegal_argument_exception",
                                                                "reason": problem}],
                                                "type": "illegal_argument_exception", "reason": problem},
                                      "status": 400})
                    return
                self.state.templates[segments[1]] = body
                self._reply(200, {"acknowledged": True})
            elif segments[1] in self.state.templates:
                self._reply(200, {"index_templates": [{"name": segments[1],
                                                       "index_template": self.state.templates[segments[1]]}]})
            else:
                self._reply(404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
        elif len(segments) == 2 and segments[0] == "_data_stream" and method == "PUT":
            self._create_data_stream(segments[1])
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

    def _create_data_stream(self, name: str) -> None:
        """PUT _data_stream/<name>: needs a matching template with `data_stream` (MetadataCreateDataStreamService)."""
        template = _template_for(self.state, name)
        if name in self.state.indices:
            self._reply(400, {"error": {"type": "resource_already_exists_exception",
                                        "reason": f"data_stream [{name}] already exists"}, "status": 400})
        elif template is None or "data_stream" not in template:
            reason = f"no matching index template found for data stream [{name}]"
            self._reply(400, {"error": {"type": "illegal_argument_exception", "reason": reason}, "status": 400})
        else:
            self._create_index(name)["data_stream"] = True
            self._reply(200, {"acknowledged": True})

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
        name, doc_id = meta["_index"], meta.get("_id")
        template = _template_for(self.state, name) or {}
        if "data_stream" in template:
            return self._data_stream_item(op, meta, source, template)
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


    def _data_stream_item(self, op: str, meta: dict[str, Any], source: dict[str, Any],
                          template: dict[str, Any]) -> dict[str, Any]:
        """A bulk item into a data stream, as a time series data stream answers it (see `tsds_problem`)."""
        name = meta["_index"]
        index = self.state.indices.get(name)
        if index is None:
            index = self._create_index(name)
            index["data_stream"] = True
        settings = template.get("template", {}).get("settings", {})
        problem = tsds_problem(op, meta, source, index["mappings"], settings)
        if problem:
            status, kind, reason = problem
            return {"_index": name, "status": status, "error": {"type": kind, "reason": reason}}
        doc_id = tsds_id(source, index["mappings"]) if settings.get("index.mode") == "time_series" else str(
            len(index["docs"]))
        result: dict[str, Any] = {"_index": name, "_id": doc_id}
        if doc_id in index["docs"]:
            return {**result, "status": 409, "error": {"type": "version_conflict_engine_exception",
                                                       "reason": f"[{doc_id}]: version conflict, document already "
                                                                 "exists (current version [1])"}}
        index["docs"][doc_id] = source
        return {**result, "status": 201, "result": "created"}


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
