"""Prepared device forms of the envelope and box conditions.

A plan is made once per (shape, dtype, device) of the checked tensor and
holds what every later call of that kind needs: the dims to reduce, the
bounds on the tensor's device in its dtype, the boxes of each class stacked
into one table. A call then runs a few tensor ops, with no Python loop over
dims or boxes, no host sync, and (on the boxes' ``[rows, boxes, features]``
intermediates) no allocation on CPU: they are written into scratch tensors
kept per thread and shape (``Scratch``), since a fresh temporary of a few
hundred KB costs more than the arithmetic there (measured: 10x for the boxes
of one 256x64 tensor). Other devices allocate (their caching allocators make
that cheap, and a scratch tensor shared across streams could race), and so
does code traced by torch.compile (no scratch lookups in a graph).

Every verdict is the one of the reference formulas (``tests/inferred``
compares them on random, NaN, infinite and boundary values):

* envelope: ``torch.maximum(lo - t, t - hi).amax() <= 0`` becomes the min and
  max of ``t`` over the broadcast dims compared with ``lo`` and ``hi``; both
  are exact, and NaN fails both (it propagates through ``amin``/``amax`` and
  compares false);
* boxes: ``(torch.maximum(lo - x, x - hi).amax(-1) <= 0).any(-1)``, the same
  formula, into scratch;
* class boxes: a row of predicted class ``c`` is compared with the boxes of
  class ``c`` only (``index_select`` on a table padded with empty boxes,
  ``lo = +inf``, ``hi = -inf``, that hold no value, NaN and infinities
  included), instead of with every box masked by ``labels == argmax``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ClassTable", "EnvelopePlan", "Scratch", "box_rows", "class_box_rows", "envelope_ok", "reduce_dims"]

_is_compiling = torch.compiler.is_compiling
_MAX_SCRATCH = 32  # scratch tensors kept per condition (threads x shapes); past it the cache starts over


def reduce_dims(shape: torch.Size, bound_shape: torch.Size) -> tuple[int, ...]:
    """The dims of a tensor of ``shape`` that bounds of ``bound_shape``
    (broadcasting against its trailing dims) do not tell apart: reduced
    (with ``keepdim``) before the comparison with the bounds."""
    nd, nb = len(shape), len(bound_shape)
    lead = nd - nb
    return tuple(i for i in range(nd) if i < lead or bound_shape[i - lead] == 1)


class EnvelopePlan:
    """The envelope check of tensors of one (shape, dtype, device): the dims
    to reduce and the bounds expanded to the reduced shape (``kept``)."""

    __slots__ = ("dims", "kept", "lo", "hi", "key")

    def __init__(self, shape: torch.Size, lo: torch.Tensor, hi: torch.Tensor):
        self.dims = reduce_dims(shape, lo.shape)
        self.kept = tuple(1 if i in self.dims else n for i, n in enumerate(shape))
        self.lo = lo.expand(self.kept).contiguous() if lo.ndim else lo.reshape(self.kept)
        self.hi = hi.expand(self.kept).contiguous() if hi.ndim else hi.reshape(self.kept)
        self.key = ("envelope", self.kept, lo.dtype, lo.device)

    def init(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a[0].copy_(self.lo)
        b[1].copy_(self.hi)


def envelope_ok(t: torch.Tensor, plan: EnvelopePlan, scratch: Scratch | None) -> torch.Tensor:
    """0-dim bool: every value of ``t`` in ``[lo, hi]`` (NaN fails: it
    propagates through ``amin``/``amax`` and compares false).

    On CPU the min and max are written into scratch rows next to the bounds,
    ``a = [lo, max]`` and ``b = [min, hi]``, so that one ``a <= b`` compares
    both sides: four ops in all."""
    dims = plan.dims
    if scratch is None or _is_compiling() or t.device.type != "cpu":
        mn, mx = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
        return ((mn >= plan.lo) & (mx <= plan.hi)).all()
    a, b = scratch.get(plan.key, 2, (2, *plan.kept), t.dtype, t.device, plan.init)
    torch.amin(t, dim=dims, keepdim=True, out=b[0])
    torch.amax(t, dim=dims, keepdim=True, out=a[1])
    return torch.le(a, b).all()


class Scratch:
    """Scratch tensors per (thread, key), made outside inference mode so that
    they can be written in and out of it; not copied with the condition."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def get(
        self,
        key: tuple,
        n: int,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        init: Callable[..., None] | None = None,
    ) -> Any:
        """``n`` tensors of ``shape`` for the calling thread (``init`` fills them once)."""
        k = (threading.get_ident(), key)
        got = self._bufs.get(k)
        if got is None:
            if len(self._bufs) >= _MAX_SCRATCH:
                self._bufs.clear()
            with torch.inference_mode(False), torch.no_grad():
                got = tuple(torch.empty(shape, dtype=dtype, device=device) for _ in range(n))
                if init is not None:
                    init(*got)
            self._bufs[k] = got
        return got


