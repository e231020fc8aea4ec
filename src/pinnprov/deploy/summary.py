"""What to do once the stack is up: the URLs to open and the commands to query, for the deployed hosts.

Everything on the services host listens on loopback except the collector (trainers on other nodes reach it),
so Kibana and MonetDB are reached through an SSH tunnel, through the Grid5000 access gateway when deploying
from outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stack:
    services: str
    trainers: tuple[str, ...] = ()
    user: str = "root"
    proxy_jump: str = ""
    collector_http_port: int = 4318
    collector_grpc_port: int = 4317
    kibana_port: int = 5601
    monetdb_port: int = 50000
    monetdb_database: str = "pinnprov"
    monetdb_user: str = "pinnprov"
    scheduler_port: int = 8786
    dashboard_port: int = 8787
    dask_tls_dir: str = "~/.config/pinnprov/dask-tls"
    runs_dir: str = "/var/lib/pinnprov/runs"
    secrets_file: Path | None = None
    generated: tuple[str, ...] = field(default_factory=tuple)


def _ssh(stack: Stack, host: str, extra: str = "") -> str:
    jump = f" -J {stack.proxy_jump}" if stack.proxy_jump else ""
    return f"ssh{jump}{extra} {stack.user}@{host}"


def summary_lines(stack: Stack) -> list[str]:
    """The closing message of `pinnprov deploy`."""
    where = f"PINNPROV_ELASTIC_PASSWORD of {stack.secrets_file}" if stack.secrets_file else "$PINNPROV_ELASTIC_PASSWORD"
    monetdb_secret = "$PINNPROV_MONETDB_PASSWORD"
    tunnel = _ssh(stack, stack.services,
                  f" -N -L {stack.kibana_port}:127.0.0.1:{stack.kibana_port}"
                  f" -L {stack.monetdb_port}:127.0.0.1:{stack.monetdb_port}"
                  f" -L {stack.dashboard_port}:127.0.0.1:{stack.dashboard_port}")
    lines = [
        f"Kibana     open a tunnel, then https://localhost:{stack.kibana_port} (self-signed certificate; user elastic, "
        f"password {where}):",
        f"             {tunnel}",
        f"Collector  http://{stack.services}:{stack.collector_http_port} (OTLP/HTTP), "
        f"{stack.services}:{stack.collector_grpc_port} (OTLP/gRPC); bearer token $PINNPROV_COLLECTOR_TOKEN",
        f"             {_ssh(stack, stack.services)} curl -s http://127.0.0.1:{stack.collector_http_port}/healthz",
        "MonetDB    on the services node (mclient reads /root/.monetdb):",
        f"             {_ssh(stack, stack.services)} mclient -d {stack.monetdb_database} "
        "-s \"'SELECT run_name, status, epochs FROM run'\"",
        "           or from here, through the tunnel above:",
        f"             pinnprov query epochs --run latest --store monetdb://{stack.monetdb_user}:{monetdb_secret}"
        f"@127.0.0.1:{stack.monetdb_port}/{stack.monetdb_database}",
    ]
    tls = stack.dask_tls_dir
    scheduler = f"tls://{stack.services}:{stack.scheduler_port}"
    lines += [
        f"Dask       {scheduler} (mutual TLS: certificates in {tls}); dashboard http://localhost:"
        f"{stack.dashboard_port} through the tunnel; a sweep, one run per free GPU:",
        f"             pinnprov sweep --scheduler {scheduler} --tls-ca-file {tls}/ca.pem --tls-cert {tls}/client.pem "
        f"--tls-key {tls}/client.key --store monetdb://{stack.monetdb_user}:{monetdb_secret}@127.0.0.1:"
        f"{stack.monetdb_port}/{stack.monetdb_database} --activation tanh,sine,sigmoid,relu --optimizer adam,rmsprop",
    ]
    if stack.trainers:
        lines.append(f"Trainers   {len(stack.trainers)} node(s), one Dask worker per GPU; worker logs, run logs:")
        lines.append(f"             {_ssh(stack, stack.trainers[0])} journalctl -u 'pinnprov-dask-worker-*' -n 20; "
                     f"ls {stack.runs_dir}/logs")
    if stack.generated and stack.secrets_file:
        lines.append(f"Secrets    generated {', '.join(stack.generated)} into {stack.secrets_file} (mode 600); "
                     "keep that file: the next deploy must use the same values")
    return lines
