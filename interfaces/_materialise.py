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
    is unbounded); ``near0``: the value nearest 0 within them, the fill.
    ``random``: how many entries get uniform values (from ``seed``) in the
    window ``near0 +- 10**scale``, cut to ``[lo, hi]``: the first ``random``
    positions (all of them when it is the tensor's size) of a permutation
    drawn from the seed (a smaller count keeps a prefix of the same entries:
    shrinking it leaves the entries that matter). ``specials``: (flat index,
    value) written over that. ``scatter``: (value, fraction): the value also
    written at about that fraction of the positions, chosen with the seed.
    ``simplex``: the dim along which rows are normalised (the values are then
    integer weights in [0, SIMPLEX_WEIGHT]). ``padding``: (side, n, dtype) of a
    padding mask: the values are then its rows' lengths in [1, n], and the
    tensor is rows of that many ones at the start (``"right"``: padding at the
    end) or at the end (``"left"``), in ``dtype``, with ``n`` as the last dim.
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    device: str
    lo: float | int | None
    hi: float | int | None
    near0: float | int | bool
    seed: int = 0
    random: int = 0
    scale: int = 0
    specials: tuple[tuple[int, float | int | bool], ...] = ()
    scatter: tuple[float | int | bool, float] | None = None
    simplex: int | None = None
    padding: tuple[str, int, torch.dtype] | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def materialise(p: TensorParams) -> torch.Tensor:
    """The tensor ``p`` describes; the same ``p`` gives the same tensor."""
    if p.device == "meta":
        if p.padding is not None:
            return torch.empty((*p.shape, p.padding[1]), dtype=p.padding[2], device="meta")
        return torch.empty(p.shape, dtype=p.dtype, device="meta")
    gen = torch.Generator().manual_seed(p.seed)
    n, m = p.numel, min(p.random, p.numel)
    flat = torch.full((n,), p.near0, dtype=torch.int64 if _integral(p) else p.dtype)
    if m:
        # the first m positions of a seeded permutation, values drawn for all n: a smaller m
        # keeps the same first entries (what shrinking the count relies on)
        at = torch.randperm(n, generator=gen)[:m]
        flat[at] = _values(p, gen, n)[:m].to(flat.dtype)
    t = flat.view(p.shape)
    if p.scatter is not None and flat.numel():
        value, frac = p.scatter
        flat[torch.rand(flat.shape, generator=gen) < frac] = value
    for i, v in p.specials:
        if i < flat.numel():
            flat[i] = v
    if p.padding is not None:
        t = _padding_mask(t, p.padding)
    elif p.simplex is not None:
        t = _simplex(t, p)
    elif t.dtype != p.dtype:  # integers are made in int64 and clamped to bounds that fit the dtype
        t = t.to(p.dtype)
    return t if p.device == "cpu" else t.to(p.device)


def _padding_mask(lengths: torch.Tensor, padding: tuple[str, int, torch.dtype]) -> torch.Tensor:
    """Rows of ``lengths`` ones (then zeros for ``"right"``, after zeros for ``"left"``) of ``n`` entries."""
    side, n, dtype = padding
    pos = torch.arange(n)
    lengths = lengths.to(torch.int64)[..., None]
    mask = pos < lengths if side == "right" else pos >= n - lengths
    return mask.to(dtype)


def _integral(p: TensorParams) -> bool:
    """Whether the values are made as int64 (integer dtypes, bool and simplex weights)."""
    return p.simplex is not None or not p.dtype.is_floating_point


def _values(p: TensorParams, gen: torch.Generator, n: int) -> torch.Tensor:
    """``n`` uniform values in the window ``near0 +- 10**scale``, cut to the bounds."""
    if p.dtype == torch.bool and p.simplex is None:
        if p.lo == p.hi:
            return torch.full((n,), bool(p.near0))
        return (torch.rand((n,), generator=gen) < 0.5).long()
    if _integral(p):
        return _integers(p, gen, n)
    return _floats(p, gen, n)


def _floats(p: TensorParams, gen: torch.Generator, n: int) -> torch.Tensor:
    fmax = float(torch.finfo(p.dtype).max)
    lo = -fmax if p.lo is None else float(p.lo)
    hi = fmax if p.hi is None else float(p.hi)
    c, r = float(p.near0), 10.0**p.scale
    a, b = max(lo, c - r), min(hi, c + r)
    u = torch.rand((n,), generator=gen, dtype=torch.float64)
    v = a * (1 - u) + b * u  # never overflows, unlike a + (b - a) * u
    # rounding to the dtype may step outside the bounds; they are representable, so clamp
    return v.to(p.dtype).clamp_(lo, hi)


def _integers(p: TensorParams, gen: torch.Generator, n: int) -> torch.Tensor:
    lo = _I64[0] if p.lo is None else int(p.lo)
    hi = _I64[1] if p.hi is None else int(p.hi)
    c, r = int(p.near0), 10**p.scale
    a, b = max(lo, c - r), min(hi, c + r)
    if b - a < 2**53:
        return torch.randint(0, b - a + 1, (n,), generator=gen, dtype=torch.int64) + a
    # a span wider than a float64 mantissa (int64 only): uniform in float64, kept inside int64
    u = torch.rand((n,), generator=gen, dtype=torch.float64)
    v = (float(a) * (1 - u) + float(b) * u).clamp_(float(a), float(2**63 - 1024))
    return v.to(torch.int64).clamp_(a, b)


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
