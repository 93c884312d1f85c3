"""Deprecated path of :mod:`modpact.validation.validation` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

import modpact.validation.validation  # noqa: F401 (the moved module must be imported for sys.modules below)

from ._moved import warn_moved

warn_moved("modpact.contracts.validation", "modpact.validation.validation")
sys.modules[__name__] = sys.modules["modpact.validation.validation"]
