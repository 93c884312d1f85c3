"""modpact.contracts: what a module requires and promises, with blame.

    from modpact.contracts import requires, ensures, contract, guard, finite

    @requires(lambda x: x.ndim == 2, "x is a batch of vectors")
    @ensures(finite("result"))
    def f(x): ...

    guard(model.head, interface=iface, ensures=[finite("logits")])

See docs/contracts.md.
"""

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
    ContractWarning,
    clear_recorded,
    disabled,
    get_mode,
    is_disabled,
    recorded,
    set_mode,
)
from ._old import Old, TensorSnapshot
from .checking import Checker, EagerChecker, current_checker, use_checker
from .condition import CALL, BINDER, Condition, Custom, Outcome, as_condition, registry, rerun
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
from .envelope import Envelope, InBoxes, InClassBoxes, envelope, in_boxes, in_class_boxes
from .guard import Guard, get_guard, guard, guard_submodules, guarded, unguard
from .inferred import InferredContracts, TensorEnvelope, infer_contracts
from .composition import CompositionResult, check_composition
from .substitution import SubstitutionResult, check_substitutable
from .testing import given
from .validation import ValidationResult, validate

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
    "envelope",
    "in_boxes",
    "in_class_boxes",
    "Envelope",
    "InBoxes",
    "InClassBoxes",
    # inferred from data
    "infer_contracts",
    "InferredContracts",
    "TensorEnvelope",
    # modes
    "modes",
    "MODES",
    "set_mode",
    "get_mode",
    "disabled",
    "is_disabled",
    "recorded",
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
    # property-based validation (needs modpact[hypothesis] when called)
    "validate",
    "ValidationResult",
    "check_substitutable",
    "SubstitutionResult",
    "check_composition",
    "CompositionResult",
    "given",
    # violations (defined in modpact.errors)
    "ContractViolation",
    "PreconditionViolation",
    "PostconditionViolation",
    "InterfaceViolation",
    "ContractError",
]
