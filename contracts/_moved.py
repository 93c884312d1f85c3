"""Deprecated paths: names and modules that moved out of ``modpact.contracts``
(to ``modpact.validation`` and ``modpact.inference``) still resolve to the
same objects, with a ``DeprecationWarning`` that names the new location."""

from __future__ import annotations

import warnings

__all__ = ["warn_moved"]


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is a deprecated path of ``new`` (``stacklevel`` 3: the
    code that used the old path, seen from the alias that calls this)."""
    warnings.warn(
        f"{old} moved to {new}; import it from there (the old path is a deprecated alias)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
