"""Deprecated path of :mod:`modpact.validation.testing` (moved there): importing it
gives that module, with a DeprecationWarning."""

import sys

import modpact.validation.testing  # noqa: F401 (the moved module must be imported for sys.modules below)

from ._moved import warn_moved

warn_moved("modpact.contracts.testing", "modpact.validation.testing")
sys.modules[__name__] = sys.modules["modpact.validation.testing"]
