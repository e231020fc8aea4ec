"""Deployment secrets (environment first, then a 0600 file generated once) and the cached pinnprov wheel."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from pinnprov.deploy.secrets import SECRETS, read_secrets_file, resolve_secrets
from pinnprov.deploy.wheel import build_wheel, source_digest, source_root


def test_first_deploy_generates_every_secret_into_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "secrets.env"
    values, generated = resolve_secrets(path, environ={})
    assert sorted(generated) == sorted(SECRETS) and set(values) == set(SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(len(values[name]) >= minimum for name, minimum in SECRETS.items())
    assert len(set(values.values())) == len(values)  # no two secrets alike
    # The next deploy reads the same values back and generates nothing.
    again, generated_again = resolve_secrets(path, environ={})
    assert again == values and generated_again == []


def test_environment_wins_and_missing_keys_are_appended_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# mine\nexport PINNPROV_ELASTIC_PASSWORD='kept-elastic-password'\n")
    path.chmod(0o600)
    token = "t" * 20
    values, generated = resolve_secrets(path, environ={"PINNPROV_COLLECTOR_TOKEN": token})
    assert values["PINNPROV_COLLECTOR_TOKEN"] == token
    assert values["PINNPROV_ELASTIC_PASSWORD"] == "kept-elastic-password"
    assert "PINNPROV_ELASTIC_PASSWORD" not in generated and "PINNPROV_COLLECTOR_TOKEN" not in generated
    stored = read_secrets_file(path)
    assert stored["PINNPROV_ELASTIC_PASSWORD"] == "kept-elastic-password"
    assert "PINNPROV_COLLECTOR_TOKEN" not in stored  # environment values are not written down
    assert path.read_text().startswith("# mine\n")


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("PINNPROV_ELASTIC_PASSWORD=long-enough-pass\n", 0o644, "readable by other users; run chmod 600"),
        ("PINNPROV_ELASTIC_PASSWORD=short\n", 0o600, ":1: PINNPROV_ELASTIC_PASSWORD needs at least 12 characters"),
        ("PINNPROV_ELASTIC_PASSWORD=has'quote-inside\n", 0o600, "may hold only letters, digits"),
        ("not a secret line\n", 0o600, ":1: expected KEY=VALUE"),
    ],
)
def test_bad_secrets_files_are_refused_with_the_reason(tmp_path: Path, content: str, mode: int, message: str) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(ValueError, match=message):
        resolve_secrets(path, environ={})


def test_short_secret_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="environment: PINNPROV_KIBANA_ENCRYPTION_KEY needs at least 32"):
        resolve_secrets(tmp_path / "s.env", environ={"PINNPROV_KIBANA_ENCRYPTION_KEY": "x" * 20})


@pytest.mark.slow
def test_wheel_is_built_once_per_source_state_and_holds_every_package(tmp_path: Path) -> None:
    root = source_root()
    first = build_wheel(root, tmp_path)
    mtime = first.stat().st_mtime_ns
    assert first.parent.name == source_digest(root)[:16]
    assert build_wheel(root, tmp_path) == first and first.stat().st_mtime_ns == mtime  # reused, not rebuilt
    with zipfile.ZipFile(first) as wheel:
        names = set(wheel.namelist())
    for module in ("cli/main.py", "deploy/inventory.py", "collector/config.py", "pinn/observer.py",
                   "core/vocabulary.py", "kibana/__init__.py", "store/schema.py"):
        assert f"pinnprov/{module}" in names
    assert any(name.startswith("pinnprov/kibana/saved_objects/") and name.endswith(".json") for name in names)
    assert not any("__pycache__" in name for name in names)
