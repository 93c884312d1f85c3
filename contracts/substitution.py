"""Deprecated path of :mod:`modpact.validation.substitution` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

import modpact.validation.substitution  # noqa: F401 (the moved module must be imported for sys.modules below)

from ._moved import warn_moved

warn_moved("modpact.contracts.substitution", "modpact.validation.substitution")
sys.modules[__name__] = sys.modules["modpact.validation.substitution"]
