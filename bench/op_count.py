"""Counting the torch ops that run, for bench/monitor_overhead.py and
tests/runtime/test_op_counts.py (the Monitor's fixed cost, in ops)."""

from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode


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
