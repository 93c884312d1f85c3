"""Parametric generation: Hypothesis draws a tensor's parameters and torch makes it
(interfaces/_materialise.py); batched groups are checked whole where that is sound
(validation/_whole.py). Counterexamples still shrink to small, readable inputs."""

import math
from random import Random

import pytest
import torch
from hypothesis import find, settings
from torch import nn

import modpact as mp
from modpact.contracts.target import Target
from modpact.interfaces import strategies as S
from modpact.interfaces._materialise import TensorParams, materialise
from modpact.validation._whole import whole_checkable


def _find(spec, cond, **kw):
    return find(
        S.tensors(spec, **kw),
        cond,
        settings=settings(max_examples=2000, deadline=None, database=None),
        random=Random(0),
    )


# ---- materialising --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(
            TensorParams(torch.float32, (3, 5), "cpu", -2.0, 3.0, 0.0, seed=7, random=1000, scale=1),
            id="float-random",
        ),
        pytest.param(
            TensorParams(
                torch.float16, (4, 4), "cpu", None, None, 0.0, seed=1, random=1000, scale=3, scatter=(math.nan, 0.5)
            ),
            id="float16-scatter-nan",
        ),
        pytest.param(
            TensorParams(torch.int64, (6,), "cpu", None, None, 0, seed=3, random=1000, scale=19), id="int64-full"
        ),
        pytest.param(TensorParams(torch.bool, (2, 3), "cpu", 0, 1, False, seed=5, random=1000), id="bool"),
        pytest.param(
            TensorParams(torch.float32, (2, 4), "cpu", 0, 1000, 0, seed=9, random=1000, scale=3, simplex=-1),
            id="simplex",
        ),
    ],
)
def test_the_same_parameters_give_the_same_tensor(params):
    a, b = materialise(params), materialise(params)
    assert a.dtype == params.dtype and tuple(a.shape) == params.shape
    assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    other = materialise(TensorParams(**{**params.__dict__, "seed": params.seed + 1}))
    assert not torch.equal(a.nan_to_num(), other.nan_to_num())  # the seed matters


def test_random_values_stay_inside_bounds_near_the_dtype_limits():
    for dt, lo, hi in [(torch.int64, -(2**63), 2**63 - 1), (torch.int8, -128, 127), (torch.float16, -65504.0, 65504.0)]:
        t = materialise(
            TensorParams(dt, (1000,), "cpu", lo, hi, 0, seed=0, random=1000, scale=19 if dt == torch.int64 else 4)
        )
        assert int(t.min()) >= lo and int(t.max()) <= hi
        assert t.unique().numel() > 100


def test_special_values_go_where_drawn():
    p = TensorParams(torch.float32, (2, 3), "cpu", None, None, 0.0, specials=((4, math.inf), (0, -1.5)))
    assert materialise(p).tolist() == [[-1.5, 0.0, 0.0], [0.0, math.inf, 0.0]]


def test_a_drawn_tensor_is_reproducible_from_the_same_choices():
    spec = mp.TensorSpec("batch 8", dtype="float32", range=(-3, 3))
    a = _find(spec, lambda t: bool((t.abs() > 1).sum() > 3))
    b = _find(spec, lambda t: bool((t.abs() > 1).sum() > 3))
    assert torch.equal(a, b)


# ---- what the strategies promise ------------------------------------------------------------


def test_the_simplest_tensor_is_the_fill_nearest_zero():
    t = _find(mp.TensorSpec("batch n", dtype="float32", range=(2, 5)), lambda t: True)
    assert t.shape == (1, 1) and t.tolist() == [[2.0]]


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
def test_masks_hold_only_0_and_1_and_reach_both(dtype):
    spec = mp.TensorSpec("batch n", dtype=dtype, range=(0, 1))
    t = _find(spec, lambda t: bool((t == 0).any() and (t == 1).any()))
    assert set(t.flatten().tolist()) == {0, 1}
    assert spec.check(t) == []


def test_indices_reach_both_ends():
    t = _find(mp.TensorSpec("batch seq", dtype="int64", indices=30), lambda t: bool((t == 29).any() and (t == 0).any()))
    assert int(t.min()) == 0 and int(t.max()) == 29


# ---- counterexamples shrink ----------------------------------------------------------------

SQUASH = mp.Interface(
    "squash",
    inputs={"x": mp.TensorSpec("batch n", dtype="float32", range=(0, 1))},
    outputs={"y": mp.TensorSpec("batch n", finite=True)},
)


class NanAboveHalf(nn.Module):
    """Planted bug: NaN wherever an element is above 0.5."""

    def forward(self, x):
        return torch.where(x > 0.5, torch.full_like(x, float("nan")), x)


