"""Value-domain checks in two forms.

Device form (``*_ok``): returns a 0-dim bool tensor on ``t``'s device built
from torch reductions only. No ``.item()``, ``bool()``, ``nonzero`` or Python
branching on data, so it never syncs and traces under
``torch.compile(fullgraph=True)``. Branches on metadata (dtype) are fine.

Evidence form (``*_evidence``): slow path (reads values, syncs). Returns a
dict ``{"failing": 3, "of": 96, "first_index": (0, 5), "first_value": nan,
"min": ..., "max": ...}``; ``failing == 0`` means the check holds.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .scan import Scan, first_false, scan, unravel

__all__ = [
    "stored_values",
    "orderable",
    "finite_ok",
    "finite_evidence",
    "range_ok",
    "range_evidence",
    "nonnegative_ok",
    "nonnegative_evidence",
    "simplex_ok",
    "simplex_evidence",
    "indices_ok",
    "indices_evidence",
    "padded_rows",
    "padding_ok",
    "padding_evidence",
    "PADDINGS",
]

#: padding conventions of a 0/1 mask along its last dim: "right" (ones, then zeros: padding at
#: the end), "left" (zeros, then ones); either way each row has at least one 1
PADDINGS = ("right", "left")


def _true(t: torch.Tensor) -> torch.Tensor:
    return torch.ones((), dtype=torch.bool, device=t.device)


def _false(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=torch.bool, device=t.device)


def _is_integer(t: torch.Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


# ---- the values a check reads ---------------------------------------------------

_SPARSE_COMPRESSED = (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def stored_values(t: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The values of ``t`` a value check reads, as a strided tensor, and
    whether ``t`` also holds implicit zeros (a sparse tensor's unstored
    elements). Strided tensors come back as they are; sparse ones give their
    stored values; nested ones their components' values, flattened."""
    if t.layout is torch.strided and not t.is_nested:
        return t, False
    if t.is_sparse:
        values = t.coalesce().values()
        return values, values.numel() < t.numel()
    if t.layout in _SPARSE_COMPRESSED:
        values = t.values()
        return values, values.numel() < t.numel()
    if t.is_nested:
        if t.layout is torch.strided:
            return torch.cat([c.reshape(-1) for c in t.unbind()]), False
        return t.values(), False
    return t, False


def orderable(t: torch.Tensor) -> bool:
    """Whether ``t``'s values can be compared with bounds (complex ones cannot)."""
    return not t.is_complex()


# ---- device forms -------------------------------------------------------------


def finite_ok(t: torch.Tensor) -> torch.Tensor:
    if not (t.is_floating_point() or t.is_complex()):
        return _true(t)
    return torch.isfinite(t).all()


def _range_mask(t: torch.Tensor, lo, hi) -> torch.Tensor:
    if _is_integer(t) and not isinstance(lo, torch.Tensor) and not isinstance(hi, torch.Tensor):
        # a bound the dtype cannot hold would wrap around (300 -> 44 in int8): clamp it to the dtype
        info = torch.iinfo(t.dtype)
        if (lo is not None and lo > info.max) or (hi is not None and hi < info.min):
            return torch.zeros_like(t, dtype=torch.bool)
        lo = None if lo is not None and lo <= info.min else lo
        hi = None if hi is not None and hi >= info.max else hi
    mask = torch.ones_like(t, dtype=torch.bool)
    if lo is not None:
        mask = mask & (t >= lo)
    if hi is not None:
        mask = mask & (t <= hi)
    return mask


def range_ok(t: torch.Tensor, lo=None, hi=None) -> torch.Tensor:
    """All values in [lo, hi] (inclusive; None means unbounded; NaN fails)."""
    return _range_mask(t, lo, hi).all()


def nonnegative_ok(t: torch.Tensor) -> torch.Tensor:
    return (t >= 0).all()


def _sums(t: torch.Tensor, dim: int) -> torch.Tensor:
    src = t if t.is_floating_point() else t.to(torch.float64)
    return src.sum(dim=dim, dtype=torch.float64 if src.dtype == torch.float64 else torch.float32)


