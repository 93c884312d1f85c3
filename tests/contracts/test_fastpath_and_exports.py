"""The compiled metadata fast path agrees with Interface's own check; exports are importable and documented."""

import pathlib
import subprocess
import sys

import pytest
import torch

import modpact.contracts as mc
from modpact.contracts._fastmeta import compile_side
from modpact.interfaces import Interface, LabelSpace, TensorSpec

L3 = LabelSpace("abc", ["a", "b", "c"])
SPECS = {
    "x": TensorSpec("batch 4", dtype="float32"),
    "m": TensorSpec("batch _", dtype="bool", device="cpu"),
    "s": TensorSpec("batch 3", dtype="floating", labels=L3),
}
IFACE = Interface("t", inputs=SPECS, outputs={"y": TensorSpec("batch 3")})

VALUES = [
    {"x": torch.ones(2, 4), "m": torch.ones(2, 7, dtype=torch.bool), "s": torch.ones(2, 3)},
    {"x": torch.ones(2, 4), "m": torch.ones(3, 7, dtype=torch.bool), "s": torch.ones(2, 3)},  # batch mismatch
    {"x": torch.ones(2, 5), "m": torch.ones(2, 7, dtype=torch.bool), "s": torch.ones(2, 3)},  # fixed dim
    {"x": torch.ones(2, 4).double(), "m": torch.ones(2, 7, dtype=torch.bool), "s": torch.ones(2, 3)},  # dtype
    {"x": torch.ones(2, 4), "m": torch.ones(2, 7), "s": torch.ones(2, 3)},  # dtype bool
    {"x": torch.ones(4), "m": torch.ones(2, 7, dtype=torch.bool), "s": torch.ones(2, 3)},  # rank
    {"x": torch.ones(2, 4), "m": torch.ones(2, 7, dtype=torch.bool)},  # missing
    {"x": torch.ones(2, 4), "m": torch.ones(2, 7, dtype=torch.bool), "s": torch.ones(2, 3).half()},
    {"x": torch.ones(2, 4), "m": torch.ones(2, 7, dtype=torch.bool), "s": "not a tensor"},
]


@pytest.mark.parametrize("values", VALUES, ids=range(len(VALUES)))
def test_fast_path_says_ok_only_when_the_interface_does(values):
    plan = compile_side(SPECS)
    assert plan is not None
    fast = plan.run(dict(values), {})
    problems, bindings = IFACE.input_problems(values, values_too=False)
    assert (fast is not None) == (not problems)
    if fast is not None:
        assert fast == bindings.values_dict()


def test_variadic_and_expression_specs_are_not_compiled():
    assert compile_side({"x": TensorSpec("*batch 4")}) is None
    assert compile_side({"x": TensorSpec("n n+1")}) is None


def test_every_export_is_importable_and_documented():
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "contracts.md").read_text()
    for name in mc.__all__:
        assert hasattr(mc, name), name
        assert f"`{name}" in doc, f"{name} is not mentioned in docs/contracts.md"


def test_importing_contracts_does_not_import_hypothesis():
    code = "import sys, modpact.contracts; sys.exit('hypothesis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
