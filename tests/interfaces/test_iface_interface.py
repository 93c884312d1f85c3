import pytest
import torch
from jaxtyping import Float, Float32, Int

from modpact.interfaces import (
    Interface,
    InterfaceViolation,
    LabelSpace,
    TensorSpec,
    infer_interface,
)

DIGITS = LabelSpace("digits", [str(i) for i in range(10)])
IFACE = Interface(
    "digit-classifier",
    inputs={"x": TensorSpec("batch 64", dtype="float32", range=(0, 16))},
    outputs={"logits": TensorSpec("batch 10", dtype="floating", finite=True, labels=DIGITS)},
)


def test_value_forms():
    x = torch.rand(4, 64)
    for form in (x, (x,), [x], {"x": x}):
        ps, b = IFACE.input_problems(form)
        assert ps == [] and b.value("batch") == 4
    two = Interface("two", {"a": TensorSpec("n"), "b": TensorSpec("n")}, {})
    ps, _ = two.input_problems({"a": torch.zeros(2), "c": torch.zeros(2)})
    assert sorted((p.tensor, p.field) for p in ps) == [("inputs.b", "missing"), ("inputs.c", "unexpected")]
    ps, _ = two.input_problems((torch.zeros(2),))
    assert {p.field for p in ps} == {"count", "missing"}
    ps, _ = two.input_problems(torch.zeros(2))
    assert [p.field for p in ps] == ["count"]


def test_output_violation_message_exact():
    b = IFACE.check_inputs(torch.rand(4, 64))
    with pytest.raises(InterfaceViolation) as e:
        IFACE.check_outputs(torch.zeros(8, 10), b, module="head")
    assert str(e.value) == (
        "head: outputs do not match interface 'digit-classifier' (1 problem)\n"
        "  condition: interface 'digit-classifier' v1.0\n"
        "  outputs.logits: shape expected batch 10, got (8, 10) "
        "(dim 'batch' is 8 at outputs.logits[0] but was bound to 4 by inputs.x[0])\n"
        "  outputs.logits was f32[8,10]\n"
        "  dims: batch=4 (bound by inputs.x[0])\n"
        "  blaming head (assuming the contract is correct)"
    )
    v = e.value
    assert v.side == "output" and v.blame == "head" and v.bindings == {"batch": (4, "inputs.x[0]")}


def test_input_blame_and_values_too():
    bad = torch.rand(4, 64) * 100
    with pytest.raises(InterfaceViolation) as e:
        IFACE.check_inputs(bad, module=torch.nn.Linear(1, 1))
    assert e.value.blame == "the caller of Linear" and e.value.side == "input"
    assert "inputs.x was f32[4,64] min=" in str(e.value)
    with pytest.raises(InterfaceViolation) as e:
        IFACE.check_inputs(bad)
    assert e.value.blame == "the input data"
    assert IFACE.check_inputs(bad, values_too=False).value("batch") == 4


def test_expression_bound_by_output():
    iface = Interface("pad", {"x": TensorSpec("n+1")}, {"y": TensorSpec("n")})
    ps, b = iface.input_problems(torch.zeros(5))
    assert ps == []
    ps, b = iface.output_problems(torch.zeros(3), b)
    assert len(ps) == 1 and "n+1" in ps[0].detail  # n was solved as 4 from x, y says 3


def test_from_annotations():
    def f(
        x: Float[torch.Tensor, "batch 64"],
        y: Int[torch.Tensor, "batch"],  # noqa: F821  (a jaxtyping shape string, not a forward reference)
        k: int,
    ) -> Float32[torch.Tensor, "batch 10"]: ...

    iface = Interface.from_annotations(f)
    assert iface.inputs == {"x": TensorSpec("batch 64", dtype="floating"), "y": TensorSpec("batch", dtype="signed")}
    assert iface.outputs == {"result": TensorSpec("batch 10", dtype="float32")}

    def g(x: Float[torch.Tensor, "*b c"]) -> tuple[Float[torch.Tensor, "*b"], Float[torch.Tensor, ""]]: ...

    iface = Interface.from_annotations(g, name="g")
    assert list(iface.outputs) == ["result0", "result1"] and str(iface.outputs["result1"].shape) == ""


class TwoHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, x, mask):
        h = self.lin(x)
        return h, h.sum(-1) * mask


def test_infer_interface_symbolic_batch():
    m = TwoHead()
    iface = infer_interface(m, (torch.randn(2, 6), torch.ones(2)), (torch.randn(5, 6), torch.ones(5)))
    assert iface.inputs == {"x": TensorSpec("batch 6", dtype="float32"), "mask": TensorSpec("batch", dtype="float32")}
    assert iface.outputs == {
        "result0": TensorSpec("batch 3", dtype="float32"),
        "result1": TensorSpec("batch", dtype="float32"),
    }
    assert m.lin.weight.device.type == "cpu"  # the original module is untouched
    one = infer_interface(m, (torch.randn(2, 6), torch.ones(2)), name="m")
    assert one.name == "m" and str(one.inputs["x"].shape) == "2 6"


def test_infer_interface_falls_back_to_real_run():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]  # fails on meta: output size depends on data

    iface = infer_interface(DataDependent(), torch.tensor([1.0, -1.0, 2.0]))
    assert str(iface.outputs["result"].shape) == "2"
