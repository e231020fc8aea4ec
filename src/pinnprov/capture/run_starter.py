"""How an integration below the composition root starts a run: `RUN_STARTERS.get("default")(...)`.

`pinnprov.start_run` lives in the composition root (pinnprov/wiring.py), which hands the collector's pipeline to
the embedded store; integrations sit below it and may not import it. The registry declares it lazily
("module:attribute", imported on first use, the project's plug-in rule), so a DeepXDE or Keras callback given only
capture settings opens its run through the same `start_run` a custom loop calls, and a test or an embedding
application can register a starter of its own. `CAPTURE_OPENERS` does the same for `open_capture` and
`command_source_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pinnprov.core.registry import Registry

if TYPE_CHECKING:
    from pinnprov.capture.run_api import Run

RunStarter = Callable[..., "Run"]
"""start_run's signature: (name, *, experiment, hyperparameters, dataset, steering, settings, ...) -> Run."""

RUN_STARTERS: Registry[RunStarter] = Registry("run starter")
RUN_STARTERS.lazy("default", "pinnprov.wiring:start_run")


CAPTURE_OPENERS: Registry[Callable[..., Any]] = Registry("capture opener")
"""`open_capture` (observers behind the run API's hand-off) and the matching `command_source_for`, for an
integration that emits observer events itself (the Keras callback given only capture settings)."""
CAPTURE_OPENERS.lazy("open_capture", "pinnprov.wiring:open_capture")
CAPTURE_OPENERS.lazy("command_source_for", "pinnprov.wiring:command_source_for")


def start_run(name: str | None = None, **keywords: Any) -> Run:
    """`pinnprov.start_run(name, **keywords)`, reached through the registry."""
    return RUN_STARTERS.get("default")(name, **keywords)