def simplex_ok(t: torch.Tensor, dim: int = -1, tol: float = 1e-4) -> torch.Tensor:
    """Non-negative and sums to 1 along ``dim`` within ``tol``."""
    return (t >= 0).all() & ((_sums(t, dim) - 1).abs() <= tol).all()


def indices_ok(t: torch.Tensor, n: int) -> torch.Tensor:
    """Integer dtype and every value in [0, n)."""
    if not _is_integer(t):
        return _false(t)
    return ((t >= 0) & (t < n)).all()


# ---- evidence forms ----------------------------------------------------------
# Read piece by piece (``scan``): a few pieces' memory whatever the tensor's size, no float64 copy of it,
# no list of every failing index; the same fields and meanings as a full mask would give.


def _num(x: torch.Tensor) -> Any:
    v = x.item()
    return v


def _scannable(t: torch.Tensor) -> bool:
    return t.dtype != torch.bool and not t.is_complex()


def _minmax(t: torch.Tensor) -> dict[str, Any]:
    if t.numel() == 0 or t.dtype == torch.bool or t.is_complex():
        return {}
    s = scan(t)
    if s.min is None:
        return {"min": math.nan, "max": math.nan}
    return {"min": s.min, "max": s.max}


def _scan_evidence(t: torch.Tensor, bad: Any, clean: Any) -> tuple[dict[str, Any], Scan]:
    s = scan(t, bad, clean)
    ev: dict[str, Any] = {"failing": s.failing, "of": s.numel}
    if s.failing:
        ev["first_index"] = unravel(s.first, t.shape)  # type: ignore[arg-type]
        ev["first_value"] = s.first_value
    if t.numel():
        ev.update({"min": math.nan, "max": math.nan} if s.min is None else {"min": s.min, "max": s.max})
    return ev, s


def _evidence(t: torch.Tensor, ok_mask: torch.Tensor, values: torch.Tensor | None = None) -> dict[str, Any]:
    """Evidence from a mask that is already there (slices of a simplex, bool
    or complex tensors): its first False found piece by piece."""
    values = t if values is None else values
    failing = int(ok_mask.numel() - ok_mask.sum())
    ev: dict[str, Any] = {"failing": failing, "of": int(ok_mask.numel())}
    if failing:
        idx = unravel(first_false(ok_mask), ok_mask.shape)  # type: ignore[arg-type]
        ev["first_index"] = idx
        ev["first_value"] = _num(values[idx]) if values.dim() else _num(values)
    ev.update(_minmax(t))
    return ev


def _range_clean(lo: Any, hi: Any) -> Any:
    """From a piece's min and max: can no element be outside [lo, hi]? (NaN fails a bound.)"""
    return lambda a, b: (lo is None or a >= lo) and (hi is None or b <= hi)


