"""Value histograms of offending tensors, for reports.

Computed on the monitor's replay path only (after a flag was set), never in
the hot path: a few reductions over the tensor, synchronous on purpose."""

from __future__ import annotations

import math

import torch

__all__ = ["value_histogram", "BINS"]

BINS = 24


def value_histogram(t: torch.Tensor, lo: float | None = None, hi: float | None = None, bins: int = BINS) -> dict | None:
    """``Histogram`` fields for ``t``: equal-width bins over its finite values,
    counts of NaN/+inf/-inf, and the contract's bounds. None for empty,
    boolean or meta tensors."""
    if not isinstance(t, torch.Tensor) or t.numel() == 0 or t.is_meta or t.dtype == torch.bool:
        return None
    t = t.detach()
    if t.is_complex():
        t = t.abs()
    t = t.reshape(-1).to(torch.float64)
    finite = torch.isfinite(t)
    vals = t[finite]
    out = {
        "nan": int(torch.isnan(t).sum()),
        "posinf": int((t == math.inf).sum()),
        "neginf": int((t == -math.inf).sum()),
        "bound_lo": _finite_or_none(lo),
        "bound_hi": _finite_or_none(hi),
    }
    if vals.numel() == 0:
        return {"lo": 0.0, "hi": 0.0, "counts": [], **out}
    a, b = float(vals.min()), float(vals.max())
    if a == b:
        a, b = a - 0.5, b + 0.5
    counts = torch.histc(vals, bins=bins, min=a, max=b)
    return {"lo": a, "hi": b, "counts": [int(c) for c in counts], **out}


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
