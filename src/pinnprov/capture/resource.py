"""The OpenTelemetry Resource of a training process: who is training, where, with which TensorFlow and devices.

Precedence is the house rule: an explicit service name, then the standard environment (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`), then what we detect. TensorFlow is imported only inside `tensorflow_attributes`,
never at module level: the collector imports `instrumentation` and must not pay for (or need) TensorFlow.
"""

from __future__ import annotations

import getpass
import logging
import os
import platform
import socket
import sys
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

from pinnprov.core import vocabulary as v

DEFAULT_SERVICE_NAME = "pinnprov-trainer"

_log = logging.getLogger(__name__)


def tensorflow_attributes(*, import_tensorflow: bool = True) -> dict[str, str | list[str]]:
    """TensorFlow version and the physical devices it sees, e.g. ["CPU:0", "GPU:0 NVIDIA A100-SXM4-40GB"].

    `list_physical_devices` does not initialise the TensorFlow runtime, so the trainer can still set its thread
    counts afterwards. With `import_tensorflow=False` nothing is imported: attributes appear only if the
    process already loaded TensorFlow. Any failure (no TensorFlow, driver trouble) yields fewer attributes,
    never an exception: a resource attribute is not worth a failed run.
    """
    if not import_tensorflow and "tensorflow" not in sys.modules:
        return {}
    try:
        import tensorflow as tf
    except Exception:  # noqa: BLE001 - ImportError, or a broken install raising something else
        return {}
    attributes: dict[str, str | list[str]] = {v.RESOURCE_TENSORFLOW_VERSION: str(tf.__version__)}
    try:
        devices: list[str] = []
        for device in tf.config.list_physical_devices():
            name = device.name.removeprefix("/physical_device:")
            if device.device_type == "GPU":
                details = tf.config.experimental.get_device_details(device)
                model = str(details.get("device_name", "")).strip()
                name = f"{name} {model}" if model else name
            devices.append(name)
        attributes[v.RESOURCE_DEVICES] = devices
    except Exception as error:  # noqa: BLE001 - see docstring
        _log.debug("could not list TensorFlow devices: %s", error)
    return attributes


def source_revision() -> str:
    """`git describe --always --dirty` of the checkout pinnprov runs from, '' when installed from a wheel.

    Recorded at run start (resource `pinn.source.revision`): a result must name the code that made it, and
    `pinnprov.__version__` alone does not change between commits of a working copy.
    """
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    if not any((parent / ".git").exists() for parent in here.parents):
        return ""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=here,  # noqa: S607
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else ""


def build_resource(
    service_name: str | None = None,
    *,
    extra: Mapping[str, str | int | float | bool | list[str]] | None = None,
    import_tensorflow: bool = True,
) -> Resource:
    """The Resource for one capture: host, process, runtime, service name, TensorFlow version and devices.

    `extra` attributes are defaults too (the environment overrides them), so an operator's
    `OTEL_RESOURCE_ATTRIBUTES` always has the last word except over an explicit `service_name`.
    """
    from_env = OTELResourceDetector().detect().attributes
    if service_name is not None and not service_name.strip():
        raise ValueError("service_name: must not be empty")
    chosen_service = service_name or str(from_env.get(SERVICE_NAME) or DEFAULT_SERVICE_NAME)
    detected: dict[str, str | int | float | bool | list[str]] = {
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "process.owner": _owner(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.runtime.description": sys.version.replace("\n", " "),
    }
    detected.update(tensorflow_attributes(import_tensorflow=import_tensorflow))
    from pinnprov.core import __version__

    detected[v.RESOURCE_PINNPROV_VERSION] = __version__
    revision = source_revision()
    if revision:
        detected[v.RESOURCE_SOURCE_REVISION] = revision
    detected.update(extra or {})
    # Resource.create merges the environment *under* the attributes it is given, so we pass only the keys the
    # environment did not set (plus the service name, whose precedence we resolved above).
    attributes = {key: value for key, value in detected.items() if key not in from_env}
    attributes[SERVICE_NAME] = chosen_service
    return Resource.create(attributes)
