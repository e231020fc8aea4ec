"""pinnprov: provenance and observability for training Physics-Informed Neural Networks."""

__version__ = "0.1.0"
