"""What `pinnprov train` and `pinnprov baseline` share: the data a run reads and how its outputs are written.

Both read the benchmark or a user's picks (CSV + domain), write velocity grids as .npy, a result.json and the
comparison figure (the paper's Figure 2); one implementation serves both so the two folders look alike.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_picks_or_benchmark(data_path: Path | str | None, domain_text: object | None) -> Any:
    """The crosshole benchmark without --data, else the picks CSV on its domain (both or neither are given)."""
    if data_path is None:
        if domain_text is not None:
            raise ValueError("--domain needs --data (the benchmark has its own domain)")
        from pinnprov.pinn.benchmark import crosshole_benchmark

        return crosshole_benchmark()
    if domain_text is None:
        raise ValueError("--data needs --domain x_min,x_max,z_min,z_max")
    if isinstance(domain_text, list | tuple):  # a config file may give the domain as a list
        domain_text = ",".join(str(v) for v in domain_text)
    from pinnprov.pinn.picks_csv import load_picks, parse_domain

    return load_picks(Path(data_path), parse_domain(str(domain_text)))


def json_default(value: Any) -> Any:
    """NumPy scalars in result.json as plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def comparison_png(out: Path, panels: list[tuple[str, Any, float | None]], data: Any, extent: Any) -> Path:
    """Figure 2 for `panels`: on the benchmark with its sensors and colour range; on user data with the data's
    own sensors and a colour scale fitted to its velocities (a user's velocities may lie anywhere)."""
    import numpy as np

    from pinnprov.pinn.figures import VELOCITY_RANGE_M_S, benchmark_sensors, comparison_figure
    from pinnprov.pinn.scoring import is_benchmark

    if is_benchmark(data):
        return comparison_figure(out / "comparison.png", panels, extent, sensors=benchmark_sensors(),
                                 velocity_range=VELOCITY_RANGE_M_S)
    sensors = (np.unique(data.sources, axis=0), np.unique(data.receivers, axis=0))
    return comparison_figure(out / "comparison.png", panels, extent, sensors=sensors, velocity_range=None)


def atomic_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def atomic_npy(path: Path, array: Any) -> Path:
    import numpy as np

    return atomic_write(path, lambda stream: np.save(stream, array))


def atomic_write(path: Path, write: Callable[[Any], object]) -> Path:
    """Temp file + rename: an interrupted run never leaves a half-written file where a good one was.

    The temp file is opened normally (not mkstemp) so the result gets the user's umask permissions.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with temporary.open("wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
