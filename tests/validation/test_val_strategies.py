"""Strategies from specs: every generated example passes the spec's own checks;
impossible specs fail when the strategy is built; edge values are reachable;
shrinking gives small, mostly-zero tensors."""

import sys
from pathlib import Path
from random import Random

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import modpact as mp
from modpact.interfaces import strategies as S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interfaces"))
from iface_strategies import interfaces, specs  # noqa: E402

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _generatable(spec):
    return spec.device != "cuda" or torch.cuda.is_available()


@SETTINGS
@given(specs(), st.data())
def test_every_generated_tensor_passes_its_spec(spec, data):
    if not _generatable(spec):
        with pytest.raises(mp.SpecError, match="no CUDA device"):
            S.tensors(spec)
        return
    t = data.draw(S.tensors(spec))
    assert t.dtype in spec.allowed
    assert spec.check(t) == []


@SETTINGS
@given(interfaces(), st.data())
def test_interface_strategy_shares_dims_across_inputs(iface, data):
    if not all(_generatable(s) for s in iface.inputs.values()):
        return
    inputs = data.draw(iface.strategy())
    assert set(inputs) == set(iface.inputs)
    problems, bindings = iface.input_problems(inputs)
    problems += bindings.resolve()
    assert problems == []


DIGITS = mp.LabelSpace("digits", [str(i) for i in range(10)])
FIELDS = [
    pytest.param(mp.TensorSpec("batch 3", dtype="float16", range=(0.1, 2.5)), id="float16-range"),
    pytest.param(mp.TensorSpec("batch 3", dtype="bfloat16", range=(-1.3, 0.7), finite=True), id="bfloat16"),
    pytest.param(mp.TensorSpec("n c", dtype="floating", simplex=-1, simplex_tol=0.0), id="simplex-exact"),
    pytest.param(mp.TensorSpec("c n", dtype="float32", simplex=0), id="simplex-dim0"),
    pytest.param(mp.TensorSpec("*b", dtype="integer", indices=10), id="indices"),
    pytest.param(mp.TensorSpec("batch c", dtype="float32", labels=DIGITS), id="labels-named"),
    pytest.param(mp.TensorSpec("batch _", dtype="float32", labels=DIGITS), id="labels-anon"),
    pytest.param(mp.TensorSpec("a #a 2*a a-1", dtype="bool"), id="bcast-expr-bool"),
    pytest.param(mp.TensorSpec("batch 4", dtype="uint8", range=(3, 7)), id="uint8-range"),
    pytest.param(mp.TensorSpec("batch 4", device="meta", dtype="float32"), id="meta"),
    pytest.param(mp.TensorSpec("x", dtype={"int8", "float64"}, range=(-100, 100)), id="dtype-set"),
]


def test_int8_values_pass_a_range_wider_than_int8():
    # found by these strategies: the bound used to wrap around in the dtype (300 -> 44)
    t = torch.tensor([45, -128, 127], dtype=torch.int8)
    assert mp.TensorSpec("x", dtype="int8", range=(-300, 300)).check(t) == []
    assert mp.TensorSpec("x", dtype="uint8", range=(-1, 255)).check(t.to(torch.uint8).clamp(min=0)) == []
    assert mp.TensorSpec("x", dtype="int8", range=(200, 300)).check(t) != []
    assert mp.TensorSpec("x", dtype="int8", range=(-300, -200)).check(t) != []
    assert mp.TensorSpec("x", dtype="int8", range=(0, 300)).check(t) != []  # -128 is below 0


@pytest.mark.parametrize("spec", FIELDS)
@SETTINGS
@given(data=st.data())
def test_each_spec_field_is_respected(spec, data):
    t = data.draw(S.tensors(spec))
    assert spec.check(t) == [], (spec, t)
    assert t.device.type == ("meta" if spec.device == "meta" else "cpu")


def test_dims_argument_fixes_and_bounds_sizes():
    spec = mp.TensorSpec("batch n")
    t = find(S.tensors(spec, dims={"batch": 7, "n": (2, 3)}), lambda t: True)
    assert t.shape[0] == 7 and 2 <= t.shape[1] <= 3


