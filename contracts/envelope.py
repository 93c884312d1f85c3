"""Deprecated path of :mod:`modpact.inference.envelope` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

from ._moved import warn_moved

warn_moved("modpact.contracts.envelope", "modpact.inference.envelope")
sys.modules[__name__] = sys.modules["modpact.inference.envelope"]
