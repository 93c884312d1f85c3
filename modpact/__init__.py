"""modpact: typed interfaces and blame-carrying contracts for modular PyTorch models.

    import modpact as mp
    iface = mp.Interface("head", inputs={"x": mp.TensorSpec("batch 64")},
                         outputs={"logits": mp.TensorSpec("batch 10", finite=True)})
    mp.guard(model.head, interface=iface)
    with mp.Monitor(model, mode="record") as mon:
        model(x)
    print(mon.report())

The subpackages are public too: ``modpact.errors``, ``modpact.interfaces``, ``modpact.contracts``,
``modpact.validation``, ``modpact.inference``, ``modpact.runtime``, ``modpact.decomposition``. Importing modpact does
not import Hypothesis; ``modpact.strategies``, ``validate`` and friends import it when called.
"""

from modpact import strategies  # Hypothesis-free until a strategy is built
from modpact._version import __version__
from modpact.contracts import (
    Condition,
    ContractWarning,
    Guard,
    agrees_with,
    batch_independent,
    clear_recorded,
    contract,
    disabled,
    dtype_preserved,
    ensures,
    equivariant_under,
    finite,
    get_mode,
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
)
from modpact.decomposition import (
    ClassModule,
    ComposedClassifier,
    Compute,
    ModularModel,
    RepairResult,
    Split,
    SubstitutionCheck,
    compose_classes,
    decompose_classes,
    repair,
    split,
)
from modpact.errors import (
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
from modpact.inference import InferredContracts, infer_contracts
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
from modpact.runtime import DiagnosisReport, Monitor, MonitorViolation
from modpact.validation import (
    CompositionResult,
    SubstitutionResult,
    ValidationResult,
    check_composition,
    check_substitutable,
    given,
    validate,
)

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
    "infer_contracts",
    "InferredContracts",
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
    # decomposition
    "split",
    "Split",
    "decompose_classes",
    "ClassModule",
    "compose_classes",
    "ComposedClassifier",
    "ModularModel",
    "repair",
    "RepairResult",
    "Compute",
    "SubstitutionCheck",
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
