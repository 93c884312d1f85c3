"""A compiled fast path for the metadata half of an Interface check.

``Interface.input_problems`` builds problem text eagerly and costs several
microseconds per tensor; guards run on every call. This plan answers only
"certainly fine" for the simple, common specs (fixed, named and anonymous
dims; dtype set; device; label axis) and returns None on any doubt or
failure, in which case the checker runs the Interface's own check, which
stays the single authority on problems and their wording. Specs with
variadic, broadcast or expression dims are not compiled (always the full path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["MetaPlan", "compile_side"]

_FIXED, _NAMED, _ANON = 0, 1, 2


class _TensorPlan:
    __slots__ = ("key", "ndim", "dims", "dtypes", "device", "label_dim", "nlabels")

    def __init__(self, key: str, spec: Any):
        self.key = key
        dims = []
        for i, d in enumerate(spec.shape):
            if d.variadic or d.broadcast or d.kind == "expr":
                raise _NotSimple
            if d.kind == "fixed":
                dims.append((i, _FIXED, d.size))
            elif d.kind == "named":
                dims.append((i, _NAMED, d.name))
            elif d.kind != "anon":
                raise _NotSimple
        self.ndim = len(spec.shape)
        self.dims = tuple(dims)
        self.dtypes = spec.allowed
        self.device = None if spec.device == "any" else spec.device
        if spec.labels is not None:
            ld = spec.label_dim
            if not -self.ndim <= ld < self.ndim:
                raise _NotSimple
            self.label_dim, self.nlabels = ld, len(spec.labels)
        else:
            self.label_dim, self.nlabels = None, 0


class _NotSimple(Exception):
    pass


class MetaPlan:
    """Fast metadata check of one side (inputs or outputs) of an interface."""

    __slots__ = ("tensors", "names", "n", "args")

    def __init__(self, specs: Mapping[str, Any], args: tuple[str, ...] | None = None):
        self.tensors = tuple(_TensorPlan(k, s) for k, s in specs.items())
        self.names = tuple(specs)
        self.n = len(self.names)
        # (plan, env key) pairs for run_env: the argument each input is bound to
        self.args = tuple(zip(self.tensors, args)) if args is not None else ()

    def run_env(self, env: Mapping[str, Any], binds: dict[str, int]) -> dict[str, int] | None:
        """Inputs read straight from the call's env (see ``args``)."""
        one = _one
        for p, a in self.args:
            if not one(p, env[a], binds):
                return None
        return binds

    def run(self, values: Any, binds: dict[str, int]) -> dict[str, int] | None:
        """``binds`` updated with the dims bound here, or None (use the full check)."""
        one = _one
        if isinstance(values, torch.Tensor):
            if self.n != 1 or not one(self.tensors[0], values, binds):
                return None
            return binds
        if isinstance(values, dict):
            if len(values) != self.n:
                return None
            for p in self.tensors:
                t = values.get(p.key)
                if t is None or not one(p, t, binds):
                    return None
            return binds
        if isinstance(values, (tuple, list)):
            if len(values) != self.n:
                return None
            for p, t in zip(self.tensors, values):
                if not one(p, t, binds):
                    return None
            return binds
        return None


def _one(p: _TensorPlan, t: Any, binds: dict[str, int]) -> bool:
    if not isinstance(t, torch.Tensor):
        return False
    shape = t.shape
    if len(shape) != p.ndim or t.dtype not in p.dtypes:
        return False
    for i, kind, v in p.dims:
        s = shape[i]
        if kind == _FIXED:
            if s != v:
                return False
        else:
            b = binds.get(v)
            if b is None:
                binds[v] = s
            elif b != s:
                return False
    if p.device is not None and t.device.type != p.device:
        return False
    if p.label_dim is not None and shape[p.label_dim] != p.nlabels:
        return False
    return True


def compile_side(specs: Mapping[str, Any], args: tuple[str, ...] | None = None) -> MetaPlan | None:
    """A plan for these specs, or None if any spec is not simple enough."""
    try:
        return MetaPlan(specs, args)
    except (_NotSimple, AttributeError):
        return None
