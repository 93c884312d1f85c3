"""The compiled call plan (``Guard.plan``) accepts exactly what the full check accepts.

A guard's happy path runs generated code (``contracts/_fastmeta.py``); on
anything it does not certainly accept, the full check runs from the start. So
a guard gives the same outcome, message and blame with its plan as without:
these tests guard the same module twice, once with ``plan = None`` (the full
check on every call), and compare; and they compare the plan's own verdicts
with the Interface's and the conditions' checks directly.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import modpact.contracts as mc
from modpact.contracts.conditions import Finite
from modpact.errors import ContractViolation
from modpact.interfaces import Interface, LabelSpace, TensorSpec

DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool]
DTYPE_SPECS = ["float32", "floating", "int64", "any", ("float32", "float64")]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nested tensors are a prototype
    NESTED = [
        torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(1, 3)]),
        torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(1, 3)], layout=torch.jagged),
    ]


class Echo(nn.Module):
    """Returns the outputs it was built with, whatever it is given."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, y=None):
        return self.out


# --- drawing specs and the values around them --------------------------------
dim = st.one_of(st.integers(1, 3).map(str), st.sampled_from(["a", "b", "_"]))
shape = st.lists(dim, min_size=0, max_size=3).map(" ".join)


@st.composite
def spec(draw):
    device = draw(st.sampled_from(["any", "cpu", "meta"]))
    return TensorSpec(draw(shape), dtype=draw(st.sampled_from(DTYPE_SPECS)), device=device)


@st.composite
def value_for(draw, s: TensorSpec, sizes: dict[str, int]):
    """A value near ``s``: most often it fits (dims bound through ``sizes``), else something is off."""
    kind = draw(st.sampled_from(["fit"] * 6 + ["size", "rank", "dtype", "device", "other", "nested"]))
    if kind == "other":
        return draw(st.sampled_from([None, 3.0, "x", (torch.ones(1),)]))
    if kind == "nested":
        return draw(st.sampled_from(NESTED))
    dims = []
    for d in s.shape:
        if d.kind == "fixed":
            dims.append(d.size)
        elif d.kind == "named":
            dims.append(sizes.setdefault(d.name, draw(st.integers(1, 3))))
        else:
            dims.append(draw(st.integers(1, 3)))
    if kind == "size" and dims:
        i = draw(st.integers(0, len(dims) - 1))
        dims[i] = dims[i] % 3 + 1
    if kind == "rank":
        dims = dims + [1] if draw(st.booleans()) or not dims else dims[:-1]
    allowed = [d for d in DTYPES if d in s.allowed]
    dtype = draw(st.sampled_from(DTYPES if kind == "dtype" or not allowed else allowed))
    device = "meta" if s.device == "meta" else "cpu"
    if kind == "device":
        device = "cpu" if device == "meta" else "meta"
    t = torch.zeros(dims, dtype=dtype, device=device)
    if device == "cpu" and t.is_floating_point() and t.numel():
        special = draw(st.sampled_from([None] * 4 + [math.nan, math.inf, -math.inf, 1.0]))
        if special is not None:
            t.view(-1)[draw(st.integers(0, t.numel() - 1))] = special
    return t


def _finite_of(names: list[str]) -> list:
    return [mc.finite(*names)] if names else []


@st.composite
def case(draw):
    n_in, n_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ins = {k: draw(spec()) for k in ("x", "y")[:n_in]}
    outs = {k: draw(spec()) for k in ("out", "aux")[:n_out]}
    iface = Interface("drawn", inputs=ins, outputs=outs)
    sizes: dict[str, int] = {}
    args = [draw(value_for(s, sizes)) for s in ins.values()]
    result = [draw(value_for(s, sizes)) for s in outs.values()]
    requires = _finite_of(draw(st.lists(st.sampled_from(list(ins)), max_size=2, unique=True)))
    names = ["result", *outs] if n_out == 1 else list(outs)
    ensures = _finite_of(draw(st.lists(st.sampled_from(names), max_size=2, unique=True)))
    keywords = draw(st.booleans())
    return iface, args, (result[0] if n_out == 1 else tuple(result)), requires, ensures, keywords


def _outcome(module, args, keywords):
    kwargs = dict(zip(("x", "y"), args)) if keywords else {}
    try:
        module(*(() if keywords else args), **kwargs)
    except (ContractViolation, TypeError) as e:
        return type(e).__name__, str(e)
    return "ok", ""


