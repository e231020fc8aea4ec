"""What identifies a file a run produced: its sha256, size and media type, and the roles pinnprov gives files.

In the bottom package because both ends need it: the trainer and the run API hash what they write, and
`pinnprov lineage FILE` (store layer) hashes the file in hand to find its PROV entity. The entity is keyed by
content, not path: a file copied, renamed or downloaded from a cluster still finds the run that made it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import socket
from pathlib import Path

ROLE_TAU_NETWORK = "network.tau"
"""The trained traveltime network tau(xs, xr), Keras format: a reusable traveltime surrogate."""
ROLE_VELOCITY_NETWORK = "network.velocity"
"""The trained velocity network v(x, z), Keras format (physical coordinates in m, output m/s)."""
ROLE_CHECKPOINT = "checkpoint"
"""Everything a run needs to continue: networks, optimiser, schedule, random state, stopping rule."""
ROLE_VELOCITY_GRID = "velocity_grid"
"""The PINN's velocity model on the scoring grid (.npy, m/s, rows = depth)."""
ROLE_GRID = "grid"
"""Coordinates of the scoring grid (grid_x.npy, grid_z.npy)."""
ROLE_TRUE_MODEL = "velocity_true"
"""The exact model of a synthetic data set on the scoring grid."""
ROLE_FIGURE = "figure"
"""Figure 2: the models side by side."""
ROLE_RESULT = "result"
"""result.json: status, metrics, data set and hyperparameters of the run."""
ROLE_BASELINE_GRID = "baseline.velocity_grid"
"""The PyGIMLi baseline's velocity model on the scoring grid."""
ROLE_USER = "user"
"""A file a user logged with `log_artifact` without a role of their own."""

_MEDIA_TYPES = {
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
    ".keras": "application/x-keras",
    ".h5": "application/x-hdf5",
    ".json": "application/json",
    ".png": "image/png",
    ".csv": "text/csv",
    ".ckpt": "application/x-pinnprov-checkpoint",
}

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (network files and checkpoints may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def media_type(path: Path | str) -> str:
    """The media type of a file by its suffix (pinnprov's own formats first, then the platform's table)."""
    name = str(path).lower()
    if name.endswith(".ckpt.npz"):
        return _MEDIA_TYPES[".ckpt"]
    suffix = Path(name).suffix
    if suffix in _MEDIA_TYPES:
        return _MEDIA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def file_uri(path: Path | str, host: str | None = None) -> str:
    """file://HOST/abs/path: the path alone is ambiguous once runs come from many nodes."""
    absolute = Path(path).resolve().as_posix()
    return f"file://{host if host is not None else socket.gethostname()}{absolute}"


def path_of_uri(uri: str) -> str:
    """The local path of a file:// URI written by `file_uri` (the host part dropped); other URIs as they are."""
    if not uri.startswith("file://"):
        return uri
    rest = uri[len("file://"):]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else rest
