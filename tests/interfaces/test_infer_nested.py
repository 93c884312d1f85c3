"""infer_interface on nested, optional, opaque and keyword boundaries: nothing dropped silently."""

import dataclasses

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.errors import SpecError
from modpact.interfaces import DictSpec, OpaqueSpec, OptionalSpec, TensorSpec, TupleSpec, infer_interface


class Tokens(nn.Module):
    """Keyword-first like a Hugging Face model: ids through a view into an embedding, an optional mask."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(30, 4)
        self.pos = nn.Embedding(50, 4)

    def forward(self, input_ids=None, attention_mask=None, type_ids=None):
        b, s = input_ids.shape
        h = self.wte(input_ids.view(-1, s)) + self.pos(torch.arange(s, device=input_ids.device))
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        return h


def test_keyword_examples_optional_arguments_and_linked_dims():
    m = Tokens()
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[0, -1] = 0
    iface = infer_interface(
        m,
        {"input_ids": torch.randint(0, 30, (2, 5)), "attention_mask": mask},
        {"input_ids": torch.randint(0, 30, (3, 7))},
    )
    assert iface.inputs == {
        "input_ids": TensorSpec("batch d1", dtype="int64", range=(0, 29)),  # read through a view by wte
        # its one example is padded at the end (ones then zeros): right padding is inferred, and said
        "attention_mask": OptionalSpec(TensorSpec("batch d1", dtype="int64", range=(0, 1), padding="right")),
    }
    assert "inputs.input_ids: range [0, 29] from the embedding(s) that read it: wte" in iface.description
    assert "inputs.attention_mask: a 0/1 mask (1 attends, 0 is padding): range [0, 1]" in iface.description
    assert (
        "inputs.attention_mask: right padding: every observed row (2; 1 with padding) is ones then zeros "
        "with at least one 1" in iface.description
    )
    assert iface.outputs == {"result": TensorSpec("batch d1 4", dtype="float32")}
    mp.guard(m, iface)
    try:
        m(input_ids=torch.randint(0, 30, (4, 6)))  # no mask: None meets the optional
        m(input_ids=torch.randint(0, 30, (4, 6)), attention_mask=torch.ones(4, 6, dtype=torch.long))
    finally:
        mp.unguard(m)


def test_integers_without_a_reader_are_named_in_the_description():
    m = Tokens()
    ex = {"input_ids": torch.randint(0, 30, (2, 5)), "attention_mask": torch.full((2, 5), 2), "type_ids": torch.ones(2)}
    iface = infer_interface(m, ex)
    assert iface.inputs["attention_mask"].range is None  # values other than 0/1: not a mask
    assert "inputs.attention_mask: integer values with no known range (no embedding read it)" in iface.description
    assert "inputs.type_ids" not in iface.description  # a float input: no range is claimed without finite=True


class State(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)

    def forward(self, x, h=None):
        out, h = self.rnn(x, h)
        return {"out": out, "state": (h, None), "steps": x.shape[1], "obj": object()}


def test_nested_optional_and_opaque_outputs_are_all_described():
    iface = infer_interface(State(), (torch.randn(2, 4, 3),), (torch.randn(3, 6, 3), torch.zeros(1, 3, 5)))
    assert iface.inputs["h"] == OptionalSpec(TensorSpec("1 batch 5", dtype="float32"))
    outs = iface.outputs
    assert outs["out"] == TensorSpec("batch d1 5", dtype="float32")
    assert outs["state"] == TupleSpec([TensorSpec("1 batch 5", dtype="float32"), OptionalSpec(None)])
    assert isinstance(outs["steps"], OpaqueSpec) and outs["steps"].type == "builtins.int"
    assert outs["obj"].type == "builtins.object"
    assert "outputs.steps is described by its type builtins.int only" in iface.description
    assert "outputs.obj is described by its type builtins.object only" in iface.description


@dataclasses.dataclass
class Pair:
    a: torch.Tensor
    b: torch.Tensor | None


class ReturnsPair(nn.Module):
    def forward(self, x):
        return Pair(x * 2, None)


def test_dataclass_output_keeps_its_type_name():
    iface = infer_interface(ReturnsPair(), torch.randn(2, 3))
    spec = iface.outputs["result"]
    assert spec == DictSpec({"a": TensorSpec("2 3", dtype="float32"), "b": OptionalSpec(None)}, type=f"{__name__}.Pair")
    assert spec.check(ReturnsPair()(torch.randn(2, 3))) == []


class Varying(nn.Module):
    def forward(self, x):
        return tuple(x for _ in range(x.shape[0]))


class Typed(nn.Module):
    def forward(self, x):
        return x, ([x] if x.shape[0] == 1 else (x,))


class Keys(nn.Module):
    def forward(self, x):
        return {"a": x} if x.shape[0] == 1 else {"b": x}


@pytest.mark.parametrize(
    "module, examples, message",
    [
        (
            Varying(),
            (torch.ones(1, 2), torch.ones(2, 2)),
            "infer_interface: outputs differ between examples: ['result0'] vs ['result0', 'result1']",
        ),
        (
            Typed(),
            (torch.ones(1, 2), torch.ones(2, 2)),
            "outputs.result1 has different types across examples: builtins.list, builtins.tuple",
        ),
        (Keys(), (torch.ones(1, 2), torch.ones(2, 2)), "infer_interface: outputs differ between examples"),
        (
            nn.Linear(2, 2),
            (torch.ones(2), torch.ones(1, 2)),
            "inputs.input has different ranks across examples: [1, 2]",
        ),
        (nn.Linear(2, 2), (torch.ones(2, 3),), "infer_interface: Linear raised RuntimeError on example 0"),
        (
            Tokens(),
            ({"input_ids": torch.ones(1, 2, dtype=torch.long)}, (torch.ones(1, 2, dtype=torch.long),)),
            "same way",
        ),
    ],
    ids=["lengths", "types", "keys", "ranks", "raises", "mixed"],
)
def test_structures_that_differ_are_errors_naming_the_place(module, examples, message):
    with pytest.raises(SpecError) as info:
        infer_interface(module, *examples)
    assert message in str(info.value)


def test_missing_argument_without_a_default_is_an_error():
    class Two(nn.Module):
        def forward(self, a, b):
            return a

    with pytest.raises(SpecError) as info:
        infer_interface(Two(), {"a": torch.ones(1), "b": torch.ones(1)}, {"a": torch.ones(1)})
    assert str(info.value).startswith("infer_interface: Two raised TypeError on example 1")
    with pytest.raises(SpecError) as info:
        infer_interface(State(), {"x": torch.ones(1, 2, 3)}, {"h": torch.zeros(1, 1, 5)})
    assert str(info.value).startswith("infer_interface: State raised TypeError on example 1")


def test_finite_needs_finite_examples_and_records_their_range():
    lin = nn.Linear(3, 2)
    iface = infer_interface(lin, torch.tensor([[0.0, -1.0, 2.0]]), torch.tensor([[0.5, 3.0, 1.0]]), finite=True)
    assert iface.inputs["input"] == TensorSpec("1 3", dtype="float32", finite=True, range=(-1.0, 3.0))
    assert iface.outputs["result"].finite
    with pytest.raises(SpecError) as info:
        infer_interface(lin, torch.tensor([[0.0, float("nan"), 1.0]]), finite=True)
    assert (
        str(info.value) == "infer_interface(finite=True): inputs.input is not finite in example 0 (1 non-finite values)"
    )
    with torch.no_grad():
        lin.weight[0, 0] = float("inf")
    with pytest.raises(SpecError) as info:
        infer_interface(lin, torch.ones(1, 3), finite=True)
    assert (
        str(info.value)
        == "infer_interface(finite=True): outputs.result is not finite in example 0 (1 non-finite values)"
    )
    with pytest.raises(SpecError, match=r"infer_interface\(finite=1\): expected True or False"):
        infer_interface(lin, torch.ones(1, 3), finite=1)


def test_a_mask_passed_on_as_an_output_gets_its_range_only_when_its_values_are_read():
    class PassOn(torch.nn.Module):
        def forward(self, x, attention_mask):
            return {"y": x * 2, "attention_mask": attention_mask}

    ex = {"x": torch.rand(2, 3), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    read = infer_interface(PassOn(), ex, finite=True)  # a real run: the output's values are read
    assert read.outputs["attention_mask"].range == (0, 1)
    assert "outputs.attention_mask: a 0/1 mask (1 attends, 0 is padding): range [0, 1]" in read.description
    shapes_only = infer_interface(PassOn(), ex)  # outputs from a run on meta tensors: no values, no claim
    assert shapes_only.outputs["attention_mask"].range is None
    counts = {"x": torch.rand(2, 3), "attention_mask": torch.tensor([[2, 1, 0], [1, 1, 1]])}
    assert infer_interface(PassOn(), counts, finite=True).outputs["attention_mask"].range is None  # not 0/1
