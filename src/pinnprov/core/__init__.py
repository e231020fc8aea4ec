"""What every layer of pinnprov shares, and nothing else: the bottom of the package graph.

The telemetry vocabulary and the one declarative schema of fields (core/vocabulary.py, core/fields.py),
the steering command model and its validation, settings resolution, the plug-in registry type, the spool
format, the export outcome, and the Elasticsearch index and connection settings. It imports nothing of the
project, so the trainer (pinn/, instrumentation/) and the collector, Kibana tools and CLI can all stand on it
without standing on each other.
"""

__version__ = "0.1.0"
"""The one version number of pinnprov (pyproject reads it; the OpenTelemetry scope carries it)."""
