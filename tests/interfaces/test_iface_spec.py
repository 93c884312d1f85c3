import math

import pytest
import torch

from modpact.interfaces import Bindings, LabelSpace, TensorSpec
from modpact.interfaces import values as V


def fields(problems):
    return sorted(p.field for p in problems)


def test_dtype_forms():
    assert TensorSpec("n", dtype=torch.float32).dtype == "float32"
    assert TensorSpec("n", dtype="float").dtype == "float32"  # torch alias
    assert TensorSpec("n", dtype={"float16", "bfloat16"}).dtype == ("bfloat16", "float16")
    assert TensorSpec("n", dtype=["floating", "any"]).dtype == "any"
    s = TensorSpec("n", dtype="floating")
    assert s.check(torch.zeros(2, dtype=torch.bfloat16)) == []
    assert fields(s.check(torch.zeros(2, dtype=torch.int64))) == ["dtype"]
    assert TensorSpec("n", dtype="signed").check(torch.zeros(2, dtype=torch.uint8))[0].actual == "uint8"
    assert TensorSpec("n", dtype="integer").check(torch.zeros(2, dtype=torch.uint8)) == []


def test_device_and_type():
    s = TensorSpec("n", device="cuda")
    p = s.check(torch.zeros(2))
    assert fields(p) == ["device"] and p[0].actual == "cpu"
    assert TensorSpec("n", device=torch.device("cpu")).device == "cpu"
    assert fields(TensorSpec("n").check([1, 2])) == ["type"]


def test_value_domains_and_evidence():
    t = torch.tensor([[0.5, float("nan"), 2.0], [1.0, 3.0, -1.0]])
    s = TensorSpec("2 3", finite=True, range=(0, 2))
    ps = {p.field: p for p in s.check(t, name="inputs.x")}
    assert ps["finite"].actual == "1 of 6 failing"
    assert "first at (0, 1) = nan" in ps["finite"].detail
    assert ps["range"].expected == "values in [0, 2]"
    assert ps["range"].actual == "3 of 6 failing"  # nan, 3.0, -1.0
    assert "min=-1" in ps["range"].detail and "max=3" in ps["range"].detail
    assert s.check(torch.tensor([[0.0, 1, 2], [2, 1, 0]])) == []


def test_simplex_and_indices():
    p = torch.softmax(torch.randn(4, 5), -1)
    s = TensorSpec("b k", simplex=-1)
    assert s.check(p) == []
    bad = p.clone()
    bad[2, 0] += 0.5
    [prob] = s.check(bad)
    assert prob.field == "simplex" and prob.actual == "1 of 4 failing" and "first at (2,)" in prob.detail
    idx = TensorSpec("b", dtype="int64", indices=3)
    assert idx.check(torch.tensor([0, 2, 1])) == []
    [prob] = idx.check(torch.tensor([0, 3, -1]))
    assert prob.actual == "2 of 3 failing" and "first at (1,) = 3" in prob.detail


def test_labels_axis_size():
    ls = LabelSpace("rgb", ["r", "g", "b"])
    s = TensorSpec("batch k", labels=ls)
    assert s.check(torch.zeros(2, 3)) == []
    [p] = s.check(torch.zeros(2, 4))
    assert p.field == "labels" and p.actual == "4"


def test_value_ok_is_device_tensor_and_agrees():
    s = TensorSpec("...", finite=True, range=(-1, 1))
    ok = s.value_ok(torch.zeros(3))
    assert isinstance(ok, torch.Tensor) and ok.dim() == 0 and ok.dtype == torch.bool and bool(ok)
    assert not bool(s.value_ok(torch.tensor([0.0, float("inf")])))
    assert TensorSpec("...").value_ok(torch.zeros(3)) is None
    assert bool(TensorSpec("...", simplex=0).value_ok(torch.tensor([0.25, 0.75])))
    assert not bool(TensorSpec("...", dtype="integer", indices=2).value_ok(torch.tensor([0, 2])))


@pytest.mark.parametrize(
    "ok_fn,ev_fn,args,good,bad",
    [
        (V.finite_ok, V.finite_evidence, (), [1.0, 2.0], [1.0, math.inf]),
        (V.range_ok, V.range_evidence, (0, 1), [0.0, 1.0], [0.0, 1.5]),
        (V.nonnegative_ok, V.nonnegative_evidence, (), [0.0, 1.0], [-0.1, 1.0]),
        (V.simplex_ok, V.simplex_evidence, (-1, 1e-4), [0.3, 0.7], [0.3, 0.8]),
        (V.indices_ok, V.indices_evidence, (2,), [0, 1], [0, 2]),
    ],
    ids=["finite", "range", "nonnegative", "simplex", "indices"],
)
def test_values_primitives(ok_fn, ev_fn, args, good, bad):
    assert bool(ok_fn(torch.tensor(good), *args)) and ev_fn(torch.tensor(good), *args)["failing"] == 0
    ev = ev_fn(torch.tensor(bad), *args)
    assert not bool(ok_fn(torch.tensor(bad), *args))
    assert ev["failing"] == 1 and "first_index" in ev and "of" in ev


def test_finite_evidence_shape():
    ev = V.finite_evidence(torch.tensor([[1.0, 2.0, float("nan")], [4.0, float("inf"), 0.0]]))
    assert ev["failing"] == 2 and ev["of"] == 6 and ev["first_index"] == (0, 2)
    assert math.isnan(ev["first_value"]) and ev["min"] == 0.0 and ev["max"] == 4.0


def test_value_ok_traces_fullgraph():
    import torch._dynamo

    spec = TensorSpec("b k", finite=True, range=(0, 1), simplex=-1)

    def f(x):
        return spec.value_ok(x)

    torch._dynamo.reset()
    explained = torch._dynamo.explain(f)(torch.softmax(torch.randn(3, 4), -1))
    assert explained.graph_break_count == 0 and explained.graph_count == 1

    def g(x):
        return V.indices_ok(x, 5) & V.nonnegative_ok(x)

    torch._dynamo.reset()
    assert torch._dynamo.explain(g)(torch.tensor([1, 2])).graph_break_count == 0


def test_check_owns_bindings_and_resolves_expressions():
    s = TensorSpec("n n+1")
    assert s.check(torch.zeros(2, 3)) == []
    assert fields(s.check(torch.zeros(2, 4))) == ["shape"]
    b = Bindings()
    assert s.metadata_problems(torch.zeros(2, 3), b, "x") == [] and b.pending
