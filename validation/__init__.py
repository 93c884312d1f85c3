"""modpact.validation: property-based validation with Hypothesis.

    from modpact.validation import validate, check_substitutable, check_composition, given

    validate(head, iface)                        # one module in isolation, inputs from its interface
    check_substitutable(model, distilled, iface) # can one module replace another?
    check_composition(encoder, head)             # producer outputs meet the consumer's preconditions

    @given(iface)                                # a pytest test over an interface's inputs
    def test_head(x): ...

Built on modpact.interfaces (strategies from specs) and modpact.contracts
(the checks and blame of one call, ``contracts.target``). Importing it does
not import Hypothesis; calling one of these does. The pytest plugin's hooks
are in ``pytest_plugin.py`` (entry point ``modpact.pytest_plugin``). See
docs/validation.md.
"""

from .composition import CompositionResult, check_composition
from .substitution import Agreement, SubstitutionResult, check_substitutable
from .testing import given
from .validation import ValidationResult, validate

__all__ = [
    "validate",
    "ValidationResult",
    "check_substitutable",
    "SubstitutionResult",
    "Agreement",
    "check_composition",
    "CompositionResult",
    "given",
]
