"""modpact.contracts: what a module requires and promises, with blame.

    from modpact.contracts import requires, ensures, contract, guard, finite

    @requires(lambda x: x.ndim == 2, "x is a batch of vectors")
    @ensures(finite("result"))
    def f(x): ...

    guard(model.head, interface=iface, ensures=[finite("logits")])

See docs/contracts.md. Property-based validation moved to
``modpact.validation`` and contracts inferred from data (with the envelope
conditions) to ``modpact.inference``; their old names here (``validate``,
``infer_contracts``, ``envelope``, ...) and old module paths
(``modpact.contracts.validation``, ``.inferred``, ...) are deprecated aliases.
"""

from types import ModuleType
from typing import Any

from modpact.errors import (
    ContractError,
    ContractViolation,
    InterfaceViolation,
    PostconditionViolation,
    PreconditionViolation,
)

from . import conditions
from ._modes import (
    MODES,
    ContractMode,
    ContractWarning,
    clear_recorded,
    disabled,
    get_mode,
    is_disabled,
    recorded,
    recorded_total,
    set_mode,
)
from ._moved import warn_moved
from ._old import Old, TensorSnapshot
from .checking import Checker, EagerChecker, current_checker, use_checker
from .condition import BINDER, CALL, Condition, ConditionLike, Custom, Outcome, as_condition, registry, rerun
from .conditions import (
    agrees_with,
    batch_independent,
    dtype_preserved,
    equivariant_under,
    finite,
    in_range,
    invariant_under,
    labels_within,
    lipschitz_at_most,
    monotone,
    mostly,
    nonnegative,
    norm_at_most,
    shape_preserved,
    simplex,
)
from .decorators import contract, ensures, get_contract, requires
from .guard import Guard, get_guard, guard, guard_submodules, guarded, unguard

modes = MODES

__all__ = [
    # decorators and guards
    "requires",
    "ensures",
    "contract",
    "get_contract",
    "guard",
    "unguard",
    "guard_submodules",
    "get_guard",
    "guarded",
    "Guard",
    # conditions
    "conditions",
    "Condition",
    "ConditionLike",
    "Custom",
    "Outcome",
    "as_condition",
    "registry",
    "rerun",
    "CALL",
    "BINDER",
    "finite",
    "in_range",
    "simplex",
    "nonnegative",
    "norm_at_most",
    "shape_preserved",
    "dtype_preserved",
    "labels_within",
    "mostly",
    "batch_independent",
    "invariant_under",
    "equivariant_under",
    "monotone",
    "lipschitz_at_most",
    "agrees_with",
    # modes
    "ContractMode",
    "modes",
    "MODES",
    "set_mode",
    "get_mode",
    "disabled",
    "is_disabled",
    "recorded",
    "recorded_total",
    "clear_recorded",
    "ContractWarning",
    # old
    "Old",
    "TensorSnapshot",
    # checker extension point
    "Checker",
    "EagerChecker",
    "current_checker",
    "use_checker",
    # violations (defined in modpact.errors)
    "ContractViolation",
    "PreconditionViolation",
    "PostconditionViolation",
    "InterfaceViolation",
    "ContractError",
]

#: names that moved to another package -> that package (deprecated aliases, see __getattr__); the
#: old submodules are names too (``modpact.contracts.validation``), and shim modules of the same
#: names serve ``import modpact.contracts.validation``
_MOVED = {
    **dict.fromkeys(
        [
            "validate",
            "ValidationResult",
            "check_substitutable",
            "SubstitutionResult",
            "check_composition",
            "CompositionResult",
            "given",
            "validation",
            "substitution",
            "composition",
            "testing",
        ],
        "modpact.validation",
    ),
    **dict.fromkeys(
        [
            "infer_contracts",
            "InferredContracts",
            "TensorEnvelope",
            "envelope",
            "in_boxes",
            "in_class_boxes",
            "Envelope",
            "InBoxes",
            "InClassBoxes",
            "inferred",
        ],
        "modpact.inference",
    ),
}


def __getattr__(name: str) -> Any:
    """Deprecated aliases of the names that moved out of modpact.contracts:
    imported from their new package on first access, with a DeprecationWarning."""
    new = _MOVED.get(name)
    package: ModuleType
    if new == "modpact.validation":
        from modpact import validation

        package = validation
    elif new == "modpact.inference":
        from modpact import inference

        package = inference
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warn_moved(f"{__name__}.{name}", f"{new}.{name}")
    return getattr(package, name)
