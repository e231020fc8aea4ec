"""pinnprov: provenance and observability for training Physics-Informed Neural Networks."""

from pinnprov.core import __version__

__all__ = ["__version__"]
