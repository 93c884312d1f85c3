"""A tensor built with torch in one call from the parameters Hypothesis drew.

:func:`modpact.interfaces.strategies.draw_params` draws a :class:`TensorParams`
(dtype, shape, a seed, the fill, the special values and where they go);
:func:`materialise` turns it into a tensor with a ``torch.Generator`` seeded
from the drawn seed. The same parameters give the same tensor (on any device:
values are made on the CPU, then moved), and Hypothesis shrinks the parameters,
not the elements: smaller shapes, seed 0, the fill nearest 0, fewer special
values. Nothing here imports Hypothesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["TensorParams", "materialise", "SIMPLEX_DENOM", "SIMPLEX_WEIGHT"]

#: simplex rows are multiples of 1/denom (exact in the dtype, so rows sum to exactly 1)
SIMPLEX_DENOM = {torch.float16: 2**8, torch.bfloat16: 2**8, torch.float32: 2**20, torch.float64: 2**20}
#: simplex rows are made from integer weights in [0, SIMPLEX_WEIGHT]
SIMPLEX_WEIGHT = 1000
_I64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class TensorParams:
    """What a generated tensor is made from.

    ``lo``/``hi``: the value bounds (already representable in ``dtype``; None
    is unbounded); ``near0``: the value nearest 0 within them (the fill when
    ``random`` is False). ``random``: fill with uniform values (``seed``) in the
    window ``near0 +- 10**scale``, cut to ``[lo, hi]``. ``specials``: (flat
    index, value) written over the fill. ``scatter``: (value, fraction): the
    value also written at about that fraction of the positions, chosen with
    the seed. ``simplex``: the dim along which rows are normalised (the values
    are then integer weights in [0, SIMPLEX_WEIGHT]).
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    device: str
    lo: float | int | None
    hi: float | int | None
    near0: float | int | bool
    seed: int = 0
    random: bool = False
    scale: int = 0
    specials: tuple[tuple[int, float | int | bool], ...] = ()
    scatter: tuple[float | int | bool, float] | None = None
    simplex: int | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def materialise(p: TensorParams) -> torch.Tensor:
    """The tensor ``p`` describes; the same ``p`` gives the same tensor."""
    if p.device == "meta":
        return torch.empty(p.shape, dtype=p.dtype, device="meta")
    gen = torch.Generator().manual_seed(p.seed)
    if p.simplex is not None or not p.dtype.is_floating_point:
        t = _integers(p, gen) if p.dtype != torch.bool or p.simplex is not None else _bools(p, gen)
    else:
        t = _floats(p, gen)
    flat = t.view(-1)
    if p.scatter is not None and flat.numel():
        value, frac = p.scatter
        flat[torch.rand(flat.shape, generator=gen) < frac] = value
    for i, v in p.specials:
        if i < flat.numel():
            flat[i] = v
    if p.simplex is not None:
        t = _simplex(t, p)
    elif t.dtype != p.dtype:  # integers are made in int64 and clamped to bounds that fit the dtype
        t = t.to(p.dtype)
    return t if p.device == "cpu" else t.to(p.device)


def _floats(p: TensorParams, gen: torch.Generator) -> torch.Tensor:
    if not p.random:
        return torch.full(p.shape, float(p.near0), dtype=p.dtype)
    fmax = float(torch.finfo(p.dtype).max)
    lo = -fmax if p.lo is None else float(p.lo)
    hi = fmax if p.hi is None else float(p.hi)
    c, r = float(p.near0), 10.0**p.scale
    a, b = max(lo, c - r), min(hi, c + r)
    u = torch.rand(p.shape, generator=gen, dtype=torch.float64)
    v = a * (1 - u) + b * u  # never overflows, unlike a + (b - a) * u
    # rounding to the dtype may step outside the bounds; they are representable, so clamp
    return v.to(p.dtype).clamp_(lo, hi)


def _integers(p: TensorParams, gen: torch.Generator) -> torch.Tensor:
    lo = _I64[0] if p.lo is None else int(p.lo)
    hi = _I64[1] if p.hi is None else int(p.hi)
    c = int(p.near0)
    if not p.random:
        return torch.full(p.shape, c, dtype=torch.int64)
    r = 10**p.scale
    a, b = max(lo, c - r), min(hi, c + r)
    if b - a < 2**53:
        return torch.randint(0, b - a + 1, p.shape, generator=gen, dtype=torch.int64) + a
    # a span wider than a float64 mantissa (int64 only): uniform in float64, kept inside int64
    u = torch.rand(p.shape, generator=gen, dtype=torch.float64)
    v = (float(a) * (1 - u) + float(b) * u).clamp_(float(a), float(2**63 - 1024))
    return v.to(torch.int64).clamp_(a, b)


def _bools(p: TensorParams, gen: torch.Generator) -> torch.Tensor:
    if not p.random or p.lo == p.hi:
        return torch.full(p.shape, bool(p.near0), dtype=torch.bool)
    return torch.rand(p.shape, generator=gen) < 0.5


def _simplex(w: torch.Tensor, p: TensorParams) -> torch.Tensor:
    """Integer weights -> rows of multiples of 1/denom summing to exactly 1; all-zero rows become one-hot."""
    if w.numel() == 0:
        return w.to(p.dtype)
    dim = p.simplex
    assert dim is not None  # materialise calls this for simplex params only
    w = w.movedim(dim, -1)
    if w.shape[-1] == 0:
        return w.movedim(-1, dim).to(p.dtype)
    denom = SIMPLEX_DENOM[p.dtype]
    w[..., 0] += (w.sum(-1) == 0).long()
    q = w * denom // w.sum(-1, keepdim=True)
    q[..., 0] += denom - q.sum(-1)  # the rounding remainder goes to the first entry
    return (q.to(torch.float64) / denom).to(p.dtype).movedim(-1, dim).contiguous()
