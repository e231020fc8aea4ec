"""The layers stay light where they promise to: the collector, the store, the Kibana tools, the bottom package, the
UI, `import pinnprov` and the CLI's help never load TensorFlow, and validating a TrainConfig (bad flags fail fast)
does not either.

Each check runs in a fresh interpreter, so nothing imported by other tests can hide an import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HEAVY = ("tensorflow", "keras")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules present in sys.modules after running `code` in a new interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys
        print("loaded:" + ",".join(sorted(name for name in {HEAVY!r} if name in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), out.stdout
    return [name for name in last.removeprefix("loaded:").split(",") if name]


@pytest.mark.parametrize("package", ["pinnprov.core", "pinnprov.store", "pinnprov.collector", "pinnprov.kibana",
                                     "pinnprov.deploy", "pinnprov.ui"])
def test_every_module_of_the_package_imports_without_tensorflow(package: str) -> None:
    loaded = _loaded_after(f"""
        import importlib, pkgutil
        import {package}
        for module in pkgutil.walk_packages({package}.__path__, "{package}."):
            importlib.import_module(module.name)
    """)
    assert loaded == []


def test_import_pinnprov_is_light() -> None:
    """`import pinnprov` names the public API lazily: no TensorFlow, no OpenTelemetry SDK, no database client."""
    script = "import sys, pinnprov; print(sorted(m for m in ('tensorflow', 'opentelemetry.sdk', 'sqlite3', "
    script += "'pymonetdb', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_loads_no_tensorflow() -> None:
    loaded = _loaded_after("""
        import contextlib, io
        from pinnprov.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
    """)
    assert loaded == []


def test_validating_a_train_config_loads_no_tensorflow() -> None:
    loaded = _loaded_after("""
        from pinnprov.pinn.config import TrainConfig
        TrainConfig(activation="sine", optimizer="rmsprop", regularizer="tv", residual_form="slowness")
        try:
            TrainConfig(activation="no-such-activation")
        except ValueError:
            pass
        else:
            raise SystemExit("a bad activation was accepted")
    """)
    assert loaded == []
