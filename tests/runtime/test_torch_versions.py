"""What keeps the Monitor traceable on every torch in the supported range
(pyproject's floor to the pinned version; `make test-matrix` runs the suite on
the floor). The compile tests themselves are in test_monitor.py and
test_diagnosis.py."""

from __future__ import annotations

import torch
from torch import nn
from zoo import MLP, example_input

import modpact.contracts as C
from modpact.runtime import Monitor
from modpact.runtime.hooks import prepend_pre_hook
from modpact.runtime.state import Slot


def test_a_prepended_hook_runs_first_and_both_orders_of_the_hooks_agree():
    """Dynamo names a hook by its index in ``dict.keys(hooks)``; ``prepend=True``
    alone changes only the OrderedDict's order."""
    mod = nn.Linear(2, 2)
    ran: list[str] = []
    mod.register_forward_pre_hook(lambda m, a: ran.append("first registered"))
    handle = prepend_pre_hook(mod, lambda m, a: ran.append("prepended"))
    hooks = mod._forward_pre_hooks
    assert list(dict.keys(hooks)) == list(hooks.keys())
    mod(torch.rand(1, 2))
    assert ran == ["prepended", "first registered"]
    handle.remove()
    assert len(hooks) == 1


def test_the_monitor_s_pre_hook_comes_before_a_guard_s_in_both_orders():
    model = MLP()
    C.guard(model.head, ensures=[C.finite("result")], name="head")
    guard_hooks = list(model.head._forward_pre_hooks.values())
    with Monitor(model, defaults=True):
        hooks = model.head._forward_pre_hooks
        assert list(dict.keys(hooks)) == list(hooks.keys())
        assert list(hooks.values())[1:] == guard_hooks  # the Monitor's own is first
        model(example_input(model, 2))
    assert list(model.head._forward_pre_hooks.values()) == guard_hooks


def test_a_slot_is_a_hashable_named_tuple_with_its_fields():
    slot = Slot("body.0", "postcondition", "finite(output)", "output")
    assert slot.module == "body.0" and slot.finite is True and slot.phase == "forward"
    assert {slot: 1}[Slot("body.0", "postcondition", "finite(output)", "output")] == 1
    assert slot != Slot("body.0", "postcondition", "finite(output)", "output", lo=0.0)


def test_the_tested_floor_is_the_declared_one():
    """pyproject's ``torch>=X.Y`` and the torch `make test-matrix` runs (OLDEST_TORCH) are one fact."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    declared = re.findall(r'"torch>=([0-9.]+)"', (root / "pyproject.toml").read_text())
    tested = re.findall(r"^OLDEST_TORCH \?= ([0-9.]+)$", (root / "Makefile").read_text(), re.M)
    assert declared == ["2.11"] and tested == ["2.11.0"], (declared, tested)
    assert tested[0].rsplit(".", 1)[0] == declared[0]
    assert torch.__version__ >= declared[0]  # the torch running this test is in the range
