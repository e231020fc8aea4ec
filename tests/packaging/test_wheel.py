"""The built wheel installs one import package, `pinnprov`, with its data files: nothing else lands on a user's
sys.path (no `collector`, `ui` or `deploy` to collide with theirs)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the venv's setuptools builds it, no download needed.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (built,) = out.glob("pinnprov-*.whl")
    return built


def _record(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        return [row[0] for row in csv.reader(io.StringIO(archive.read(name).decode()))]


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    tops = {path.split("/", 1)[0] for path in _record(wheel) if ".dist-info/" not in path}
    assert tops == {"pinnprov"}
    with zipfile.ZipFile(wheel) as archive:
        name = next((n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")), None)
        if name is not None:  # setuptools writes it; newer backends may not
            assert archive.read(name).decode().split() == ["pinnprov"]


def test_the_wheel_carries_the_data_files(wheel: Path) -> None:
    paths = set(_record(wheel))
    assert any(p.startswith("pinnprov/core/es_index_templates/") and p.endswith(".json") for p in paths)
    assert any(p.startswith("pinnprov/kibana/saved_objects/") for p in paths)
    assert "pinnprov/ui/templates/layout.html" in paths
    assert any(p.startswith("pinnprov/ui/static/vendor/") for p in paths)
