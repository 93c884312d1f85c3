"""The device forms give the verdicts of the reference formulas (class boxes
through the per-class table of inference/_plans.py; envelopes through the
per-shape cache of whether rows fit), on random values, NaN, infinities and
values at and next to the bounds; so do the range forms the Monitor records
(``device_range``: a tensor whose elements must lie in [lo, hi]) and the
host reads of guards (``ok``)."""

import copy
import math
import pickle

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


def range_verdict(c, env):
    """The verdict of ``c.device_range(env)`` as the Monitor's flag buffer reads it."""
    from modpact.runtime._buffer import range_violated

    form = c.device_range(env)
    if form is None or isinstance(form, bool):
        return form
    t, lo, hi = form
    return not bool(range_violated(t, lo, hi, False))


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


@pytest.mark.parametrize("reduce_first", [False, True], ids=["clamp-form", "reduce-first-form"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_envelope_matches_the_reference_formula(reduce_first, data):
    """Both range forms of an envelope (``clamp(t) - t``, and on large CPU
    tensors amin/amax first: forced here for every size)."""
    import importlib
    from unittest import mock

    # by import_module: the package exports a function named envelope too
    envelope_module = importlib.import_module("modpact.inference.envelope")
    with (
        mock.patch.object(envelope_module, "REDUCE_ROWS", 1 if reduce_first else 10**9),
        mock.patch.object(envelope_module, "REDUCE_INNER", 1 if reduce_first else 10**9),
    ):
        _envelope_matches(data)


def _envelope_matches(data):
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
    assert bool(c.device_ok({"x": t})) == bool(got)  # the second call reads the cached fit
    assert c.check({"x": t}).ok == bool(got)
    assert range_verdict(c, {"x": t}) == bool(got)
    assert c.ok({"x": t.requires_grad_(True)}) == bool(got)


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
    assert range_verdict(u, {"x": t}) == bool(ref.all()) == u.ok({"x": t})
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
    assert range_verdict(cb, env) == bool(ref.all()) == cb.ok(env)


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


def test_grad_and_inference_mode():
    c = in_class_boxes("x", "s", [[0.0] * 3], [[1.0] * 3], [0])
    x = torch.rand(8, 3, requires_grad=True)
    s = torch.ones(8, 1, requires_grad=True)
    assert bool(c.device_ok({"x": x, "s": s}))
    with torch.inference_mode():
        y = torch.rand(8, 3)
        assert bool(c.device_ok({"x": y, "s": torch.ones(8, 1)}))
        assert not bool(c.device_ok({"x": y + 2, "s": torch.ones(8, 1)}))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_leave_caches_behind(how):
    c = in_class_boxes("x", "s", [[0.0]], [[1.0]], [0])
    e = envelope("x", [0.0], [1.0])
    env = {"x": torch.rand(4, 1), "s": torch.ones(4, 1)}
    assert bool(c.device_ok(env)) and bool(e.device_ok(env))
    for cond in (c, e):
        d = copy.deepcopy(cond) if how == "deepcopy" else pickle.loads(pickle.dumps(cond))
        assert d._cache == {} and d._fits == {}
        assert d == cond and bool(d.device_ok(env))
    assert copy.deepcopy(c)._table._on == {}


@pytest.mark.parametrize("host_compare", [True, False], ids=["cpu-read", "deferred-copy"])
def test_monitor_flags_the_device_forms_and_explains_them_when_read(monkeypatch, host_compare):
    """Under a Monitor the device forms only raise flags (range forms: one
    reduction each into the flag buffer, read on the host at once on the CPU
    or copied as on CUDA); the flagged call is re-run and each violation
    names the module, the condition and the values, as the conditions' own
    evidence does."""
    from torch import nn

    import modpact as mp
    from modpact.runtime import _buffer

    monkeypatch.setattr(_buffer.FlagBuffer.__init__, "__defaults__", (host_compare,))

    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(2))
        lin.bias.zero_()
    model = nn.Sequential(lin)
    env_c = envelope("result", [0.0, 0.0], [1.0, 1.0])
    box_c = in_boxes("result", [[0.0, 0.0], [2.0, 2.0]], [[1.0, 1.0], [3.0, 3.0]])
    cls_c = in_class_boxes("input", "result", [[0.0, 0.0], [2.0, 2.0]], [[1.0, 1.0], [3.0, 3.0]], [0, 1])
    mp.guard(lin, ensures=[env_c, box_c, cls_c], name="0")
    try:
        with mp.Monitor(model) as mon:
            model(torch.tensor([[0.5, 0.5], [0.75, 0.25]]))  # inside everything (argmax 0: box 0)
            mon.step()
            model(torch.tensor([[0.5, 0.5], [0.5, 1.5]]))  # row 1 leaves the envelope and every box
            mon.step()
        rep = mon.report()
    finally:
        mp.unguard(lin)
    by_check = {v.check: v for v in rep.violations}
    assert set(by_check) == {env_c.text, box_c.text, cls_c.text}, str(rep)
    assert all(v.step == 1 and v.module == "0" and v.kind == "postcondition" for v in rep.violations)
    assert all(v.blame == "0" and v.blame_reason == "its preconditions held" for v in rep.violations)
    e = by_check["envelope(result, 2 features)"].evidence
    assert e["failing"] == 1 and list(e["first_index"]) == [1, 1] and e["first_value"] == 1.5
    assert list(e["first_bounds"]) == [0.0, 1.0] and e["rows_outside"] == 1 and e["rows"] == 2
    b = by_check["in_boxes(result, 2 boxes)"].evidence
    assert (b["failing"], b["of"], b["boxes"], b["first_row"]) == (1, 2, 2, 1)
    c = by_check["in_class_boxes(input, result, 2 boxes)"].evidence
    assert (c["failing"], c["first_row"], c["predicted_class"]) == (1, 1, 1)


def test_integer_features_use_the_reference_expression():
    lo, hi, labels = torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([[2.0, 2.0], [7.0, 7.0]]), [0, 1]
    c = in_class_boxes("x", "s", lo, hi, labels)
    x = torch.tensor([[1, 1], [6, 6], [6, 6]])
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert c.rows({"x": x, "s": s}).tolist() == [True, True, False]
    assert torch.equal(c.rows({"x": x, "s": s}), ref_class_rows(x.float(), s, lo, hi, labels))


def test_large_cpu_activations_are_reduced_first_and_small_ones_clamped():
    """Which range form an envelope takes is metadata of the shape (kept per
    shape): amin/amax first on large CPU activations, clamp(t) - t elsewhere."""
    from modpact.runtime._buffer import range_violated

    conv = envelope("x", torch.zeros(8, 1, 1), torch.ones(8, 1, 1))
    big = torch.rand(2, 8, 8, 8)  # 64 values per channel and sample
    assert conv._reduced_dims(big) == (0, 2, 3)
    form, lo, hi = conv.device_range({"x": big})
    assert form.shape == (1, 8, 1, 1) and (lo, hi) == (-math.inf, 0.0)
    assert not bool(range_violated(form, lo, hi, False))
    for bad_value in (math.nan, 1.5, -0.25, math.inf):
        bad = big.clone()
        bad[1, 3, 7, 2] = bad_value
        form, lo, hi = conv.device_range({"x": bad})
        assert bool(range_violated(form, lo, hi, False)), bad_value
    assert conv._reduced_dims(torch.rand(2, 8, 4, 4)) == ()  # 16 values per channel: the clamp form
    feats = envelope("x", torch.zeros(4), torch.ones(4))
    assert feats._reduced_dims(torch.rand(1024, 4)) == (0,)
    assert feats._reduced_dims(torch.rand(256, 4)) == ()
    assert feats._reduced_dims(torch.rand(1024, 4, device="meta")) == ()  # CPU only
