"""Blame in a 3-module chain, and the exact text of key messages."""

import pytest
import torch
from torch import nn

import modpact.contracts as mc
from modpact.contracts import ContractError, PostconditionViolation, PreconditionViolation
from modpact.errors import InterfaceViolation
from modpact.interfaces import Interface, TensorSpec


class Scale(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def chain(k0=1.0, k1=1.0):
    model = nn.Sequential(Scale(k0), Scale(k1), Scale(1.0))
    mc.guard_submodules(
        model,
        {
            "0": {"requires": [mc.finite("x")]},
            "1": {"requires": [mc.finite("x")], "ensures": [(mc.finite("result"), "outputs are finite")]},
            "2": {"requires": [(lambda x: x > 0, "x is positive")]},
        },
    )
    return model


def test_chain_precondition_blames_the_upstream_producer():
    with pytest.raises(PreconditionViolation) as e:
        chain(k0=float("nan"))(torch.ones(2, 3))
    assert e.value.module == "1" and e.value.blame == "0"


def test_chain_precondition_at_the_model_boundary_blames_the_input_data():
    x = torch.ones(2, 3)
    x[1, 2] = float("inf")
    with pytest.raises(PreconditionViolation) as e:
        chain()(x)
    assert e.value.module == "0" and e.value.blame == "the input data"


def test_chain_postcondition_blames_the_module_whose_preconditions_held():
    with pytest.raises(PostconditionViolation) as e:
        chain(k1=float("nan"))(torch.ones(2, 3))
    assert e.value.module == "1" and e.value.blame == "1"
    assert e.value.blame_reason == "its preconditions held"


def test_chain_non_boolean_condition_blames_the_contract():
    with pytest.raises(ContractError) as e:
        chain()(torch.ones(2, 3))
    assert e.value.module == "2" and e.value.blame == "the contract"


def test_message_postcondition_exact():
    model = chain(k1=float("nan"))
    with pytest.raises(PostconditionViolation) as e:
        model(torch.ones(2, 3))
    site = mc.get_guard(model[1]).ensures[0].declared_at
    assert site.endswith("test_blame.py:28")
    assert (
        str(e.value)
        == f"""\
1: postcondition failed: outputs are finite
  condition: finite(result)
  result was f32[2,3] nan=6
  failing: 6
  of: 6
  first_index: (0, 0)
  first_value: nan
  blaming 1 (its preconditions held)
  declared at {site}"""
    )


def test_message_precondition_exact():
    model = chain(k0=-1.0)
    model[0].k = float("nan")
    x = torch.ones(2, 3)
    with pytest.raises(PreconditionViolation) as e:
        model(x)
    site = mc.get_guard(model[1]).requires[0].declared_at
    assert (
        str(e.value)
        == f"""\
1: precondition failed
  condition: finite(x)
  x was f32[2,3] nan=6
  failing: 6
  of: 6
  first_index: (0, 0)
  first_value: nan
  blaming 0 (assuming the contract is correct)
  declared at {site}"""
    )


def test_message_contract_error_exact():
    model = chain()
    with pytest.raises(ContractError) as e:
        model(torch.ones(2, 3))
    site = mc.get_guard(model[2]).requires[0].declared_at
    assert site.endswith("test_blame.py:29")
    assert (
        str(e.value)
        == f"""\
2: precondition could not be evaluated: x is positive
  condition: lambda x: x > 0
  expected a boolean, got bool[2,3], a tensor with 6 elements, not one boolean \
(reduce it with .all() or .any(), or wrap the condition in mostly(...))
  x was f32[2,3] min=1 max=1
  blaming the contract (not the module or its caller)
  declared at {site}"""
    )


def test_message_interface_input_exact():
    iface = Interface(
        "vec3",
        inputs={"x": TensorSpec("batch 3", dtype="float32")},
        outputs={"y": TensorSpec("batch 3", dtype="float32")},
    )
    m = mc.guard(Scale(1.0), interface=iface, name="encoder.proj")
    with pytest.raises(InterfaceViolation) as e:
        m(torch.ones(2, 4))
    g = mc.get_guard(m)
    assert (
        str(e.value)
        == f"""\
encoder.proj: input does not match interface 'vec3'
  inputs.x: shape expected batch 3, got (2, 4) (dim 1 is 4, expected 3)
  inputs.x was f32[2,4]
  dims: batch=2 (bound by inputs.x[0])
  blaming the caller of encoder.proj (assuming the contract is correct)
  declared at {g.declared_at}"""
    )


def test_violation_fields_are_structured():
    with pytest.raises(PostconditionViolation) as e:
        chain(k1=float("nan"))(torch.ones(2, 3))
    d = e.value.to_dict()
    assert d["kind"] == "postcondition" and d["module"] == "1" and d["blame"] == "1"
    assert d["contract"] == "finite(result)" and d["evidence"]["first_index"] == [0, 0]
    assert d["declared_at"].endswith("test_blame.py:28")
