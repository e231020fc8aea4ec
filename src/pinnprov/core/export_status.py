"""How a delivery attempt ended: the one outcome vocabulary of sinks, the pipeline and the trainer's exporters.

Why in the bottom package: the embedded exporter (instrumentation/) maps the pipeline's outcome to the SDK's
SUCCESS/FAILURE, and a spool must know "retry later" from "never valid"; it must not import the collector
to learn these three words.
"""

from __future__ import annotations

import enum


class ExportStatus(enum.Enum):
    SUCCESS = "success"
    RETRYABLE = "retryable"  # store unavailable or busy: keep the batch and try again later
    REJECTED = "rejected"  # the batch (or some records) can never be written: set aside, do not retry
