"""Where a trainer's telemetry goes and how it authenticates: resolved once, the same way for every client.

Capture (the OTLP exporters), the steering poller (which talks to the same collector over HTTP) and
`pinnprov flush` (which delivers spooled spans) must agree, or a trainer would send spans with one token and
poll steering with another. Precedence per setting: explicit argument, then the standard OTEL_* variables (the
traces-specific one before the generic one), then pinnprov's own (PINNPROV_COLLECTOR_TOKEN), then the default:
- endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT; none at all means the embedded store;
- protocol: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, else inferred from the URL
  (pinnprov/capture/otlp.py);
- headers: OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS (`k=v,k2=v2`, values percent-decoded as
  the OpenTelemetry specification's W3C-baggage format says), else `authorization: Bearer $PINNPROV_COLLECTOR_TOKEN`;
- TLS: a private CA from OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_CERTIFICATE (system CAs otherwise).
A bad value raises ValueError naming the argument or variable, before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pinnprov.capture.otlp import parse_headers, resolve_protocol, traces_endpoint, with_scheme

TOKEN_ENV = "PINNPROV_COLLECTOR_TOKEN"
HEADER_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
CERTIFICATE_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")


@dataclass(frozen=True)
class Destination:
    """A resolved OTLP destination: endpoint as given, protocol, headers to send, CA file for https."""

    endpoint: str
    protocol: str  # grpc | http/protobuf
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry a secret: never in a repr
    ca_file: str | None = None

    @property
    def name(self) -> str:
        """`otlp+grpc://host:port`: the destination as logs and capture statistics name it (no secrets)."""
        return f"otlp+{self.protocol}://{self.endpoint.split('://')[-1]}"

    @property
    def uses_tls(self) -> bool:
        return with_scheme(self.endpoint).startswith("https://")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _first_env(names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = _env(name)
        if value:
            return name, value
    return None


def resolve_headers(explicit: str | Mapping[str, str] | None = None) -> dict[str, str]:
    """Explicit headers, else the OTLP headers variables, else the collector token as a bearer header, else none."""
    if explicit is not None:
        return parse_headers(explicit) or {}
    found = _first_env(HEADER_ENVS)
    if found is not None:
        name, value = found
        try:
            return parse_headers(value) or {}
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    token = _env(TOKEN_ENV)
    return {"authorization": f"Bearer {token}"} if token else {}


def resolve_ca_file(explicit: str | None = None) -> str | None:
    """The CA bundle that verifies the collector's certificate: explicit, else the OTLP certificate variables."""
    source, value = ("ca_file", explicit) if explicit else (_first_env(CERTIFICATE_ENVS) or (None, None))
    if value is None:
        return None
    if not Path(value).expanduser().is_file():
        raise ValueError(f"{source}: {value!r} is not a file")
    return str(Path(value).expanduser())


def resolve_destination(
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    ca_file: str | None = None,
) -> Destination | None:
    """The OTLP destination by the rules above, or None when no endpoint is configured anywhere."""
    chosen = traces_endpoint(endpoint)
    if not chosen:
        return None
    with_scheme(chosen)  # validates the URL once, with the message naming otlp_endpoint
    return Destination(chosen, resolve_protocol(chosen, protocol), resolve_headers(headers), resolve_ca_file(ca_file))
