"""FlagBuffer: the device-side verdicts agree with a direct check on the host."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from modpact.runtime._buffer import GROUP_CAPACITY, FlagBuffer, checkable


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
    assert (_violated(buf) == ["e"]) == _direct(t, lo, hi)


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
    assert not buf.add_range(torch.ones(3, dtype=torch.complex64), "complex")
    assert not buf.add_range(torch.empty(3, device="meta"), "meta")
    assert not checkable(torch.empty(2, 0))
    assert buf.size == 0 and _violated(buf) == []


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
