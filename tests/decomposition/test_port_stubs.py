"""jaxtyping annotations and .pyi stubs from interfaces, and back with
Interface.from_annotations."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import modpact as mp
from modpact.decomposition.data import DIGITS
from modpact.decomposition.stubs import annotation, annotation_text, not_expressible, stub
from modpact.errors import SpecError
from modpact.interfaces.annotations import spec_from_annotation

DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "int8", "uint8", "bool", "complex64"]
DTYPES += ["floating", "integer", "signed", "complex", "any", ("floating", "integer")]
TOKENS = ["3", "64", "batch", "seq", "_", "_hidden", "#c", "n+1", "2*n", "n-1"]
VARIADIC = ["*b", "...", "*_"]


@st.composite
def shapes(draw):
    dims = draw(st.lists(st.sampled_from(TOKENS), max_size=4))
    if draw(st.booleans()):
        dims.insert(draw(st.integers(0, len(dims))), draw(st.sampled_from(VARIADIC)))
    return " ".join(dims)


@given(shapes(), st.sampled_from(DTYPES))
def test_annotation_round_trips_shape_and_dtype(shape, dtype):
    spec = mp.TensorSpec(shape, dtype=set(dtype) if isinstance(dtype, tuple) else dtype)
    back = spec_from_annotation(annotation(spec))
    assert back.shape == spec.shape
    assert back.allowed == spec.allowed


def test_annotation_text_names_the_exact_jaxtyping_class():
    assert annotation_text(mp.TensorSpec("batch 64", dtype="float32")) == 'Float32[Tensor, "batch 64"]'
    assert annotation_text(mp.TensorSpec("*b #c", dtype="floating")) == 'Float[Tensor, "*b #c"]'
    assert annotation_text(mp.TensorSpec("", dtype={"floating", "integer"})) == 'Real[Tensor, ""]'
    with pytest.raises(SpecError, match=r"dtype \{float32, int64\} is no jaxtyping dtype class"):
        annotation_text(mp.TensorSpec("n", dtype={"float32", "int64"}))


def test_stub_round_trips_through_from_annotations_and_names_what_it_cannot_say():
    iface = mp.Interface(
        "head",
        {"h": mp.TensorSpec("batch 32", dtype="float32", finite=True), "mask": mp.TensorSpec("batch", dtype="bool")},
        {
            "logits": mp.TensorSpec("batch 10", dtype="float32", labels=DIGITS),
            "ids": mp.TensorSpec("batch", dtype="int64", indices=10),
        },
    )
    text = stub(iface, "head")
    assert text.splitlines()[2:5] == ["from jaxtyping import Bool, Float32, Int64", "from torch import Tensor", ""]
    assert "# inputs.h: finite" in text
    assert "# outputs.logits: labels='digits' (10) along dim -1" in text
    assert "# outputs.ids: indices=10" in text
    assert text.rstrip().endswith(
        'def head(h: Float32[Tensor, "batch 32"], mask: Bool[Tensor, "batch"]) -> '
        'tuple[Float32[Tensor, "batch 10"], Int64[Tensor, "batch"]]: ...'
    )
    ns: dict = {}
    exec(compile(text.replace(": ...", ": pass"), "head.pyi", "exec"), ns)  # our own generated source
    back = mp.Interface.from_annotations(ns["head"])
    assert list(back.inputs) == ["h", "mask"] and list(back.outputs) == ["result0", "result1"]
    for mine, theirs in zip(
        [*iface.inputs.values(), *iface.outputs.values()], [*back.inputs.values(), *back.outputs.values()]
    ):
        assert (theirs.shape, theirs.allowed) == (mine.shape, mine.allowed)
    assert not_expressible(iface.outputs["logits"]) == ["labels='digits' (10) along dim -1"]


def test_stub_of_one_output_and_a_method():
    iface = mp.Interface(
        "enc", {"x": mp.TensorSpec("batch 64", dtype="float32", range=(0, 1))}, {"result": mp.TensorSpec("batch 64")}
    )
    text = stub(iface, method=True)
    assert 'def forward(self, x: Float32[Tensor, "batch 64"]) -> Shaped[Tensor, "batch 64"]: ...' in text
    assert "# inputs.x: range=(0, 1)" in text and "# returns" not in text
    with pytest.raises(SpecError, match=r"stub\(name='class'\): expected a Python identifier"):
        stub(iface, "class")


def test_a_padding_convention_and_dims_bounds_are_written_as_what_jaxtyping_cannot_say():
    iface = mp.Interface(
        "bert",
        {
            "ids": mp.TensorSpec("batch seq", dtype="int64", indices=100),
            "mask": mp.TensorSpec("batch seq", dtype="int64", range=(0, 1), padding="right"),
        },
        {"logits": mp.TensorSpec("batch 3")},
        dims={"seq": (1, 32)},
    )
    text = stub(iface)
    assert "# inputs.mask: range=(0, 1), padding='right'" in text
    assert "# dims.seq: in [1, 32]" in text


def test_ports_of_interfaces_with_nested_parts_are_refused_naming_them():
    """ONNX and stubs handle tensors: a nested part is named, never passed over; torch.export
    takes tuples, lists and dicts of tensors but no optional or opaque part."""
    lstm = mp.Interface(
        "lstm",
        inputs={"x": mp.TensorSpec("batch t 4")},
        outputs={"out": mp.TensorSpec("batch t 5"), "state": mp.TupleSpec([mp.TensorSpec("1 batch 5")] * 2)},
    )
    want = (
        "{what}: interface 'lstm' has parts that are not tensors: outputs.state (TupleSpec); "
        "{what} handles interfaces of tensors only"
    )
    with pytest.raises(SpecError) as e:
        stub(lstm)
    assert str(e.value) == want.format(what="stub")
    with pytest.raises(SpecError) as e:
        mp.export_onnx(torch.nn.LSTM(4, 5, batch_first=True), lstm, {"x": torch.zeros(2, 3, 4)})
    assert str(e.value) == want.format(what="export_onnx")
    cached = mp.Interface(
        "cached",
        inputs={"x": mp.TensorSpec("batch t 4"), "past": mp.OptionalSpec(mp.TensorSpec("batch t 4"))},
        outputs={"out": mp.TensorSpec("batch t 5"), "cache": mp.OpaqueSpec("transformers.cache_utils.DynamicCache")},
    )
    want = (
        "{what}: interface 'cached' has optional or opaque parts: inputs.past (OptionalSpec), outputs.cache "
        "(OpaqueSpec); {what} handles tensors and tuples, lists and dicts of tensors"
    )
    with pytest.raises(SpecError) as e:
        mp.dynamic_shapes(cached, {"x": torch.zeros(2, 3, 4)})
    assert str(e.value) == want.format(what="dynamic_shapes")
    with pytest.raises(SpecError) as e:
        mp.export(torch.nn.Linear(4, 5), cached, {"x": torch.zeros(2, 3, 4)})
    assert str(e.value) == want.format(what="export")
