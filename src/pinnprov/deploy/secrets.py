"""The deployment's secrets: environment variables, or a 0600 file generated once and reused.

The playbooks read every secret from the environment (or ansible-vault). So that a first deploy needs no manual
step, `pinnprov deploy` fills the missing ones from a secrets file (KEY=VALUE lines, `source`-able by a shell),
creating the file with fresh random values when it does not exist, and appending values for keys it lacks.
It never changes a value already in the file: a new Kibana encryption key would make the alerting rules
unreadable, and new database passwords would no longer match the deployed ones.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

# Variable -> minimum length the roles accept (generated values are longer).
SECRETS: dict[str, int] = {
    "PINNPROV_MONETDB_ADMIN_PASSWORD": 12,
    "PINNPROV_MONETDB_PASSWORD": 12,
    "PINNPROV_ELASTIC_PASSWORD": 12,
    "PINNPROV_KIBANA_SYSTEM_PASSWORD": 12,
    "PINNPROV_ES_COLLECTOR_PASSWORD": 12,
    "PINNPROV_KIBANA_ENCRYPTION_KEY": 32,
    "PINNPROV_COLLECTOR_TOKEN": 16,
}
# Values go into SQL literals, URLs, shell and systemd environment files: keep to URL-safe characters.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.~+=-]+$")
_LINE = re.compile(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")


def default_secrets_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pinnprov" / "deploy-secrets.env"


def generate(name: str) -> str:
    """A random value for `name`: URL-safe base64, 48 characters for keys, 32 for passwords and tokens."""
    return secrets.token_urlsafe(36 if SECRETS[name] >= 32 else 24)


def check_value(name: str, value: str, origin: str) -> None:
    if len(value) < SECRETS.get(name, 1):
        raise ValueError(f"{origin}: {name} needs at least {SECRETS[name]} characters")
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"{origin}: {name} may hold only letters, digits and _ . ~ + = -")


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export KEY=VALUE`, values optionally quoted); comments and blanks skipped."""
    values: dict[str, str] = {}
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: readable by other users; run chmod 600 {path}")
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE")
        name, value = match.group(1), match.group(2).strip().strip("'\"")
        if name in SECRETS:
            check_value(name, value, f"{path}:{number}")
        values[name] = value
    return values


def _append(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if handle.tell() == 0:
            handle.write("# pinnprov deploy secrets (generated; keep this file, mode 600).\n"
                         "# In a shell: set -a; . THIS_FILE; set +a\n")
        for name, value in values.items():
            handle.write(f"{name}={value}\n")
    os.chmod(path, 0o600)


def resolve_secrets(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Every secret by precedence (environment, then the file, then generated into the file).

    Returns the values to put in the playbooks' environment and the names generated just now.
    """
    environ = os.environ if environ is None else environ
    path = path or default_secrets_file()
    values: dict[str, str] = {}
    for name in SECRETS:
        if environ.get(name):
            check_value(name, environ[name], "environment")
            values[name] = environ[name]
    missing = [name for name in SECRETS if name not in values]
    if not missing:
        return values, []
    stored = read_secrets_file(path) if path.exists() else {}
    generated = {name: generate(name) for name in missing if name not in stored}
    if generated:
        _append(path, generated)
    values.update({name: stored.get(name) or generated[name] for name in missing})
    return values, sorted(generated)
