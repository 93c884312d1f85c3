"""Bad arguments fail when the object is built, naming the argument, the value and what is accepted."""

import pytest
import torch

import modpact.interfaces as mi
from modpact.interfaces import Interface, LabelSpace, SpecError, TensorSpec

BAD = [
    (
        "dtype",
        lambda: TensorSpec("n", dtype="float33"),
        "TensorSpec(dtype='float33'): unknown dtype 'float33'; expected a torch dtype name (float32, int64, ...), "
        "a family (floating, integer, signed, bool, complex, any) or a set of those",
    ),
    ("dtype-in-set", lambda: TensorSpec("n", dtype=["float32", "f8"]), "unknown dtype 'f8'"),
    (
        "device",
        lambda: TensorSpec("n", device="tpu"),
        "TensorSpec(device='tpu'): unknown device; expected one of any, cpu, cuda, mps, meta, xpu",
    ),
    ("range-order", lambda: TensorSpec("n", range=(2, 1)), "TensorSpec(range=(2, 1)): lo=2 > hi=1"),
    ("range-form", lambda: TensorSpec("n", range=5), "TensorSpec(range=5): expected (lo, hi)"),
    ("range-nan", lambda: TensorSpec("n", range=(float("nan"), 1)), "bound nan is not a number"),
    (
        "indices-negative",
        lambda: TensorSpec("n", dtype="int64", indices=-3),
        "TensorSpec(indices=-3): expected a positive int n (class labels in [0, n))",
    ),
    ("indices-float", lambda: TensorSpec("n", dtype="float32", indices=3), "indices need an integer dtype"),
    (
        "shape-two-variadics",
        lambda: TensorSpec("*a *b"),
        "TensorSpec(shape='*a *b'): '*a *b' has 2 variadic dims; at most one is allowed",
    ),
    (
        "shape-bad-token",
        lambda: TensorSpec("batch 6.5"),
        "TensorSpec(shape='batch 6.5'): dim expression '6.5' uses Constant",
    ),
    ("shape-type", lambda: TensorSpec(3.0), "expected a shape string like 'batch 64'"),
    ("shape-negative", lambda: TensorSpec([-1, 3]), "dim -1 is negative"),
    (
        "simplex-out-of-rank",
        lambda: TensorSpec("b k", simplex=2),
        "TensorSpec(simplex=2): out of range for shape 'b k' of rank 2",
    ),
    (
        "simplex-tol",
        lambda: TensorSpec("b k", simplex=1, simplex_tol=-1),
        "TensorSpec(simplex_tol=-1): expected a number in [0, 1)",
    ),
    (
        "labels-size",
        lambda: TensorSpec("b 4", labels=LabelSpace("d", ["a", "b", "c"])),
        "dim -1 is 4 but the label space has 3 labels",
    ),
    ("labels-type", lambda: TensorSpec("b 3", labels=["a", "b", "c"]), "expected a LabelSpace or None"),
    ("finite-type", lambda: TensorSpec("n", finite="yes"), "TensorSpec(finite='yes'): expected True or False"),
    (
        "iface-spec-type",
        lambda: Interface("m", {"x": "batch 3"}, {}),
        "Interface('m', inputs=...): 'x' is a str; expected a TensorSpec",
    ),
    (
        "iface-name",
        lambda: Interface("m", {"not valid": TensorSpec("n")}, {}),
        "tensor name 'not valid' is not an identifier",
    ),
    ("iface-mapping", lambda: Interface("m", [TensorSpec("n")], {}), "expected a dict of name -> TensorSpec"),
]


@pytest.mark.parametrize("build,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(build, expected):
    with pytest.raises(SpecError) as e:
        build()
    assert expected in str(e.value)
    assert isinstance(e.value, ValueError)  # SpecError is also a ValueError


def test_exports_importable_and_documented():
    doc = open(__file__.rsplit("/tests/", 1)[0] + "/docs/interfaces.md").read()
    for name in mi.__all__:
        assert hasattr(mi, name), name
        if name[0].isupper() or name in ("check_compatible", "infer_interface", "describe", "summarize"):
            assert f"`{name}" in doc or name in doc, f"{name} is not mentioned in docs/interfaces.md"
    import modpact.errors as errors
    import modpact.interfaces.values as v

    assert set(errors.__all__) <= set(mi.__all__)

    assert v.finite_ok(torch.zeros(1))
