"""pinnprov: provenance and observability for training Physics-Informed Neural Networks.

The names in `__all__` are the public API: they keep working across minor releases (semantic versioning, see
CHANGELOG.md). Everything else, every subpackage's modules included, is internal and may change in any release.

The names resolve lazily (PEP 562), so `import pinnprov` loads neither TensorFlow nor the OpenTelemetry SDK nor a
database client: a collector node, a notebook that only reads a store and the CLI's `--help` stay light.

    import pinnprov
    with pinnprov.open_store("sqlite:///prov.db") as store:
        run_id = pinnprov.resolve_run(store, "latest")       # or a run name, an id or its prefix
        table1 = pinnprov.run_query(store, "epochs", pinnprov.QueryOptions(run_id=run_id, every=1000))
        provn = pinnprov.export_run(store, run_id, "provn")
        found = pinnprov.lineage(store, "runs/x/velocity_pinn.npy")  # the run, data and steering behind a file
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pinnprov.core import __version__

if TYPE_CHECKING:
    from pinnprov.capture.run_api import Run, RunCommand
    from pinnprov.core.steering import SteeringCommand
    from pinnprov.integrations.keras import ProvenanceCallback
    from pinnprov.store.access import QueryResult, Store, open_store
    from pinnprov.store.lineage import lineage
    from pinnprov.store.prov_export import export_run
    from pinnprov.store.queries import QueryOptions, run_query
    from pinnprov.store.run_select import resolve_run
    from pinnprov.wiring import CaptureStats, open_capture, start_run

# public name -> the module that defines it (imported on first use)
_PUBLIC: dict[str, str] = {
    # capture: provenance of a training process into a store or a collector
    "open_capture": "pinnprov.wiring",
    "CaptureStats": "pinnprov.wiring",
    # your own training loop: `with start_run(...) as run: run.log_epoch(...)`, steered by run.commands()
    "start_run": "pinnprov.wiring",
    "Run": "pinnprov.capture.run_api",
    "RunCommand": "pinnprov.capture.run_api",
    # integrations (each imports its framework when used)
    "ProvenanceCallback": "pinnprov.integrations.keras",
    # reading a store: named queries (the paper's Tables 1-3 and more) and PROV export
    "open_store": "pinnprov.store.access",
    "Store": "pinnprov.store.access",
    "QueryResult": "pinnprov.store.access",
    "QueryOptions": "pinnprov.store.queries",
    "run_query": "pinnprov.store.queries",
    "resolve_run": "pinnprov.store.run_select",
    "export_run": "pinnprov.store.prov_export",
    # lineage from a file: which run, data, settings and steering produced it
    "lineage": "pinnprov.store.lineage",
    # steering commands (what `pinnprov steer`, the UI and alert rules send)
    "SteeringCommand": "pinnprov.core.steering",
}

__all__ = [
    "CaptureStats",
    "ProvenanceCallback",
    "QueryOptions",
    "QueryResult",
    "Run",
    "RunCommand",
    "SteeringCommand",
    "Store",
    "__version__",
    "export_run",
    "lineage",
    "open_capture",
    "open_store",
    "resolve_run",
    "run_query",
    "start_run",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pinnprov' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
