"""Names and modules that moved out of modpact.contracts (to modpact.validation
and modpact.inference) keep working from their old paths: the same objects,
with a DeprecationWarning that names the new location. The errors keep their
old path modpact.interfaces.errors (no warning: it is an alias module)."""

import importlib
import sys
import warnings

import pytest

import modpact
import modpact.contracts
import modpact.errors
import modpact.inference
import modpact.interfaces
import modpact.interfaces.errors
import modpact.validation

MOVED_NAMES = {
    "modpact.validation": [
        "validate",
        "ValidationResult",
        "check_substitutable",
        "SubstitutionResult",
        "check_composition",
        "CompositionResult",
        "given",
    ],
    "modpact.inference": [
        "infer_contracts",
        "InferredContracts",
        "TensorEnvelope",
        "envelope",
        "in_boxes",
        "in_class_boxes",
        "Envelope",
        "InBoxes",
        "InClassBoxes",
    ],
}
MOVED_MODULES = {
    "validation": "modpact.validation.validation",
    "substitution": "modpact.validation.substitution",
    "composition": "modpact.validation.composition",
    "testing": "modpact.validation.testing",
    "inferred": "modpact.inference.inferred",
    "envelope": "modpact.inference.envelope",
}


@pytest.fixture
def fresh_old_module():
    """Forget an old module path (sys.modules and the package attribute Python sets
    on import) before and after, so its shim runs and warns again."""

    def forget(name):
        sys.modules.pop(f"modpact.contracts.{name}", None)
        modpact.contracts.__dict__.pop(name, None)

    for name in MOVED_MODULES:
        forget(name)
    yield
    for name in MOVED_MODULES:
        forget(name)


@pytest.mark.parametrize("package,name", [(p, n) for p, names in MOVED_NAMES.items() for n in names])
def test_old_name_is_the_same_object_and_warns(package, name):
    new = getattr(importlib.import_module(package), name)
    with pytest.warns(DeprecationWarning, match=f"modpact.contracts.{name} moved to {package}.{name}") as record:
        old = getattr(modpact.contracts, name)
    assert old is new
    assert record[0].filename == __file__  # the warning points at the code that used the old path
    ns: dict = {}
    with pytest.warns(DeprecationWarning, match=f"{package}.{name}"):
        exec(f"from modpact.contracts import {name} as got", ns)
    assert ns["got"] is new
    assert name not in modpact.contracts.__all__


@pytest.mark.parametrize("old,new", MOVED_MODULES.items())
def test_old_module_path_imports_the_new_module_and_warns(old, new, fresh_old_module):
    with pytest.warns(DeprecationWarning, match=f"modpact.contracts.{old} moved to {new}"):
        module = importlib.import_module(f"modpact.contracts.{old}")
    assert module is sys.modules[new] and sys.modules[f"modpact.contracts.{old}"] is module
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # warned once, at the import above
        for name in module.__all__:
            ns: dict = {}
            exec(f"from modpact.contracts.{old} import {name} as got", ns)
            assert ns["got"] is getattr(module, name)


def test_old_module_path_as_an_attribute(fresh_old_module):
    with pytest.warns(DeprecationWarning, match="modpact.contracts.inferred moved to modpact.inference.inferred"):
        assert modpact.contracts.inferred is sys.modules["modpact.inference.inferred"]


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'modpact.contracts' has no attribute 'nope'"):
        modpact.contracts.nope  # noqa: B018


def test_modpact_names_are_unchanged():
    for package, names in MOVED_NAMES.items():
        for name in names:
            if name in modpact.__all__:
                assert getattr(modpact, name) is getattr(importlib.import_module(package), name)


def test_errors_keep_their_old_path():
    old, new = modpact.interfaces.errors, modpact.errors
    assert old.__all__ == new.__all__
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name)
        assert getattr(modpact.interfaces, name) is getattr(new, name)
    assert modpact.interfaces.errors is sys.modules["modpact.interfaces.errors"]
