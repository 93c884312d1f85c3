"""Bounded memory in long runs, with and without step(): kept calls, dataflow,
warnings and records."""

import tracemalloc
import warnings
import weakref

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.contracts import _modes
from modpact.runtime import Monitor
from modpact.runtime.calls import MAX_KEPT

STEPS = 10_000


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.slow
@pytest.mark.parametrize(
    "leaf_checks, step, steps",
    [("on_violation", False, STEPS), ("every_call", True, STEPS // 10)],
    ids=["on_violation-no-step", "every_call-step"],
)
def test_a_long_clean_run_keeps_no_inputs_and_grows_nothing(leaf_checks, step, steps):
    model = _model()
    alive: list[weakref.ref] = []
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks=leaf_checks) as mon:
        for _ in range(100):  # warm-up: the first call, slots, caches
            model(torch.rand(64, 256))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(steps):
            x = torch.rand(64, 256)  # 64 KB a call: 640 MB over 10,000 calls if they were kept
            if i % 1000 == 0:
                alive.append(weakref.ref(x))
            model(x)
            if step:
                mon.step()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(mon._hooks.calls.kept) <= 1 and len(mon._hooks.calls.flow.edges) <= 3
        assert sum(r() is not None for r in alive) <= 1  # the inputs are let go
    assert grown < 256 * 1024, grown  # Python objects: under 256 KB over the run
    assert mon.report().ok


def test_unread_calls_are_kept_up_to_a_bound_and_the_report_says_what_was_lost(monkeypatch):
    """The CUDA path on the CPU (flags read late): without step(), at most
    MAX_KEPT calls wait with their inputs; older ones give theirs up."""
    from modpact.runtime import _buffer

    monkeypatch.setattr(_buffer.FlagBuffer.__init__, "__defaults__", (False,))  # host_compare=False
    model = _model()
    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        for _ in range(MAX_KEPT * 3):
            model(torch.rand(4, 256))
            assert len(mon._hooks.calls.kept) <= MAX_KEPT
        rep = mon.report()
    assert rep.ok
    assert any(f"at most {MAX_KEPT} are kept" in n for n in rep.notes), rep.notes


def test_warn_mode_does_not_grow_the_warning_registry():
    iface = mp.Interface(
        "small", inputs={"x": mp.TensorSpec("n 4")}, outputs={"y": mp.TensorSpec("n 2", range=(0, 0.5))}
    )
    g = mp.guard(nn.Linear(4, 2), interface=iface, mode="warn")
    registry = globals().setdefault("__warningregistry__", {})
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        for _ in range(3000):
            g(torch.rand(3, 4) * 10)  # a different message every call
    assert len(registry) <= 1 and len(_modes_warned()) <= 1025
    assert len(shown) >= 1000  # distinct messages are still shown


def _modes_warned() -> dict:
    from modpact.contracts import _violations

    return _violations._WARNED


def test_record_mode_keeps_a_bounded_number_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(_modes, "RECORD_LIMIT", 50)
    mp.clear_recorded()
    iface = mp.Interface(
        "small", inputs={"x": mp.TensorSpec("n 4")}, outputs={"y": mp.TensorSpec("n 2", range=(0, 0.5))}
    )
    g = mp.guard(nn.Linear(4, 2), interface=iface, mode="record")
    for _ in range(200):
        g(torch.rand(3, 4) * 10)
    assert len(mp.recorded()) == 50 and mp.recorded_total() == 200
    assert len(mp.contracts.get_guard(g).violations) == 50
    mp.clear_recorded()
    assert mp.recorded() == [] and mp.recorded_total() == 0
