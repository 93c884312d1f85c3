"""The prepared device forms (inference/_plans.py) give the verdicts of the
reference formulas, on random values, NaN, infinities and values at the bounds."""

import copy
import math
import pickle
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modpact.inference import envelope, in_boxes, in_class_boxes


def ref_envelope(t, lo, hi):
    lo, hi = lo.to(t.dtype), hi.to(t.dtype)
    return bool(torch.maximum(lo - t, t - hi).amax() <= 0)


def ref_box_rows(t, lo, hi):
    x = t.reshape(t.shape[0], 1, lo.shape[1])
    lo, hi = lo.to(t.dtype), hi.to(t.dtype)
    return (torch.maximum(lo - x, x - hi).amax(dim=2) <= 0).any(dim=1)


def ref_class_rows(t, scores, lo, hi, labels):
    x = t.reshape(t.shape[0], 1, lo.shape[1])
    lo, hi = lo.to(t.dtype), hi.to(t.dtype)
    match = torch.as_tensor(labels).unsqueeze(0) == scores.argmax(dim=1, keepdim=True)
    return ((torch.maximum(lo - x, x - hi).amax(dim=2) <= 0) & match).any(dim=1)


SPECIAL = [math.nan, math.inf, -math.inf]


def _values(data, shape, lo, hi):
    """Values near, at and outside the bounds, with a few specials."""
    n = math.prod(shape)
    lo_f, hi_f = lo.expand(shape).flatten(), hi.expand(shape).flatten()
    out = []
    for i in range(n):
        kind = data.draw(st.sampled_from(["inside", "lo", "hi", "below", "above", "special"]))
        a, b = float(lo_f[i]), float(hi_f[i])
        if kind == "inside":
            out.append(data.draw(st.floats(a, b)))
        elif kind == "lo":
            out.append(a)
        elif kind == "hi":
            out.append(b)
        elif kind == "below":
            out.append(math.nextafter(a, -math.inf) if data.draw(st.booleans()) else a - 1.0)
        elif kind == "above":
            out.append(math.nextafter(b, math.inf) if data.draw(st.booleans()) else b + 1.0)
        else:
            out.append(data.draw(st.sampled_from(SPECIAL)))
    return torch.tensor(out, dtype=torch.float64).reshape(shape)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_envelope_matches_the_reference_formula(data):
    gran = data.draw(st.sampled_from(["element", "channel", "tensor", "trailing1"]))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    rows = data.draw(st.integers(1, 4))
    if gran == "element":
        row, bshape = (3,), (3,)
    elif gran == "channel":
        row, bshape = (2, 2, 3), (2, 1, 1)
    elif gran == "tensor":
        row, bshape = (2, 3), ()
    else:
        row, bshape = (3, 2), (1,)
    lo = torch.tensor(data.draw(st.lists(st.floats(-4, 4), min_size=math.prod(bshape), max_size=math.prod(bshape))))
    lo = lo.to(torch.float64).reshape(bshape)
    hi = lo + torch.tensor(data.draw(st.floats(0, 3)))
    c = envelope("x", lo, hi)
    # bounds in the tensor's dtype, as checked
    lo_d, hi_d = lo.to(dtype).to(torch.float64), hi.to(dtype).to(torch.float64)
    t = _values(data, (rows, *row), lo_d, hi_d).to(dtype)
    got = c.device_ok({"x": t})
    assert bool(got) == ref_envelope(t, lo, hi)
    assert bool(c.device_ok({"x": t})) == bool(got)  # the second call runs on the prepared plan and scratch
    assert c.check({"x": t}).ok == bool(got)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_boxes_match_the_reference_formula(data):
    k = data.draw(st.integers(1, 4))
    d = data.draw(st.integers(1, 4))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    lo = torch.tensor(data.draw(st.lists(st.floats(-4, 4), min_size=k * d, max_size=k * d)), dtype=torch.float64)
    lo = lo.reshape(k, d)
    hi = lo + torch.tensor(data.draw(st.lists(st.floats(0, 3), min_size=k * d, max_size=k * d))).reshape(k, d)
    box = data.draw(st.integers(0, k - 1))  # draw values around one box
    rows = data.draw(st.integers(0, 4))
    t = _values(data, (rows, d), lo[box].to(dtype).double(), hi[box].to(dtype).double()).to(dtype)
    u = in_boxes("x", lo, hi)
    ref = ref_box_rows(t, lo, hi)
    assert torch.equal(u.rows({"x": t}), ref)
    assert bool(u.device_ok({"x": t})) == bool(ref.all())
    classes = data.draw(st.integers(1, 4))
    labels = data.draw(st.lists(st.integers(-1, classes + 1), min_size=k, max_size=k))
    n = rows * classes
    scores = torch.tensor(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, math.nan]), min_size=n, max_size=n)))
    scores = scores.reshape(rows, classes)
    cb = in_class_boxes("x", "s", lo, hi, labels)
    ref = ref_class_rows(t, scores, lo, hi, labels)
    env = {"x": t, "s": scores}
    assert torch.equal(cb.rows(env), ref)
    assert bool(cb.device_ok(env)) == bool(ref.all())
    assert bool(cb.device_ok(env)) == bool(ref.all())  # again, on the scratch tensors


def test_class_boxes_use_only_the_predicted_class_boxes():
    # two boxes of class 0, one of class 2, none of class 1
    lo = [[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]]
    hi = [[1.0, 1.0], [11.0, 11.0], [21.0, 21.0]]
    c = in_class_boxes("x", "s", lo, hi, [0, 0, 2])
    x = torch.tensor([[0.5, 0.5], [10.5, 10.5], [20.5, 20.5], [0.5, 0.5], [0.5, 0.5]])
    s = torch.zeros(5, 4)
    s[0, 0] = s[1, 0] = s[2, 2] = 1.0  # right classes
    s[3, 1] = 1.0  # class 1 has no box
    s[4, 3] = 1.0  # class 3: past every label
    assert c.rows({"x": x, "s": s}).tolist() == [True, True, True, False, False]
    assert torch.equal(c.rows({"x": x, "s": s}), ref_class_rows(x, s, torch.tensor(lo), torch.tensor(hi), [0, 0, 2]))


def test_grad_inference_mode_and_threads_share_nothing_wrong():
    c = envelope("x", torch.zeros(3), torch.ones(3))
    b = in_boxes("x", [[0.0] * 3], [[1.0] * 3])
    x = torch.rand(8, 3, requires_grad=True)
    assert bool(c.device_ok({"x": x})) and bool(b.device_ok({"x": x}))
    with torch.inference_mode():
        y = torch.rand(8, 3)
        assert bool(c.device_ok({"x": y})) and not bool(c.device_ok({"x": y + 2}))
    assert bool(c.device_ok({"x": torch.rand(8, 3)}))  # scratch made in inference mode is writable outside it
    results = []

    def run(v):
        for _ in range(50):
            results.append(bool(c.device_ok({"x": torch.full((8, 3), v)})) == (0 <= v <= 1))

    threads = [threading.Thread(target=run, args=(v,)) for v in (0.5, 3.0, 0.5, -1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results) and len(results) == 200


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_leave_plans_and_scratch_behind(how):
    c = in_class_boxes("x", "s", [[0.0]], [[1.0]], [0])
    env = {"x": torch.rand(4, 1), "s": torch.ones(4, 1)}
    assert bool(c.device_ok(env))
    d = copy.deepcopy(c) if how == "deepcopy" else pickle.loads(pickle.dumps(c))
    assert d._plans == {} and d._scratch._bufs == {}
    assert d == c and bool(d.device_ok(env))
