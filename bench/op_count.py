"""Counting the torch ops that run, for bench/monitor_overhead.py and
tests/runtime/test_op_counts.py (the Monitor's fixed cost, in ops)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

from modpact.runtime import Monitor


class Ops(TorchDispatchMode):
    """Ops that run (views, which launch nothing, left out) and, by name,
    those that allocate their output (neither in place nor ``out=``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.allocating: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.ops[str(func)] += 1
            if not func._schema.is_mutable:
                self.allocating[str(func)] += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def monitored_ops(model: Any, x: Any, leaf_checks: str) -> Iterator[tuple[Ops, Ops, Ops, Monitor]]:
    """The ops of a bare forward, then, under ``Monitor(defaults=True)`` once
    its first calls have warmed it (the first call checks every leaf; the
    flag buffer's pools fill), the ops of one forward and of the ``step()``
    after it. Yields (bare, forward, step, the Monitor) with the Monitor
    still entered."""
    with Ops() as bare:
        model(x)
    with Monitor(model, defaults=True, leaf_checks=leaf_checks) as mon:
        for _ in range(3):
            model(x)
            mon.step()
        with Ops() as fwd:
            model(x)
        with Ops() as step:
            mon.step()
        yield bare, fwd, step, mon
