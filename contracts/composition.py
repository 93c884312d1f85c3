"""Deprecated path of :mod:`modpact.validation.composition` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

import modpact.validation.composition  # noqa: F401 (the moved module must be imported for sys.modules below)

from ._moved import warn_moved

warn_moved("modpact.contracts.composition", "modpact.validation.composition")
sys.modules[__name__] = sys.modules["modpact.validation.composition"]
