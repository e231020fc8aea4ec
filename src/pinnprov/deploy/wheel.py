"""Build the pinnprov wheel the playbooks install on every node, once per source state.

pinnprov is not on a package index, so `pinnprov deploy` builds a wheel from the checkout and the roles copy it to
the nodes. The wheel is cached under a hash of the sources: an unchanged checkout reuses the very same file, so
the copy task reports no change and a second deploy is a no-op. The sources are copied to a scratch directory
first, because setuptools writes build/ and *.egg-info into the tree it builds (the checkout stays clean).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_ROOT_FILES = ("pyproject.toml", "README.md", "LICENSE")


def source_root() -> Path:
    """The checkout this pinnprov runs from (the folder holding pyproject.toml)."""
    root = Path(__file__).resolve().parents[3]  # <root>/src/pinnprov/deploy/wheel.py
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(
            f"{root}: no pyproject.toml: pinnprov is not running from a checkout; pass --wheel FILE or --package SPEC"
        )
    return root


def _package_dirs(root: Path) -> list[Path]:
    """Top-level package folders named by [tool.setuptools.packages.find] (`where` folders, `include` patterns)."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    find = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    patterns = find.get("include", ["*"])
    return sorted(
        path for where in find.get("where", ["."]) for path in (root / where).iterdir()
        if path.is_dir() and (path / "__init__.py").is_file() and any(fnmatch.fnmatch(path.name, p) for p in patterns)
    )


def _source_files(root: Path) -> list[Path]:
    files = [root / name for name in _ROOT_FILES if (root / name).is_file()]
    for package in _package_dirs(root):
        for directory, subdirs, names in os.walk(package):
            subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            files.extend(Path(directory) / name for name in sorted(names) if not name.endswith((".pyc", ".pyo")))
    return files


def source_digest(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file that goes into the wheel."""
    digest = hashlib.sha256()
    for file in _source_files(root):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinnprov" / "wheels"


def build_wheel(root: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The wheel of the current sources: from the cache, or built now (offline: no build isolation)."""
    root = root or source_root()
    cache = (cache_dir or default_cache_dir()) / source_digest(root)[:16]
    existing = sorted(cache.glob("pinnprov-*.whl"))
    if existing:
        return existing[-1]
    with tempfile.TemporaryDirectory(prefix="pinnprov-wheel-") as scratch:
        tree = Path(scratch) / "src"
        for file in _source_files(root):
            target = tree / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
        out = Path(scratch) / "dist"
        # --no-build-isolation: use this environment's setuptools instead of downloading one (offline nodes).
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                   "--disable-pip-version-check", "-w", str(out), str(tree)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["pip wheel failed"])[-1]
            raise ValueError(f"building the pinnprov wheel failed: {last}")
        wheels = sorted(out.glob("pinnprov-*.whl"))
        if not wheels:
            raise ValueError("building the pinnprov wheel produced no pinnprov-*.whl")
        cache.mkdir(parents=True, exist_ok=True)
        final = cache / wheels[-1].name
        shutil.copy2(wheels[-1], final)
    return final
