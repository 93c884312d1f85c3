"""``modpact.interfaces.errors``: the errors under their old path.

The errors of every layer live in :mod:`modpact.errors` (a leaf module that
imports nothing from modpact); this module re-exports the same classes so
code that imports them from here keeps working.
"""

from modpact.errors import (
    CompatibilityError,
    ContractError,
    ContractViolation,
    ExtraMissing,
    FormatVersionError,
    InterfaceViolation,
    LoadError,
    ModpactError,
    MonitorError,
    PortError,
    PostconditionViolation,
    PreconditionViolation,
    Problem,
    SpecError,
    ValidationFailure,
)

__all__ = [
    "ModpactError",
    "SpecError",
    "CompatibilityError",
    "ContractViolation",
    "PreconditionViolation",
    "PostconditionViolation",
    "InterfaceViolation",
    "ContractError",
    "FormatVersionError",
    "Problem",
    "MonitorError",
    "LoadError",
    "ValidationFailure",
    "PortError",
    "ExtraMissing",
]