def finite_evidence(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach()
    if not (t.is_floating_point() or t.is_complex()):
        return {"failing": 0, "of": t.numel(), **_minmax(t)}
    if t.is_complex():
        ev = _evidence(t, torch.isfinite(t))
        if ev["failing"]:
            ev["nan"] = int(torch.isnan(t).sum())
            ev["inf"] = int(torch.isinf(t).sum())
        return ev
    ev, s = _scan_evidence(t, lambda p: ~torch.isfinite(p), lambda a, b: True)  # finite pieces: nothing fails
    if ev["failing"]:
        ev["nan"] = s.nan
        ev["inf"] = s.inf
    return ev


def range_evidence(t: torch.Tensor, lo=None, hi=None) -> dict[str, Any]:
    """``lo``/``hi``: numbers, or tensors that broadcast against ``t`` (per-element
    bounds: then the mask is full-size, one byte per element, and read piece by piece)."""
    t = t.detach()
    if not _scannable(t) or isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        return _evidence(t, _range_mask(t, lo, hi))
    return _scan_evidence(t, lambda p: ~_range_mask(p, lo, hi), _range_clean(lo, hi))[0]


def nonnegative_evidence(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach()
    if not _scannable(t):
        return _evidence(t, t >= 0)
    return _scan_evidence(t, lambda p: ~(p >= 0), _range_clean(0, None))[0]


def simplex_evidence(t: torch.Tensor, dim: int = -1, tol: float = 1e-4) -> dict[str, Any]:
    """``failing`` counts slices along ``dim`` (negative entries or a sum off 1);
    ``first_value`` is that slice's sum, ``negative`` counts negative elements."""
    t = t.detach()
    sums = _sums(t, dim)
    # amin per slice instead of a full-size (t >= 0) mask; NaN fails both, as before
    low = t.amin(dim=dim) if t.numel() and _scannable(t) else (t >= 0).all(dim=dim).logical_not()
    nonneg = low >= 0 if low.dtype != torch.bool else ~low
    slice_ok = ((sums - 1).abs() <= tol) & nonneg
    ev = _evidence(t, slice_ok, sums)
    ev["negative"] = scan(t, lambda p: p < 0, _range_clean(0, None)).failing if _scannable(t) else int((t < 0).sum())
    return ev


def indices_evidence(t: torch.Tensor, n: int) -> dict[str, Any]:
    t = t.detach()
    if not _is_integer(t):
        return {"failing": t.numel(), "of": t.numel(), "reason": f"dtype {t.dtype} is not an integer dtype"}
    return _scan_evidence(t, lambda p: ~((p >= 0) & (p < n)), lambda a, b: a >= 0 and b < n)[0]


# ---- padding masks ------------------------------------------------------------------


def padded_rows(t: torch.Tensor, side: str) -> torch.Tensor:
    """A bool per row (every dim but the last) of a 0/1 mask: the row follows the padding
    convention ``side`` (0/1 values, ones then zeros for "right", zeros then ones for
    "left", at least one 1). No host sync."""
    x = t.to(torch.int8) if t.dtype == torch.bool else t
    binary = ((x == 0) | (x == 1)).all(-1)
    if x.shape[-1] == 0:  # an empty row has no 1
        return torch.zeros(x.shape[:-1], dtype=torch.bool, device=t.device)
    d = x[..., 1:] - x[..., :-1]
    monotone = (d <= 0).all(-1) if side == "right" else (d >= 0).all(-1)
    first = x[..., 0] if side == "right" else x[..., -1]
    return binary & monotone & (first == 1)


def padding_ok(t: torch.Tensor, side: str) -> torch.Tensor:
    """Every row follows ``side`` (see ``padded_rows``): whole-tensor reductions, no sync."""
    if t.dim() == 0:
        return _false(t)
    if t.shape[-1] == 0:
        return torch.tensor(t.numel() == 0 and math.prod(t.shape[:-1]) == 0, device=t.device)
    x = t.to(torch.int8) if t.dtype == torch.bool else t
    d = x.diff(dim=-1)
    first = x[..., 0] if side == "right" else x[..., -1]
    steps = (d <= 0) if side == "right" else (d >= 0)
    return steps.all() & (first == 1).all() & ((x == 0) | (x == 1)).all()


def padding_evidence(t: torch.Tensor, side: str) -> dict[str, Any]:
    t = t.detach()
    if t.dim() == 0:
        return {"failing": 1, "of": 1, "reason": "a 0-dim tensor has no rows"}
    rows = padded_rows(t, side)
    bad = ~rows
    n = int(bad.sum())
    out: dict[str, Any] = {"failing": n, "of": rows.numel()}
    if n:
        idx = unravel(int(bad.flatten().to(torch.uint8).argmax()), tuple(rows.shape))
        row = t[idx] if idx else t
        shown = row.to(torch.int64).tolist()
        text = str(shown if len(shown) <= 16 else shown[:16] + ["..."])
        out["first_index"] = idx
        out["first_value"] = text
    return out
