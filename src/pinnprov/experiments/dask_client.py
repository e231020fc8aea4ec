"""Connect the sweep driver to a Dask scheduler: address checks, TLS, and what the cluster offers.

An exposed scheduler speaks TLS with certificates from the deployment's own CA (mutual: the scheduler checks
ours, we check its), so `tls://` needs a CA file, a client certificate and its key, from flags or from Dask's own
configuration (`DASK_DISTRIBUTED__COMM__TLS__CA_FILE`, `..._CLIENT__CERT`, `..._CLIENT__KEY`). Plain `tcp://` is
for a scheduler on loopback or reached through an SSH tunnel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(r"^(?P<scheme>tcp|tls)://(?P<host>\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str = ""
    cert: str = ""
    key: str = ""

    def given(self) -> bool:
        return bool(self.ca_file or self.cert or self.key)


def check_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of tcp://HOST:PORT or tls://HOST:PORT; ValueError naming the flag otherwise."""
    match = _ADDRESS.match(address.strip())
    if not match or not 0 < int(match.group("port")) < 65536:
        raise ValueError(f"--scheduler: expected tcp://HOST:PORT or tls://HOST:PORT, got {address!r}")
    return match.group("scheme"), match.group("host"), int(match.group("port"))


def security_for(address: str, tls: TlsFiles) -> Any:
    """The distributed.Security for `address` (None: Dask's configuration decides, as for any client)."""
    from distributed.security import Security

    scheme, _, _ = check_address(address)
    if scheme == "tcp":
        if tls.given():
            raise ValueError("--tls-*: only with a tls:// scheduler address")
        return None
    if not tls.given():
        return None  # the DASK_DISTRIBUTED__COMM__TLS__* configuration
    missing = [flag for flag, value in (("--tls-ca-file", tls.ca_file), ("--tls-cert", tls.cert),
                                         ("--tls-key", tls.key)) if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)}: a tls:// scheduler needs the CA file, a certificate and its key")
    for flag, value in (("--tls-ca-file", tls.ca_file), ("--tls-cert", tls.cert), ("--tls-key", tls.key)):
        if not Path(value).is_file():
            raise FileNotFoundError(f"{flag} {value}: no such file")
    return Security(  # type: ignore[no-untyped-call]
        tls_ca_file=tls.ca_file, tls_client_cert=tls.cert, tls_client_key=tls.key,
        require_encryption=True)


def connect(address: str, tls: TlsFiles = TlsFiles(), timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A distributed.Client; ConnectionError with one line when the scheduler does not answer."""
    from distributed import Client

    security = security_for(address, tls)
    kwargs: dict[str, Any] = {"timeout": timeout_s, "set_as_default": False}
    if security is not None:
        kwargs["security"] = security
    try:
        return Client(address, **kwargs)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as error:
        raise ConnectionError(f"--scheduler {address}: cannot connect ({error})") from None


def offered(client: Any, resource: str) -> tuple[int, int]:
    """(workers, units of `resource` they offer in total) right now: a sweep waits for workers otherwise."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    units = sum(float(info.get("resources", {}).get(resource, 0)) for info in workers.values())
    return len(workers), int(units)
