"""modpact: typed interfaces and blame-carrying contracts for modular PyTorch models.

    import modpact as mp
    iface = mp.Interface("head", inputs={"x": mp.TensorSpec("batch 64")},
                         outputs={"logits": mp.TensorSpec("batch 10", finite=True)})
    mp.guard(model.head, interface=iface)
    with mp.Monitor(model, mode="record") as mon:
        model(x)
    print(mon.report())

The subpackages are public too: ``modpact.interfaces``, ``modpact.contracts``,
``modpact.runtime``. Importing modpact does not import Hypothesis; ``modpact.strategies``,
``validate`` and friends import it when called.
"""

from modpact._version import __version__
from modpact.contracts import (
    CompositionResult,
    Condition,
    ContractWarning,
    Guard,
    agrees_with,
    SubstitutionResult,
    ValidationResult,
    batch_independent,
    check_composition,
    check_substitutable,
    clear_recorded,
    contract,
    disabled,
    dtype_preserved,
    ensures,
    equivariant_under,
    finite,
    get_mode,
    given,
    guard,
    guard_submodules,
    in_range,
    invariant_under,
    labels_within,
    lipschitz_at_most,
    monotone,
    mostly,
    nonnegative,
    norm_at_most,
    recorded,
    requires,
    set_mode,
    shape_preserved,
    simplex,
    unguard,
    validate,
)
from modpact.interfaces import (
    Bindings,
    Compatibility,
    Dim,
    Interface,
    LabelSpace,
    Shape,
    TensorSpec,
    check_compatible,
    describe,
    infer_interface,
    summarize,
)
from modpact.interfaces.errors import (
    CompatibilityError,
    ContractError,
    ContractViolation,
    FormatVersionError,
    InterfaceViolation,
    ModpactError,
    MonitorError,
    PostconditionViolation,
    PreconditionViolation,
    SpecError,
    ValidationFailure,
)
from modpact.runtime import DiagnosisReport, Monitor, MonitorViolation

from modpact import strategies  # Hypothesis-free until a strategy is built

__all__ = [
    "__version__",
    # interfaces
    "Dim",
    "Shape",
    "Bindings",
    "TensorSpec",
    "LabelSpace",
    "Interface",
    "Compatibility",
    "check_compatible",
    "infer_interface",
    "describe",
    "summarize",
    # contracts
    "requires",
    "ensures",
    "contract",
    "guard",
    "unguard",
    "guard_submodules",
    "Guard",
    "Condition",
    "finite",
    "in_range",
    "simplex",
    "nonnegative",
    "norm_at_most",
    "shape_preserved",
    "dtype_preserved",
    "batch_independent",
    "invariant_under",
    "equivariant_under",
    "monotone",
    "lipschitz_at_most",
    "agrees_with",
    "labels_within",
    "mostly",
    "set_mode",
    "get_mode",
    "disabled",
    "recorded",
    "clear_recorded",
    "ContractWarning",
    # property-based validation (needs modpact[hypothesis] when called)
    "validate",
    "ValidationResult",
    "check_substitutable",
    "SubstitutionResult",
    "check_composition",
    "CompositionResult",
    "given",
    "strategies",
    # runtime
    "Monitor",
    "MonitorViolation",
    "DiagnosisReport",
    # errors
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
]
