"""CUDA graphs: a monitored call captured into a graph is refused with the
reason (its checks would run at each replay with no Python to read them).

The refusal's logic runs on the CPU here with ``capturing()`` patched; the
capture itself needs a GPU (``cuda`` tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo import MLP, example_input

import modpact.contracts as C
from modpact.errors import MonitorError
from modpact.runtime import Monitor, _buffer
from modpact.runtime._buffer import CAPTURE_REFUSED, FlagBuffer, capturing

REFUSED_CALL = f"Monitor: a call of the model: {CAPTURE_REFUSED}"


def test_the_refusal_says_why_and_what_to_do():
    assert CAPTURE_REFUSED == (
        "a monitored call is being captured into a CUDA graph: the Monitor's checks would run at each replay "
        "with no Python to read their verdicts, so a NaN in a replay would go unreported; capture the model "
        "outside the Monitor (exit it first), or run it without the graph while monitoring"
    )


def test_capturing_is_false_without_cuda_and_initialises_nothing():
    if torch.cuda.is_initialized():
        pytest.skip("CUDA is initialised in this process")
    assert capturing() is False
    assert not torch.cuda.is_initialized()


@pytest.mark.parametrize("leaf_checks", ["on_violation", "every_call"])
def test_a_call_captured_under_a_monitor_is_refused_and_leaves_no_violation(monkeypatch, leaf_checks):
    model = MLP()
    x = example_input(model, 4)
    with Monitor(model, defaults=True, leaf_checks=leaf_checks) as mon:
        model(x)
        with monkeypatch.context() as mp:
            mp.setattr(_buffer, "capturing", lambda: True)
            with pytest.raises(MonitorError) as info:
                model(x)
        assert str(info.value) == REFUSED_CALL
        with torch.no_grad():
            model.body[2].weight[0, 0] = float("nan")
        model(x)  # the lane was released: the next call runs and is checked
        mon.step()
    report = mon.report()
    assert not any(v.kind == "exception" for v in report.violations), str(report)
    assert report.root_cause is not None and report.root_cause.module == "body.2", str(report)


def test_a_guarded_module_called_alone_under_capture_is_refused(monkeypatch):
    """Outside a call of the model the buffer refuses the deferred checks itself."""
    monkeypatch.setattr(_buffer.FlagBuffer.__init__, "__defaults__", (False,))  # host_compare=False: deferred
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    C.guard(model[1], ensures=[C.in_range("result", -1e3, 1e3)], name="1")
    with Monitor(model, defaults=True):
        model(torch.rand(2, 4))
        monkeypatch.setattr(_buffer, "capturing", lambda: True)
        with pytest.raises(MonitorError, match="a monitored call is being captured into a CUDA graph"):
            model[1](torch.rand(2, 4))
        monkeypatch.setattr(_buffer, "capturing", lambda: False)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(lambda b: b.add_range(torch.rand(3), "e"), id="finite-sum"),
        pytest.param(lambda b: b.add_range(torch.rand(3), "e", lo=0.0, hi=1.0), id="range"),
        pytest.param(lambda b: b.add_ok(torch.tensor(True), "e"), id="verdict"),
    ],
)
def test_deferred_checks_are_refused_while_capturing_and_host_read_ones_are_not(monkeypatch, record):
    monkeypatch.setattr(_buffer, "capturing", lambda: True)
    with pytest.raises(MonitorError, match="being captured into a CUDA graph"):
        record(FlagBuffer(host_compare=False))
    host = FlagBuffer(host_compare=True)  # CPU tensors compared on the host: no device work to capture
    record(host)
    host.flush()
    assert host.poll() == []


@pytest.mark.cuda
def test_cuda_graph_capture_of_a_monitored_model_is_refused_and_works_after_exit():
    model = MLP().cuda()
    x = example_input(model, 8).cuda()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as torch.cuda.graph asks
        model(x)
    torch.cuda.current_stream().wait_stream(stream)
    with Monitor(model, defaults=True, leaf_checks="every_call", replay=False) as mon:
        model(x)
        mon.step()
        graph = torch.cuda.CUDAGraph()
        with pytest.raises(MonitorError, match="being captured into a CUDA graph"):
            with torch.cuda.graph(graph):
                model(x)
    assert mon.report().ok
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # outside the Monitor the capture works
        out = model(x)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.isfinite(out).all()
