"""modpact.interfaces: what flows between modules.

Dims and shapes, tensor specs and nested specs (tuples, dicts, optional and
opaque values), label spaces, interfaces, compatibility,
serialization and tensor summaries. The errors are those of
:mod:`modpact.errors`, re-exported here (``modpact.interfaces.errors`` is
their old path).
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

# `errors as errors`: an explicit re-export of the errors' old path, modpact.interfaces.errors
from . import errors as errors
from . import strategies, values
from .annotations import spec_from_annotation
from .bindings import Bindings
from .compat import check_compatible
from .dims import Dim, Shape, parse_shape
from .infer import infer_interface
from .interface import Interface
from .labels import LabelAdapter, LabelSpace
from .nested import DictSpec, ListSpec, OpaqueSpec, OptionalSpec, TupleSpec
from .serialize import FORMAT_VERSION
from .spec import TensorSpec
from .subtyping import Compatibility
from .summary import describe, summarize

__all__ = [
    "Dim",
    "Shape",
    "parse_shape",
    "Bindings",
    "TensorSpec",
    "TupleSpec",
    "ListSpec",
    "DictSpec",
    "OptionalSpec",
    "OpaqueSpec",
    "LabelSpace",
    "LabelAdapter",
    "Interface",
    "Compatibility",
    "check_compatible",
    "infer_interface",
    "spec_from_annotation",
    "FORMAT_VERSION",
    "describe",
    "summarize",
    "values",
    "strategies",
    "ModpactError",
    "SpecError",
    "FormatVersionError",
    "CompatibilityError",
    "ContractViolation",
    "PreconditionViolation",
    "PostconditionViolation",
    "InterfaceViolation",
    "ContractError",
    "MonitorError",
    "ValidationFailure",
    "LoadError",
    "Problem",
    "PortError",
    "ExtraMissing",
]