class RaisesFromWidth3(nn.Module):
    def forward(self, x):
        if x.shape[1] >= 3:
            raise ValueError(f"width {x.shape[1]} not supported")
        return x


class RaisesFromBatch3(nn.Module):
    def forward(self, x):
        if x.shape[0] >= 3:
            raise ValueError(f"batch {x.shape[0]} not supported")
        return x


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "one-per-forward"])
def test_an_element_above_half_shrinks_to_one_row_with_one_entry(batch):
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(NanAboveHalf(), SQUASH, max_examples=200, seed=0, batch=batch, dims={"n": 8})
    x = e.value.inputs["x"]
    assert x.shape == (1, 8)
    assert int((x > 0.5).sum()) == 1 and int((x == 0).sum()) == 7  # one entry that matters, zeros elsewhere
    assert "outputs.y: finite expected finite values" in str(e.value)


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "one-per-forward"])
@pytest.mark.parametrize(
    "module, shape, raised",
    [
        (RaisesFromWidth3, (1, 3), "RaisesFromWidth3 raised ValueError: width 3 not supported"),
        # batched, a group of small examples also raises (3 rows in all): each is then run alone,
        # and only an example that raises alone is reported
        (RaisesFromBatch3, (3, 1), "RaisesFromBatch3 raised ValueError: batch 3 not supported"),
    ],
    ids=["width", "batch"],
)
def test_a_size_of_at_least_3_shrinks_to_exactly_3(batch, module, shape, raised):
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(module(), SQUASH, max_examples=200, seed=0, batch=batch)
    x = e.value.inputs["x"]
    assert x.shape == shape and int((x != 0).sum()) == 0
    assert raised in str(e.value)


def test_the_same_seed_reports_the_same_counterexample():
    xs = []
    for _ in range(2):
        with pytest.raises(mp.ValidationFailure) as e:
            mp.validate(NanAboveHalf(), SQUASH, max_examples=200, seed=5)
        xs.append(e.value.inputs["x"])
    assert torch.equal(xs[0], xs[1])


# ---- groups checked whole ------------------------------------------------------------------


class Tanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


def test_a_clean_group_is_checked_once_as_a_whole():
    res = mp.validate(Tanh(), SQUASH, contracts=[mp.in_range("y", -1, 1)], max_examples=50, seed=0)
    assert res.batched and res.group == 64
    assert res.forwards == res.test_cases  # one forward per group: no input was re-run alone
    assert res.examples >= 10 * res.test_cases
    assert res.passes == {"interface 'squash'": res.examples, "in_range(y, -1, 1)": res.examples}


SIMPLEX_ON_BATCH = mp.Interface(
    "col",
    inputs={"x": mp.TensorSpec("batch n", dtype="float32", range=(0, 1))},
    outputs={"p": mp.TensorSpec("batch n", simplex=0)},
)


@pytest.mark.parametrize(
    "iface, contracts, whole",
    [
        pytest.param(SQUASH, None, True, id="interface"),
        pytest.param(SQUASH, [mp.finite("y"), mp.in_range("y", 0, 1), mp.nonnegative("y")], True, id="elementwise"),
        pytest.param(SQUASH, [mp.norm_at_most("y", 3.0)], True, id="norm"),
        pytest.param(SQUASH, [mp.norm_at_most("y", 3.0, p=-math.inf)], False, id="norm-min"),
        pytest.param(SQUASH, [mp.simplex("y", dim=-1)], True, id="simplex-rows"),
        pytest.param(SQUASH, {"requires": [mp.finite("x")]}, False, id="requires"),
        pytest.param(SQUASH, [mp.batch_independent("x")], False, id="relational"),
        pytest.param(SIMPLEX_ON_BATCH, None, False, id="spec-simplex-on-batch"),
    ],
)
def test_groups_are_checked_whole_only_where_that_decides_each_input(iface, contracts, whole):
    assert whole_checkable(Target(Tanh(), iface, contracts)) is whole


class SumsOverTheBatch(nn.Module):
    """Columns sum to 1 over the whole forward's batch: a group passes, no example alone does."""

    def forward(self, x):
        return (x + 1).softmax(0)


def test_a_simplex_along_the_batch_dim_is_checked_per_example():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(SumsOverTheBatch(), SIMPLEX_ON_BATCH, max_examples=100, seed=0)
    assert "passes alone but fails when evaluated in one forward" in str(e.value)


def test_a_simplex_condition_along_the_batch_dim_is_checked_per_example():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(SumsOverTheBatch(), SQUASH, contracts=[mp.simplex("y", dim=0)], max_examples=100, seed=0)
    assert "passes alone but fails when evaluated in one forward" in str(e.value)
