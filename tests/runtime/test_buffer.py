"""FlagBuffer: the device-side verdicts agree with a direct check on the host."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modpact.runtime._buffer import GROUP_CAPACITY, FlagBuffer, checkable


@pytest.fixture(autouse=True, scope="module", params=[True, False], ids=["host-compare", "device-evaluate"])
def both_read_paths(request):
    """Every test runs on both read paths: CPU groups compared in Python, and
    the device-side evaluation that CUDA groups always use."""
    init = FlagBuffer.__init__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FlagBuffer, "__init__", lambda self, host_compare=request.param: init(self, host_compare))
        yield request.param


def _violated(buf: FlagBuffer) -> list:
    buf.flush()
    return buf.poll(block=True)


def _direct(t: torch.Tensor, lo, hi) -> bool:
    """Reference: does t break the check (non-finite, or outside [lo, hi])?"""
    x = t.double()
    if not torch.isfinite(x).all():
        return True
    return bool((lo is not None and (x < lo).any()) or (hi is not None and (x > hi).any()))


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
bounds = st.one_of(st.none(), st.floats(-10, 10))


@given(arrays(np.float32, st.integers(1, 20), elements=floats), bounds, bounds)
def test_range_verdict_matches_direct_check(values, lo, hi):
    t = torch.from_numpy(values)
    buf = FlagBuffer()
    buf.add_range(t, "e", lo, hi, True)
    # finite-only checks read the sum: only values far past any activation's
    # scale can overflow it (test_sum_overflow_of_huge_finite_values_is_flagged)
    overflow = lo is None and hi is None and not math.isfinite(float(t.sum()))
    assert (_violated(buf) == ["e"]) == (_direct(t, lo, hi) or overflow)


BIG = float(np.float32(1e30))
moderate = st.one_of(st.floats(-BIG, BIG, width=32), st.sampled_from([math.nan, math.inf, -math.inf]))


@given(arrays(np.float32, st.integers(1, 64), elements=moderate))
def test_finite_verdict_is_exact_below_overflow_scale(values):
    t = torch.from_numpy(values)
    buf = FlagBuffer()
    buf.add_range(t, "e")
    assert (_violated(buf) == ["e"]) == (not torch.isfinite(t).all())


def test_sum_overflow_of_huge_finite_values_is_flagged():
    """The documented false alarm: finite float32 values whose sum overflows."""
    buf = FlagBuffer()
    buf.add_range(torch.full((4,), 2e38), "huge")
    assert _violated(buf) == ["huge"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sums_accumulate_in_float32(dtype):
    """64*256 values of 8 sum to 131072, past float16's largest value: no false alarm."""
    buf = FlagBuffer()
    buf.add_range(torch.full((64, 256), 8.0, dtype=dtype), "large sum")
    t = torch.ones(5, dtype=dtype)
    t[1] = math.inf
    buf.add_range(t, "inf")
    assert _violated(buf) == ["inf"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_is_flagged_in_every_float_dtype(dtype, bad):
    t = torch.ones(4, 5, dtype=dtype)
    t[2, 3] = bad
    buf = FlagBuffer()
    buf.add_range(torch.ones(3, dtype=dtype), "clean")
    buf.add_range(t, "bad")
    assert _violated(buf) == ["bad"]


def test_integer_ranges():
    buf = FlagBuffer()
    buf.add_range(torch.tensor([0, 3, 9]), "ok", 0, 9)
    buf.add_range(torch.tensor([0, 10]), "high", 0, 9)
    buf.add_range(torch.tensor([-1, 2], dtype=torch.int32), "low", 0, 9)
    assert _violated(buf) == ["high", "low"]


def test_tensors_without_values_are_not_recorded():
    buf = FlagBuffer()
    assert not buf.add_range(torch.empty(0), "empty")
    assert not buf.add_range(torch.ones(3, dtype=torch.bool), "bool")
    assert not buf.add_range(torch.ones(3, dtype=torch.complex64), "complex in bounds", 0, 1)  # no order
    assert not buf.add_range(torch.empty(3, device="meta"), "meta")
    assert not checkable(torch.empty(2, 0))
    assert buf.size == 0 and _violated(buf) == []


def test_complex_sparse_and_nested_tensors_are_checked_for_finite_values():
    buf = FlagBuffer()
    bad = torch.tensor([1.0, float("nan"), 0.0])
    assert buf.add_range(torch.complex(bad, bad), "complex")
    assert buf.add_range(torch.ones(3, dtype=torch.complex64), "complex ok")
    assert buf.add_range(bad.to_sparse(), "sparse")
    assert buf.add_range(torch.nested.nested_tensor([bad, torch.ones(2)]), "nested")
    assert not buf.add_range(torch.zeros(4).to_sparse(), "sparse zeros ok", -1, 1)  # nothing stored, 0 in bounds
    assert buf.add_range(torch.tensor([0.0, 2.0]).to_sparse(), "unstored zero below the bound", 1, 3)
    assert sorted(_violated(buf)) == ["complex", "nested", "sparse", "unstored zero below the bound"]


def test_more_checks_than_one_group_holds_are_all_read():
    n = 2 * GROUP_CAPACITY + 17
    bad_at = {5, GROUP_CAPACITY - 1, GROUP_CAPACITY, n - 1}
    buf = FlagBuffer()
    for i in range(n):
        buf.add_range(torch.tensor([math.nan if i in bad_at else 1.0]), i)
    assert sorted(_violated(buf)) == sorted(bad_at)
    assert buf.size == 0


def test_buffer_reused_across_flushes_does_not_keep_old_verdicts():
    buf = FlagBuffer()
    buf.add_range(torch.tensor([math.inf]), "first")
    assert _violated(buf) == ["first"]
    buf.add_range(torch.tensor([1.0]), "second")
    assert _violated(buf) == []


def test_group_made_in_inference_mode_is_usable_outside_it():
    buf = FlagBuffer()
    with torch.inference_mode():
        buf.add_range(torch.ones(3), "inside")
    x = torch.ones(3, requires_grad=True) * 2  # autograd-tracked, needs detaching
    buf.add_range(x, "outside", 0, 1)
    assert _violated(buf) == ["outside"]


def test_condition_verdicts_and_range_checks_come_back_together():
    buf = FlagBuffer()
    buf.add_ok(torch.tensor(True), "held")
    buf.add_ok(False, "failed")
    buf.add_range(torch.tensor([2.0]), "range", 0, 1)
    assert sorted(_violated(buf)) == ["failed", "range"]
