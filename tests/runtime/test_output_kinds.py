"""Every output kind is checked, or refused with a clear violation; nothing
crashes inside the user's call: complex, sparse, nested tensors, dataclass
outputs and Python numbers."""

import dataclasses
import warnings

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.errors import InterfaceViolation
from modpact.runtime import Monitor

NAN = float("nan")


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    loss: float


class Emits(nn.Module):
    """A linear layer, then its output as the kind asked for, NaN when ``bad``."""

    def __init__(self, kind: str, bad: bool = True):
        super().__init__()
        self.kind, self.bad = kind, bad
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        h = self.lin(x) * (NAN if self.bad else 1.0)
        if self.kind == "complex":
            return torch.complex(h, h)
        if self.kind == "sparse":
            return h.to_sparse()
        if self.kind == "nested":
            return torch.nested.nested_tensor([h[0], h[1, :2]])
        if self.kind == "dataclass":
            return Output(h, float(h.sum()))
        if self.kind == "number":
            return h.detach(), float(h.sum())
        raise AssertionError(self.kind)


KINDS = ["complex", "sparse", "nested", "dataclass", "number"]


@pytest.fixture(autouse=True)
def _quiet_prototype_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(nested|Sparse CSR).*")
        yield


@pytest.mark.parametrize("leaf_checks", ["on_violation", "every_call"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_monitor_finds_non_finite_values_in_every_output_kind(kind, leaf_checks):
    model = nn.Sequential(Emits(kind))
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks=leaf_checks) as mon:
        model(torch.rand(2, 4))
    rep = mon.report()
    assert not rep.ok, f"{kind}: {rep.headline()}"
    assert not any(v.kind == "exception" for v in rep.violations), str(rep)  # the Monitor itself never broke


@pytest.mark.parametrize("kind", KINDS)
def test_clean_outputs_of_every_kind_pass(kind):
    model = nn.Sequential(Emits(kind, bad=False))
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        model(torch.rand(2, 4))
    assert mon.report().ok, str(mon.report())


@pytest.mark.parametrize(
    "kind, domain, field",
    [
        ("complex", {"range": (0, 1)}, "range"),
        ("complex", {"finite": True}, "finite"),
        ("sparse", {"range": (0, 1)}, "range"),
        ("sparse", {"finite": True}, "finite"),
        ("nested", {"finite": True}, "finite"),
    ],
)
def test_a_guard_s_value_domain_on_other_layouts_is_a_violation_not_a_crash(kind, domain, field):
    iface = mp.Interface("out", inputs={"x": mp.TensorSpec("n 4")}, outputs={"y": mp.TensorSpec("...", **domain)})
    model = mp.guard(Emits(kind), interface=iface)
    with pytest.raises(InterfaceViolation) as e:
        model(torch.rand(2, 4))
    assert f"outputs.y: {field} expected" in str(e.value)


def test_a_bound_on_complex_values_says_why_it_fails():
    iface = mp.Interface("out", inputs={"x": mp.TensorSpec("n 4")}, outputs={"y": mp.TensorSpec("n 4", range=(0, 1))})
    model = mp.guard(Emits("complex", bad=False), interface=iface)
    with pytest.raises(InterfaceViolation) as e:
        model(torch.rand(2, 4))
    assert "outputs.y: range expected real values (a bound does not order complex values), got c64[2,4]" in str(e.value)


def test_a_sparse_tensor_s_unstored_zeros_count_for_a_range():
    spec = mp.TensorSpec("n", range=(1, 2))
    t = torch.tensor([0.0, 1.5]).to_sparse()  # the 0 is not stored
    assert not bool(spec.value_ok(t))
    (problem,) = spec.value_problems(t, "y")
    assert problem.detail == "a sparse tensor's unstored elements are 0"


def test_a_nested_tensor_fits_only_a_shape_of_any_rank():
    nested = torch.nested.nested_tensor([torch.ones(3), torch.ones(2)])
    assert mp.TensorSpec("...").metadata_problems(nested, name="y") == []
    (problem,) = mp.TensorSpec("n 3").metadata_problems(nested, name="y")
    assert problem.field == "shape" and problem.detail == "a nested tensor has no fixed shape"