IMPOSSIBLE = [
    pytest.param(
        mp.TensorSpec("n", dtype="int64", range=(5, 8), indices=3), ["range=[5, 8]", "indices=3"], id="indices-vs-range"
    ),
    pytest.param(
        mp.TensorSpec("n", dtype="integer", range=(0.2, 0.8)),
        ["no value within range=[0.2, 0.8]"],
        id="int-between-integers",
    ),
    pytest.param(
        mp.TensorSpec("n 3", dtype="int64", simplex=-1), ["simplex=-1 needs a floating dtype"], id="simplex-int"
    ),
    pytest.param(
        mp.TensorSpec("n", dtype="bool", range=(2, 5)), ["bool has no value within range=[2, 5]"], id="bool-range"
    ),
    pytest.param(
        mp.TensorSpec("n", dtype="float16", range=(1e6, None)),
        ["float16 cannot hold values in [1000000.0"],
        id="float16-overflow",
    ),
    pytest.param(mp.TensorSpec("n", dtype="complex64"), ["has no dtype the strategies generate"], id="complex"),
    pytest.param(
        mp.TensorSpec("n 3", simplex=-1, range=(0.5, 1)), ["simplex=-1 rows with range=[0.5, 1]"], id="simplex-range"
    ),
]


@pytest.mark.parametrize("spec, parts", IMPOSSIBLE)
def test_impossible_spec_fails_at_build_time_naming_the_conflict(spec, parts):
    with pytest.raises(mp.SpecError) as e:
        S.tensors(spec)
    for part in parts:
        assert part in str(e.value)
    assert str(e.value).startswith("cannot generate x (TensorSpec(")


def test_conflicting_label_spaces_on_one_dim_are_named():
    colors = mp.LabelSpace("colors", ["r", "g", "b"])
    iface = mp.Interface(
        "two", inputs={"a": mp.TensorSpec("n c", labels=DIGITS), "b": mp.TensorSpec("n c", labels=colors)}, outputs={}
    )
    with pytest.raises(mp.SpecError) as e:
        iface.strategy()
    msg = str(e.value)
    assert "cannot generate dim 'c'" in msg
    assert "inputs.b: labels='colors' (3 labels)" in msg and "inputs.a: labels='digits' (10 labels)" in msg


def test_dims_argument_rejects_bad_values():
    with pytest.raises(mp.SpecError, match=r"dims=\{'batch': -1\}: expected 0 <= lo <= hi"):
        S.tensors(mp.TensorSpec("batch"), dims={"batch": -1})


# ---- edge values are reachable --------------------------------------------------------


def _find(spec, cond):
    # a fixed random source: shrinking is deterministic, so the size assertions below cannot flake
    return find(
        S.tensors(spec), cond, settings=settings(max_examples=2000, deadline=None, database=None), random=Random(0)
    )


@pytest.mark.parametrize(
    "cond",
    [
        pytest.param(lambda t: bool((t == 0.5).any()), id="upper-bound"),
        pytest.param(lambda t: bool((t == -0.25).any()), id="lower-bound"),
        pytest.param(lambda t: bool((t == 0).any()), id="zero"),
        pytest.param(lambda t: t.shape[0] == 1, id="batch-1"),
        pytest.param(lambda t: bool(((t != 0) & (t.abs() < 1e-30)).any()), id="tiny"),
    ],
)
def test_edge_values_in_range_are_reachable(cond):
    _find(mp.TensorSpec("batch 3", dtype="float32", range=(-0.25, 0.5)), cond)


@pytest.mark.parametrize(
    "cond",
    [
        pytest.param(lambda t: bool(t.isnan().any()), id="nan"),
        pytest.param(lambda t: bool(t.isinf().any()), id="inf"),
        pytest.param(lambda t: bool((t.abs() > 1e30).any() & t.isfinite().all()), id="huge"),
    ],
)
def test_nonfinite_and_huge_values_are_reachable_when_the_domain_allows(cond):
    _find(mp.TensorSpec("batch 3", dtype="float32"), cond)


def test_finite_spec_never_generates_nan_or_inf():
    with pytest.raises(Exception, match="No examples found"):
        find(
            S.tensors(mp.TensorSpec("batch 3", dtype="float32", finite=True)),
            lambda t: not bool(t.isfinite().all()),
            settings=settings(max_examples=300, deadline=None, database=None),
        )


def test_shrinking_gives_a_small_mostly_zero_counterexample():
    spec = mp.TensorSpec("batch 16", dtype="float32", range=(-10, 10))
    t = _find(spec, lambda t: bool((t > 1).any()))
    assert t.shape == (1, 16)
    assert int((t != 0).sum()) == 1


def test_simplex_rows_shrink_to_one_hot():
    t = _find(mp.TensorSpec("n 4", dtype="float32", simplex=-1), lambda t: True)
    assert t.shape == (1, 4) and t.tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_strategies_module_is_reachable_from_the_top_package():
    assert mp.strategies.tensors is S.tensors
    assert mp.interfaces.strategies is S
    from modpact.strategies import tensors

    assert tensors is S.tensors
