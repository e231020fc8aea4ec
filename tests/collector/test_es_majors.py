"""Both Elasticsearch client majors pass the ES suite: the installed one runs it directly, the other one here.

`pinnprov[es8]` and `pinnprov[es9]` install `elasticsearch` 8.x or 9.x (pyproject.toml). This test installs
the major the environment does not have with `pip install --target` into a cache directory (PyPI, once),
puts it first on PYTHONPATH and runs every ES test file under it in a subprocess, so CI proves both.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fake_elasticsearch import CLIENT_MAJOR

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ES_TESTS = [f"tests/collector/test_es_{name}.py" for name in ("fake", "client", "documents", "sink", "versions")]
OTHER = 8 if CLIENT_MAJOR == 9 else 9


def _extra_requirements(major: int) -> list[str]:
    """The requirements of pinnprov[es<major>], read from pyproject.toml: the test installs what users get."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][f"es{major}"])


def install_client(major: int) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    requirements = _extra_requirements(major)
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    target = Path(base) / "pinnprov" / f"es{major}-client-{key}"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (target / ".installed").exists():
            # --no-deps: only the client and its transport go first on sys.path; urllib3, certifi, dateutil
            # and typing-extensions stay the environment's (the elasticsearch extras need nothing newer).
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                                   str(target), *requirements], capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"pip install failed: {done.stderr[-2000:]}"
            (target / ".installed").write_text("ok\n")
    return target


def test_the_other_client_major_passes_the_elasticsearch_suite() -> None:
    assert OTHER in (8, 9) and CLIENT_MAJOR in (8, 9)
    target = install_client(OTHER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run([sys.executable, "-c", "import elasticsearch; print(elasticsearch.__versionstr__)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.startswith(f"{OTHER}."), probe.stdout + probe.stderr
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ES_TESTS], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