def _guarded(iface, result, requires, ensures, plan: bool):
    m = mc.guard(Echo(result), interface=iface, requires=requires, ensures=ensures, name="echo")
    if not plan:
        mc.get_guard(m).plan = None
    return m


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_a_guard_with_its_plan_gives_what_the_full_check_gives(c):
    iface, args, result, requires, ensures, keywords = c
    fast = _guarded(iface, result, requires, ensures, plan=True)
    assert mc.get_guard(fast).plan is not None
    full = _guarded(iface, result, requires, ensures, plan=False)
    assert _outcome(fast, args, keywords) == _outcome(full, args, keywords)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_the_plan_accepts_exactly_what_the_interface_and_conditions_accept(c):
    """Directly: ``pre`` accepts iff the inputs fit and the preconditions hold; ``post``
    (after an accepted ``pre``) iff the outputs fit with the same dims and the postconditions hold.
    Values the plan leaves to the full check (non-tensors, nested and meta tensors under
    ``finite``) count as not accepted, and the full check must then find something wrong or
    be unable to say (it raises)."""
    iface, args, result, requires, ensures, keywords = c
    g = mc.get_guard(_guarded(iface, result, requires, ensures, plan=True))
    plan = g.plan
    kwargs = dict(zip(("x", "y"), args)) if keywords else {}
    call = (() if keywords else tuple(args), kwargs)
    env = g.binder.bind(*call)
    problems, bindings = iface.input_problems(g.input_values(env), values_too=False)
    try:
        pre_ok = not problems and all(c.ok(env) for c in requires)
    except Exception:  # finite() on something that is not a tensor: a ContractError in the full check
        pre_ok = None
    frame = plan.pre(*call)
    if pre_ok is None:
        assert frame is None
        return
    assert (frame is not None) == pre_ok
    if frame is None:
        return
    assert plan.binds(frame) == bindings.values_dict()
    problems, _ = iface.output_problems(result, bindings, values_too=False)
    env["result"] = result
    for k, v in g.named_outputs(result).items():
        env.setdefault(k, v)
    try:
        post_ok = not problems and all(c.ok(env) for c in ensures)
    except Exception:
        post_ok = None
    assert plan.post(frame, result) == bool(post_ok)


# --- cases by name -------------------------------------------------------------
L3 = LabelSpace("abc", ["a", "b", "c"])
SHARED = Interface(
    "shared",
    inputs={"x": TensorSpec("n d", dtype="floating"), "y": TensorSpec("n", dtype="int64")},
    outputs={"out": TensorSpec("n 3", dtype="float32", labels=L3), "aux": TensorSpec("d", dtype="any")},
)


@pytest.mark.parametrize(
    "args, result",
    [
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), (torch.ones(4, 3), torch.ones(2))),
        ((torch.ones(4, 2), torch.zeros(5, dtype=torch.long)), (torch.ones(4, 3), torch.ones(2))),  # n in inputs
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), (torch.ones(5, 3), torch.ones(2))),  # n in out
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), (torch.ones(4, 3), torch.ones(3))),  # d in aux
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), (torch.ones(4, 4), torch.ones(2))),  # labels
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), (torch.ones(4, 3).double(), torch.ones(2))),
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), [torch.ones(4, 3), torch.ones(2)]),  # a list
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), {"out": torch.ones(4, 3), "aux": torch.ones(2)}),
        ((torch.ones(4, 2), torch.zeros(4, dtype=torch.long)), torch.ones(4, 3)),  # one value for two
    ],
    ids=["fits", "n-in", "n-out", "d-out", "labels", "dtype-out", "list", "dict", "count"],
)
def test_dims_shared_between_inputs_and_outputs(args, result):
    fast = _guarded(SHARED, result, [mc.finite("x")], [mc.finite("out")], plan=True)
    full = _guarded(SHARED, result, [mc.finite("x")], [mc.finite("out")], plan=False)
    for keywords in (False, True):
        assert _outcome(fast, args, keywords) == _outcome(full, args, keywords)


def test_the_plan_is_straight_line_code_for_the_common_case():
    iface = Interface("lin", inputs={"x": TensorSpec("batch 64")}, outputs={"y": TensorSpec("batch 10")})
    plan = mc.get_guard(mc.guard(nn.Linear(64, 10), interface=iface, ensures=[mc.finite("y")])).plan
    assert "for " not in plan.source and "_pre_any" in plan.source
    x = torch.ones(8, 64)
    frame = plan.pre((x,), {})
    assert frame is not None and plan.binds(frame) == {"batch": 8}
    assert plan.post(frame, torch.ones(8, 10)) is True
    assert plan.post(frame, torch.ones(7, 10)) is False
    assert plan.post(frame, torch.full((8, 10), math.nan)) is False


def test_what_the_plan_does_not_cover_is_not_compiled():
    nested = Interface("n", inputs={"x": TensorSpec("*b 3")}, outputs={"y": TensorSpec("b")})
    assert mc.get_guard(mc.guard(Echo(None), interface=nested)).plan is None  # variadic dims
    valued = Interface("v", inputs={"x": TensorSpec("b", range=(0, 1))}, outputs={"y": TensorSpec("b")})
    assert mc.get_guard(mc.guard(Echo(None), interface=valued)).plan is None  # a value domain
    custom = mc.guard(Echo(None), requires=[lambda x: x is not None])
    assert mc.get_guard(custom).plan is None  # a condition other than finite
    assert mc.get_guard(mc.guard(Echo(None), requires=[mc.finite("x")])).plan is not None


