"""Validation leaves the module as it was: ``Preserved`` snapshots what a
forward can change and puts it back.

What is kept, for every module reachable from the validated callables
(``nn.Module.modules()``): each parameter's and buffer's value (BatchNorm's
running statistics and ``num_batches_tracked`` included), which tensor object
each name holds (a forward that replaces a parameter or adds a buffer is
undone), ``requires_grad`` and the train/eval mode; and the random number
generators: torch's CPU generator, every CUDA device's generator when CUDA is
initialized, Python's ``random`` and, when numpy is imported, numpy's global
generator.

``reset()`` puts all of it back; validation calls it before each generated
example, so every example starts from the same state (a failure reproduces
with its seed, and an example does not see what the previous ones did to the
running statistics or the generators), and ``__exit__`` calls it once more,
also when validation raises. A tensor is copied back only when its version
counter says it was written or its values differ from the copy (BatchNorm's
kernel updates the running statistics without a version bump), so a module
that changes nothing costs one read of its parameters and buffers per example
and no writes. The snapshot holds one copy of every parameter and buffer
while validation runs.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["Preserved"]


class _Rng:
    """The generators' states, taken once and put back on ``restore``."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.python = random.getstate()
        np = sys.modules.get("numpy")
        self.numpy = np.random.get_state() if np is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        random.setstate(self.python)
        np = sys.modules.get("numpy")
        if self.numpy is not None and np is not None:
            np.random.set_state(self.numpy)


def _same(t: torch.Tensor, saved: torch.Tensor) -> bool:
    """Same values (NaN equal to NaN): written without a version bump is still written."""
    if t.shape != saved.shape or t.dtype != saved.dtype:
        return False
    if torch.equal(t, saved):
        return True
    return (t.is_floating_point() or t.is_complex()) and bool(((t == saved) | (t.isnan() & saved.isnan())).all())


class _ModuleState:
    """One module's own parameters and buffers (objects, values, version counters,
    requires_grad) and its training flag."""

    def __init__(self, path: str, module: nn.Module):
        self.path, self.module = path, module
        self.training = module.training
        self.params = dict(module._parameters)
        self.buffers = dict(module._buffers)
        self.values: dict[str, tuple[torch.Tensor, torch.Tensor, int, bool]] = {}
        for kind, table in (("p", self.params), ("b", self.buffers)):
            for name, t in table.items():
                if t is not None:
                    self.values[f"{kind}:{name}"] = (t, t.detach().clone(), t._version, t.requires_grad)

    def restore(self, changed: set[str]) -> None:
        m = self.module
        prefix = f"{self.path}." if self.path else ""
        if m.training != self.training:
            m.training = self.training
            changed.add(f"{self.path or '<module>'} (train/eval mode)")
        self._put_back(m._parameters, self.params, prefix, changed)
        self._put_back(m._buffers, self.buffers, prefix, changed)
        for key, (t, copy, version, grad) in self.values.items():
            name = prefix + key[2:]
            if t._version != version or not _same(t, copy):
                with torch.no_grad():
                    t.copy_(copy)
                self.values[key] = (t, copy, t._version, grad)
                changed.add(name)
            if t.requires_grad != grad:
                t.requires_grad_(grad)
                changed.add(f"{name} (requires_grad)")

    @staticmethod
    def _put_back(table: dict[str, Any], saved: dict[str, Any], prefix: str, changed: set[str]) -> None:
        """The tensor objects each name held (a forward that replaced or added one is undone)."""
        swapped = {k for k in saved if table.get(k) is not saved[k]} | (set(table) - set(saved))
        if swapped:
            changed.update(prefix + k for k in swapped)
            table.clear()
            table.update(saved)


class Preserved:
    """Snapshot of the modules among ``callables`` and of the random
    generators; ``reset()`` restores them; a context manager that restores
    on exit, exceptions included. ``changed``: what was found changed and
    restored, by name (``bn.running_mean``, ``drop (train/eval mode)``)."""

    def __init__(self, callables: Iterable[Any]):
        self.rng = _Rng()
        self.states: list[_ModuleState] = []
        seen: set[int] = set()
        for fn in callables:
            if not isinstance(fn, nn.Module):
                continue
            for path, m in fn.named_modules(remove_duplicate=False):
                if id(m) not in seen:
                    seen.add(id(m))
                    self.states.append(_ModuleState(path, m))
        self.changed: set[str] = set()

    def reset(self) -> None:
        for s in self.states:
            s.restore(self.changed)
        self.rng.restore()

    def __enter__(self) -> Preserved:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.reset()
