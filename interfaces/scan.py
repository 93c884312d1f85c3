"""Evidence from big tensors at a bounded cost: one pass, piece by piece.

A failing check on a 50M-element activation needs a few facts: how many
elements fail, the first one (index and value), the NaN and infinity counts,
the min and max of the finite values. Taking them the direct way (a
full-size mask, ``nonzero()`` of it, ``t[isfinite(t)]``, a float64 copy)
costs seconds and a gigabyte. Here the tensor is read in pieces of at most
``PIECE`` elements, in row-major order: each piece's min and max (one
reduction, no allocation) tell whether it can hold a failing or non-finite
element at all, and only the pieces that can are looked at element by
element. Extra memory is a few pieces' worth, whatever the tensor's size;
nothing is copied to float64 but one piece at a time.

Synchronous on purpose (``.tolist()`` per piece): slow paths only, after a
check has failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PIECE", "HISTOGRAM_PIECE", "Scan", "pieces", "scan", "first_false", "unravel", "histogram_counts"]

PIECE = 1 << 18  # elements per piece (1 MB of float32): the fastest of 2**14..2**20 on a 2-core VM, bench/evidence.py
HISTOGRAM_PIECE = 1 << 20  # the histogram's pieces: an 8 MB float64 buffer

# ``bad(piece)`` -> bool mask of the piece's failing elements; ``clean(lo, hi)`` -> True when a piece whose
# min and max are lo and hi (NaN if it holds a NaN) cannot hold a failing element
Bad = Callable[[torch.Tensor], torch.Tensor]
Clean = Callable[[Any, Any], bool]


def pieces(t: torch.Tensor, size: int | None = None) -> Iterator[torch.Tensor]:
    """1-D pieces of ``t`` covering it in row-major (``reshape(-1)``) order,
    each of at most ``size`` (default ``PIECE``) elements: views where ``t``
    is contiguous, else copies of at most ``size`` elements (never a copy of
    the whole tensor)."""
    size = size or PIECE
    if t.dim() == 0:
        yield t.reshape(1)
        return
    if t.is_contiguous():
        flat = t.view(-1)
        for i in range(0, flat.numel(), size):
            yield flat[i : i + size]
        return
    if t.dim() == 1:  # strided: slices are strided views, fine for every op used here
        for i in range(0, t.shape[0], size):
            yield t[i : i + size]
        return
    row = t[0].numel() if t.shape[0] else 0
    if row == 0:
        return
    if row > size:
        for i in range(t.shape[0]):
            yield from pieces(t[i], size)
        return
    step = max(1, size // row)
    for i in range(0, t.shape[0], step):
        yield t[i : i + step].reshape(-1)


@dataclass
class Scan:
    """What one pass found. ``min``/``max`` are over the finite values (all
    values of an integer tensor), None when there are none; ``first`` is the
    flat index of the first failing element (None: none fails)."""

    numel: int
    failing: int = 0
    first: int | None = None
    first_value: Any = None
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    min: Any = None
    max: Any = None

    @property
    def inf(self) -> int:
        return self.posinf + self.neginf


def scan(t: torch.Tensor, bad: Bad | None = None, clean: Clean | None = None, size: int | None = None) -> Scan:
    """One pass over ``t`` (real or integer dtype, not bool or complex).
    With ``bad``, counts the failing elements and finds the first; a piece
    is examined element by element only when ``clean`` (from its min and
    max) cannot rule out a failing element, or when it holds a non-finite one."""
    t = t.detach()
    size = size or PIECE
    out = Scan(numel=t.numel())
    floating = t.is_floating_point()
    bounds = _piece_bounds(t, size)
    offset = 0
    for k, p in enumerate(pieces(t, size)):
        lo, hi = bounds[k] if bounds is not None else (x.item() for x in torch.aminmax(p))  # NaN: a NaN in it
        nonfinite = floating and not (math.isfinite(lo) and math.isfinite(hi))
        if nonfinite:
            finite = torch.isfinite(p)
            out.nan += int(torch.isnan(p).sum())
            out.posinf += int((p == math.inf).sum())
            out.neginf += int((p == -math.inf).sum())
            if bool(finite.any()):
                lo, hi = (x.item() for x in torch.aminmax(p[finite]))
            else:
                lo = hi = None
        if lo is not None:
            out.min = lo if out.min is None else min(out.min, lo)
            out.max = hi if out.max is None else max(out.max, hi)
        if bad is not None and (nonfinite or clean is None or not clean(lo, hi)):
            mask = bad(p)
            n = int(mask.sum())
            if n:
                out.failing += n
                if out.first is None:
                    j = _first_true(mask)
                    out.first = offset + j
                    out.first_value = p[j].item()
        offset += p.numel()
    return out


def _piece_bounds(t: torch.Tensor, size: int) -> list | None:
    """Each piece's (min, max) for a contiguous tensor, in one reduction over
    a [pieces, size] view and one read (not a small operation per piece:
    fewer waits for a busy machine's second thread). None: not contiguous."""
    n = t.numel()
    if not t.is_contiguous() or n <= size:
        return None
    flat = t.view(-1)
    full = n // size
    lo, hi = torch.aminmax(flat[: full * size].view(full, size), dim=1)
    parts = [torch.stack([lo, hi], dim=1)]
    if n > full * size:
        parts.append(torch.stack(torch.aminmax(flat[full * size :])).view(1, 2))
    return torch.cat(parts).tolist()


def _first_true(mask: torch.Tensor) -> int:
    """Index of the first True of a 1-D bool mask known to hold one (argmax
    returns the first maximum), without listing every True."""
    m = mask.view(torch.uint8) if mask.is_contiguous() else mask.to(torch.uint8)
    return int(m.argmax())


def first_false(ok: torch.Tensor, size: int | None = None) -> int | None:
    """Flat index of the first False of a bool tensor (None: all True),
    read piece by piece."""
    offset = 0
    for p in pieces(ok, size):
        if not bool(p.all()):
            return offset + _first_true(~p)
        offset += p.numel()
    return None


def unravel(flat: int, shape: torch.Size | tuple) -> tuple[int, ...]:
    """A flat (row-major) index as a tuple of indices into ``shape``."""
    out = []
    for d in reversed(tuple(shape)):
        out.append(flat % d if d else 0)
        flat = flat // d if d else 0
    return tuple(reversed(out))


def histogram_counts(t: torch.Tensor, s: Scan, lo: float, hi: float, bins: int) -> list[int]:
    """``torch.histc(t.double(), bins, lo, hi)`` over the finite values of
    ``t`` (whose min and max are ``lo`` and ``hi``; ``s`` is its scan), as
    ints: the same bins, computed one float64 piece of ``HISTOGRAM_PIECE``
    elements at a time (bigger than a scan's piece: several operations a
    piece here, and fewer, longer ones wait less on a busy machine)."""
    size = HISTOGRAM_PIECE
    buf = torch.empty(min(size, max(t.numel(), 1)), dtype=torch.float64, device=t.device)
    idx = torch.empty(buf.numel(), dtype=torch.uint8 if bins < 255 else torch.int64, device=t.device)
    nonfinite = s.nan + s.posinf + s.neginf
    width = hi - lo
    if not width > 0:  # equal values too large for the caller's +-0.5 to part: the middle bin, as histc puts them
        out = [0] * bins
        out[bins // 2] = s.numel - nonfinite
        return out
    fill = lo  # what non-finite values become: bin 0
    half = not math.isfinite(width)  # float64 values spanning more than the largest float: in halves
    if half:
        lo, width = lo / 2, hi / 2 - lo / 2
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=t.device)
    for p in pieces(t.detach(), size):
        n = p.numel()
        b = buf[:n]
        b.copy_(p)
        if nonfinite:  # non-finite values go to bin 0, and are taken out of it below
            b.nan_to_num_(nan=fill, posinf=fill, neginf=fill)
        # histc's own arithmetic (aten HistogramKernel, linear bins): (x - lo) * bins / (hi - lo), truncated;
        # it lies in [0, bins], and bins (the maximum) counts in the last bin
        if half:  # (x/2 - lo/2) / width * bins: nothing overflows
            b.mul_(0.5).sub_(lo).div_(width).mul_(bins)
        else:
            b.sub_(lo).mul_(bins).div_(width)
        i = idx[:n]
        i.copy_(b)
        counts += torch.bincount(i, minlength=bins + 1)
    total = counts.tolist()
    out = total[:bins]
    if out:
        out[-1] += total[bins]
        out[0] -= nonfinite
    return out
