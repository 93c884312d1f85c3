"""Each built-in condition: one case where it holds, one where it fails."""

import inspect
import json

import pytest
import torch
from torch import nn

import modpact.contracts as mc
from modpact.contracts import Condition
from modpact.contracts import conditions as C
from modpact.contracts.binding import Binder
from modpact.contracts.condition import BINDER, CALL
from modpact.errors import SpecError
from modpact.interfaces import LabelSpace


def _env(fn=None, **values):
    env = dict(values)
    if fn is not None:
        sig = inspect.signature(fn.forward if isinstance(fn, nn.Module) else fn)
        env[CALL] = fn
        env[BINDER] = Binder(sig)
    return env


X = torch.arange(12.0).reshape(3, 4) / 12
NAN = X.clone()
NAN[1, 2] = float("nan")
PROBS = torch.softmax(torch.randn(4, 5), dim=-1)
DIGITS = LabelSpace("digits", [str(i) for i in range(10)])


class RowSum(nn.Module):
    def forward(self, x):
        return x.sum(dim=1, keepdim=True) * 2


class BatchMix(nn.Module):
    def forward(self, x):
        return x - x.mean(dim=0, keepdim=True)


class Neg(nn.Module):
    def forward(self, x):
        return -x


class Steep(nn.Module):
    def forward(self, x):
        return 50 * x


CASES = [
    # (id, condition, env that holds, env that fails)
    ("finite", C.finite("x"), _env(x=X), _env(x=NAN)),
    ("finite-tuple", C.finite("result"), _env(result=(X, X)), _env(result=(X, NAN))),
    ("in_range", C.in_range("x", 0, 1), _env(x=X), _env(x=X + 0.5)),
    ("nonnegative", C.nonnegative("x"), _env(x=X), _env(x=X - 0.5)),
    ("simplex", C.simplex("p"), _env(p=PROBS), _env(p=PROBS * 2)),
    ("norm_at_most", C.norm_at_most("x", 1.0, dim=1), _env(x=X / 10), _env(x=X * 10)),
    ("shape_preserved", C.shape_preserved("x"), _env(x=X, result=X * 2), _env(x=X, result=X[:, :2])),
    ("dtype_preserved", C.dtype_preserved("x"), _env(x=X, result=X * 2), _env(x=X, result=X.double())),
    (
        "labels_within-int",
        C.labels_within(DIGITS),
        _env(result=torch.tensor([0, 9, 3])),
        _env(result=torch.tensor([0, 10])),
    ),
    ("labels_within-scores", C.labels_within(DIGITS), _env(result=torch.zeros(2, 10)), _env(result=torch.zeros(2, 9))),
    ("mostly", C.mostly(C.finite("x"), 0.6), _env(x=NAN), _env(x=X * float("nan"))),
    ("mostly-lambda", C.mostly(lambda x: x.sum(1) > 0.5, 0.6), _env(x=X), _env(x=X * 0)),
    (
        "batch_independent",
        C.batch_independent("x"),
        _env(RowSum(), x=X, result=RowSum()(X)),
        _env(BatchMix(), x=X, result=BatchMix()(X)),
    ),
    (
        "invariant_under",
        C.invariant_under(lambda x: x.flip(1)),
        _env(RowSum(), x=X, result=RowSum()(X)),
        _env(Neg(), x=X, result=Neg()(X)),
    ),
    (
        "equivariant_under",
        C.equivariant_under(lambda x: x.flip(0)),
        _env(Neg(), x=X, result=Neg()(X)),
        _env(RowSum(), x=X, result=RowSum()(X) + torch.arange(3.0)[:, None]),
    ),
    ("monotone", C.monotone("x"), _env(RowSum(), x=X, result=RowSum()(X)), _env(Neg(), x=X, result=Neg()(X))),
    (
        "lipschitz_at_most",
        C.lipschitz_at_most(3.0, samples=2),
        _env(Neg(), x=X, result=Neg()(X)),
        _env(Steep(), x=X, result=Steep()(X)),
    ),
    ("agrees_with-tol", C.agrees_with(Neg(), tol=1e-6), _env(Neg(), x=X, result=-X), _env(Neg(), x=X, result=X)),
    (
        "agrees_with-top1",
        C.agrees_with(nn.Identity(), top1=0.9),
        _env(Neg(), x=PROBS, result=PROBS * 3),
        _env(Neg(), x=PROBS, result=-PROBS),
    ),
]


