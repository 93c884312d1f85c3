"""The Monitor's fixed cost, counted: the torch ops it adds to a forward and
runs at ``step()``, on the flag buffer's deferred path (``host_compare=False``:
what it does on CUDA, where each op is a kernel launch and a host read is a
sync). A change that adds an op, an allocation or a host read per call or per
step fails here; the figures are in docs/performance.md."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from op_count import Ops, monitored_ops
from zoo import MLP, SmallResNet, TinyTransformer, example_input

from modpact.runtime import Monitor, _buffer
from modpact.runtime._buffer import FlagBuffer

# ops that read a value back to the host: a sync on CUDA
HOST_READS = {
    "aten._local_scalar_dense.default",
    "aten.item.default",
    "aten.nonzero.default",
    "aten.is_nonzero.default",
}


@pytest.fixture(autouse=True)
def deferred(monkeypatch):
    monkeypatch.setattr(_buffer.FlagBuffer.__init__, "__defaults__", (False,))  # host_compare=False


def _count(model, x, leaf_checks):
    with monitored_ops(model, x, leaf_checks) as (bare, fwd, step, mon):
        pass
    assert mon.report().ok
    return fwd.ops - bare.ops, fwd.allocating - bare.allocating, step


@pytest.mark.parametrize("make", [MLP, SmallResNet, TinyTransformer], ids=["mlp", "resnet", "transformer"])
def test_a_steady_call_adds_one_sum_in_place_and_a_step_one_copy(make):
    torch.manual_seed(0)
    model = make()
    extra, allocating, step = _count(model, example_input(model, 8), "on_violation")
    assert extra == Counter({"aten.sum.IntList_out": 1}), extra  # the model's output, into its cell
    assert not allocating, allocating
    assert step.ops == Counter({"aten.copy_.default": 1}), step.ops  # the cells to the host, at once
    assert not step.allocating, step.allocating


def test_every_call_adds_one_sum_per_checked_leaf_and_still_one_copy_per_step():
    torch.manual_seed(0)
    model = MLP()
    extra, allocating, step = _count(model, example_input(model, 8), "every_call")
    leaves = sum(1 for m in model.modules() if not list(m.children()))
    assert set(extra) == {"aten.sum.IntList_out"} and 1 <= extra["aten.sum.IntList_out"] <= leaves, extra
    assert not allocating, allocating
    assert step.ops == Counter({"aten.copy_.default": 1}), step.ops
    assert not step.allocating, step.allocating


def test_no_host_read_in_a_forward_or_a_step():
    torch.manual_seed(0)
    model = MLP()
    x = example_input(model, 8)
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        model(x)
        mon.step()
        with Ops() as ops:
            for _ in range(2):
                model(x)
                mon.step()
    assert not [op for op in ops.ops if op in HOST_READS], ops.ops


def test_the_host_copies_are_reused_and_a_nan_still_comes_back():
    buf = FlagBuffer(host_compare=False)
    for _ in range(5):
        buf.add_range(torch.ones(3), "sum")
        buf.add_range(torch.ones(3), "range", 0.0, 2.0)
        buf.flush()
        assert buf.poll() == []
    assert [len(g.free) for g in buf._groups.values()] == [1, 1]  # one host copy per group, reused
    bad = torch.ones(3)
    bad[1] = float("nan")
    buf.add_range(bad, "nan")
    buf.add_range(torch.tensor([3.0]), "above", 0.0, 2.0)
    buf.flush()
    assert sorted(buf.poll()) == ["above", "nan"]
