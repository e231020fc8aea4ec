"""OpenTelemetry instrumentation of PINN training: provider setup, vocabulary, observer, Keras callback.

Importing this package is cheap and imports neither TensorFlow nor the OpenTelemetry SDK: the collector
imports `pinnprov.core.vocabulary` for the attribute names and must stay light.
"""
