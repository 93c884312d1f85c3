"""Deprecated path of :mod:`modpact.inference.inferred` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

import modpact.inference.inferred  # noqa: F401 (the moved module must be imported for sys.modules below)

from ._moved import warn_moved

warn_moved("modpact.contracts.inferred", "modpact.inference.inferred")
sys.modules[__name__] = sys.modules["modpact.inference.inferred"]