def test_an_overflowing_sum_is_not_taken_for_a_non_finite_value():
    big = torch.full((4,), 6e4, dtype=torch.float16)  # finite, but its float16 sum is inf
    m = mc.guard(Echo(big), requires=[mc.finite("x")], ensures=[mc.finite("result")])
    assert torch.equal(m(big), big)


def test_nested_tensors_get_the_full_check_s_message():
    iface = Interface("nt", inputs={"x": TensorSpec("b _ 3")}, outputs={"y": TensorSpec("b")})
    for nt in NESTED:
        outcomes = [_outcome(_guarded(iface, torch.ones(2), [], [], plan=p), [nt], False) for p in (True, False)]
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][0] == "InterfaceViolation" and "a nested tensor has no fixed shape" in outcomes[0][1]


@pytest.mark.parametrize("mode", ["warn", "record"])
def test_modes_that_do_not_raise_report_the_same_with_the_plan(mode):
    iface = Interface("m", inputs={"x": TensorSpec("b 2")}, outputs={"z": TensorSpec("b")})
    texts = []
    for plan in (True, False):
        mc.clear_recorded()
        m = mc.guard(Echo(torch.ones(3)), interface=iface, ensures=[mc.finite("z")], mode=mode, name="echo")
        if not plan:
            mc.get_guard(m).plan = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m(torch.ones(2, 2))  # z has 3 rows for b=2
            m(torch.ones(3, 2))  # fits
        texts.append([str(w.message) for w in caught] + [str(v) for v in mc.recorded()])
    assert texts[0] == texts[1] and len(texts[0]) == 1


def test_finite_plan_helper_matches_finite_ok():
    from modpact.contracts._fastmeta import finite_fast

    for t in [torch.ones(3), torch.tensor([1.0, math.nan]), torch.tensor([math.inf]), torch.ones(2, dtype=torch.long)]:
        assert finite_fast(t) == Finite(("x",)).ok({"x": t})
    assert finite_fast(torch.ones(2, dtype=torch.complex64)) is False  # left to Finite.ok
    assert finite_fast(torch.ones(2, device="meta")) is False


@pytest.mark.parametrize("copy_with", ["deepcopy", "pickle"])
def test_a_copied_guard_has_its_own_plan_and_still_checks(copy_with):
    import copy
    import pickle

    iface = Interface("lin", inputs={"x": TensorSpec("batch 4")}, outputs={"y": TensorSpec("batch 2")})
    m = mc.guard(nn.Linear(4, 2), interface=iface, ensures=[mc.finite("y")])
    c = copy.deepcopy(m) if copy_with == "deepcopy" else pickle.loads(pickle.dumps(m))
    g, h = mc.get_guard(m), mc.get_guard(c)
    assert h.plan is not None and h.plan is not g.plan
    assert c(torch.ones(3, 4)).shape == (3, 2)
    with pytest.raises(mc.InterfaceViolation, match="shape expected batch 4"):
        c(torch.ones(3, 5))


def test_a_jagged_nested_tensor_does_not_slip_through_the_metadata_fast_path():
    """The fast path once read a jagged tensor's shape (2, j1, 3) as fitting "b _ 3"."""
    from modpact.contracts._fastmeta import compile_side

    plan = compile_side({"x": TensorSpec("b _ 3")})
    assert plan is not None
    for nt in NESTED:
        assert plan.run({"x": nt}, {}) is None


class Widen(nn.Module):
    """Returns ``n`` copies of each row: an output dim set by the module, not the inputs."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        return x[:, :1].expand(-1, self.n).contiguous()


@pytest.mark.parametrize("compiled", [True, False])
def test_declared_dims_bounds_are_checked_by_the_plan_on_inputs_and_outputs(compiled):
    iface = Interface(
        "widen", {"x": TensorSpec("batch 4")}, {"y": TensorSpec("batch n")}, dims={"batch": (2, 8), "n": (1, 3)}
    )
    for n, x, broken in [
        (3, torch.ones(2, 4), None),
        (3, torch.ones(9, 4), "inputs.x[0]: dims expected dim batch in [2, 8]"),
        (5, torch.ones(2, 4), "outputs.y[1]: dims expected dim n in [1, 3]"),
    ]:
        m = mc.guard(Widen(n), interface=iface)
        guard = mc.get_guard(m)
        assert guard.plan is not None
        if compiled:
            assert "d0 < 2 or d0 > 8" in guard.plan.source  # the bound is in the generated code
        else:
            guard.plan = None
        if broken is None:
            assert m(x).shape == (2, n)
        else:
            with pytest.raises(ContractViolation, match=broken.replace("[", r"\[").replace("]", r"\]")):
                m(x)