def box_rows(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, scratch: Scratch | None) -> torch.Tensor:
    """[rows] bool: row ``x[i]`` ([rows, 1, features]) lies inside one of the
    boxes ``[lo[k], hi[k]]`` ([boxes, features], or [rows, boxes, features])."""
    if scratch is None or _is_compiling() or x.device.type != "cpu":
        return (torch.maximum(lo - x, x - hi).amax(dim=2) <= 0).any(dim=1)
    n, d = x.shape[0], x.shape[2]
    k = lo.shape[-2]
    a, b = scratch.get(("box", n, k, d, x.dtype, x.device), 2, (n, k, d), x.dtype, x.device)
    torch.sub(lo, x, out=a)
    torch.sub(x, hi, out=b)
    torch.maximum(a, b, out=a)
    return (a.amax(dim=2) <= 0).any(dim=1)


class ClassTable:
    """The boxes grouped by class, made once from the condition's bounds:
    ``lo``/``hi`` of shape ``[classes + 1, most boxes of a class, features]``
    (float64, CPU), padded with empty boxes; the last class holds none (an
    argmax past the labels, or a class no box has, lands there and fails, as
    with the reference formula). ``on(dtype, device)`` gives the copy a check uses."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor, labels: list[int]):
        d = lo.shape[1]
        kept = [c for c in labels if c >= 0]  # a negative label matches no argmax
        classes = max(kept) + 1 if kept else 0
        width = max([kept.count(c) for c in set(kept)] + [1])
        self.lo = torch.full((classes + 1, width, d), math.inf, dtype=torch.float64)
        self.hi = torch.full((classes + 1, width, d), -math.inf, dtype=torch.float64)
        filled = [0] * (classes + 1)
        for j, c in enumerate(labels):  # once, when the condition is made
            if c < 0:
                continue
            self.lo[c, filled[c]] = lo[j]
            self.hi[c, filled[c]] = hi[j]
            filled[c] += 1
        self.classes = classes
        self.width = width
        self._on: dict[tuple[Any, Any], tuple[torch.Tensor, torch.Tensor]] = {}

    def on(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (dtype, device)
        got = self._on.get(key)
        if got is None:
            got = self._on[key] = (self.lo.to(device, dtype), self.hi.to(device, dtype))
        return got

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_on": {}}


def class_box_rows(x: torch.Tensor, scores: torch.Tensor, table: ClassTable, scratch: Scratch | None) -> torch.Tensor:
    """[rows] bool: row ``x[i]`` ([rows, 1, features]) lies inside a box of
    its predicted class ``scores[i].argmax()``."""
    tlo, thi = table.on(x.dtype, x.device)
    cls = scores.argmax(dim=1).clamp_max_(table.classes)
    if scratch is None or _is_compiling() or x.device.type != "cpu":
        return box_rows(x, tlo.index_select(0, cls), thi.index_select(0, cls), None)
    n, d = x.shape[0], x.shape[2]
    lo, hi = scratch.get(("class", n, table.width, d, x.dtype, x.device), 2, (n, table.width, d), x.dtype, x.device)
    torch.index_select(tlo, 0, cls, out=lo)
    torch.index_select(thi, 0, cls, out=hi)
    return box_rows(x, lo, hi, scratch)