@pytest.mark.parametrize("cond, good, bad", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_condition_holds_and_fails(cond, good, bad):
    assert cond.ok(good) is True
    assert cond.check(good).ok
    assert cond.ok(bad) is False
    out = cond.check(bad)
    assert not out.ok
    # device form agrees, and never returns a multi-element tensor
    for env, want in ((good, True), (bad, False)):
        d = cond.device_ok(env)
        if isinstance(d, torch.Tensor):
            assert d.dtype == torch.bool and d.ndim == 0
        assert bool(d) is want


def test_value_evidence_counts_and_first_index():
    out = C.finite("x").check(_env(x=NAN))
    assert out.evidence["failing"] == 1 and out.evidence["of"] == 12
    assert out.evidence["first_index"] == (1, 2)
    assert "nan=1" in out.values["x"]


def test_finite_fast_path_falls_back_on_overflow():
    big = torch.full((4,), 3e38)  # sum overflows to inf, but every element is finite
    assert C.finite("x").ok(_env(x=big)) is True


def test_value_condition_device_ok_is_a_0dim_tensor_without_sync():
    d = C.in_range("x", 0, 1).device_ok(_env(x=X))
    assert isinstance(d, torch.Tensor) and d.shape == ()
    assert C.shape_preserved("x").device_ok(_env(x=X, result=X)) is True  # metadata: Python bool


@pytest.mark.parametrize(
    "cond",
    [
        C.finite("x", "y"),
        C.in_range("x", 0, 16),
        C.simplex("p", dim=1, tol=1e-3),
        C.nonnegative("x"),
        C.norm_at_most("z", 2.5, p=1, dim=-1),
        C.shape_preserved("x"),
        C.dtype_preserved("x", "y"),
        C.labels_within(DIGITS),
        C.mostly(C.finite("x"), 0.9),
        C.batch_independent(["x", "m"]),
        C.monotone("x", increasing=False),
        C.lipschitz_at_most(2.0, samples=3),
    ],
    ids=lambda c: c.name,
)
def test_serializable_round_trip(cond):
    d = json.loads(json.dumps(cond.to_dict()))
    assert d["serializable"] is True
    again = Condition.from_dict(d)
    assert type(again) is type(cond) and again.to_dict()["params"] == d["params"]


@pytest.mark.parametrize(
    "cond",
    [C.invariant_under(lambda x: x.flip(0)), C.agrees_with(nn.Identity()), mc.as_condition(lambda x: x.ndim == 2)],
    ids=["transform", "module", "lambda"],
)
def test_conditions_holding_callables_are_not_serializable(cond):
    d = json.loads(json.dumps(cond.to_dict()))
    assert d["serializable"] is False
    with pytest.raises(SpecError, match="non-serializable"):
        Condition.from_dict(d)


def test_lambda_text_is_its_source():
    c = mc.as_condition(lambda x, y: x.shape == y.shape)
    assert c.text == "lambda x, y: x.shape == y.shape"
    assert c.reads == ("x", "y") and c.serializable is False


def test_lambda_returning_1_element_tensor_gives_0dim_device_flag():
    c = mc.as_condition(lambda x: (x >= 0).all().reshape(1))
    d = c.device_ok(_env(x=X))
    assert d.shape == () and d.dtype == torch.bool


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda x: x > 0, "a tensor with 12 elements"),
        (lambda x: x.sum(), "not a boolean"),
        (lambda x: None, "NoneType"),
    ],
    ids=["many-elements", "float-tensor", "none"],
)
def test_non_boolean_results_are_type_errors(fn, match):
    c = mc.as_condition(fn)
    with pytest.raises(TypeError, match=match):
        c.ok(_env(x=X))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: C.in_range("x", 2, 1), r"Cannot have in_range\('x', lo=2, hi=1\) with hi < lo"),
        (lambda: C.in_range("x"), "give lo, hi or both"),
        (lambda: C.simplex("p", tol=-1), "simplex\\(tol=-1\\) < 0"),
        (lambda: C.finite("not a name"), "identifier"),
        (lambda: C.mostly(C.finite("x"), 1.5), "outside \\[0, 1\\]"),
        (lambda: C.mostly(C.shape_preserved("x"), 0.5), "no per-row form"),
        (lambda: C.lipschitz_at_most(1.0, samples=0), "positive int"),
        (lambda: mc.as_condition("x > 0"), "did you pass the reason first"),
        (lambda: Condition.from_dict({"name": "nope", "params": {}}), "Unknown condition name 'nope'"),
    ],
    ids=["range-order", "range-empty", "tol", "name", "fraction", "no-rows", "samples", "string", "unknown"],
)
def test_bad_condition_arguments(build, match):
    with pytest.raises(SpecError, match=match):
        build()


def test_declared_at_points_at_user_code():
    c = C.finite("x")
    assert c.declared_at.endswith(f"test_conditions.py:{inspect.currentframe().f_lineno - 1}")
