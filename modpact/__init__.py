"""modpact: typed interfaces and blame-carrying contracts for modular PyTorch models."""

from modpact._version import __version__

__all__ = ["__version__"]
