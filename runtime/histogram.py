"""Value histograms of offending tensors, for reports.

Computed on the monitor's replay path only (after a flag was set), never in
the hot path: a few reductions over the tensor, synchronous on purpose."""

from __future__ import annotations

import math

import torch

from modpact.interfaces.scan import histogram_counts, scan

__all__ = ["value_histogram", "BINS"]

BINS = 24


def value_histogram(t: torch.Tensor, lo: float | None = None, hi: float | None = None, bins: int = BINS) -> dict | None:
    """``Histogram`` fields for ``t``: equal-width bins over its finite values,
    counts of NaN/+inf/-inf, and the contract's bounds. None for empty,
    boolean or meta tensors. Two passes piece by piece (``interfaces.scan``):
    the same counts as ``torch.histc`` of a float64 copy, without the copy."""
    if not isinstance(t, torch.Tensor) or t.numel() == 0 or t.is_meta or t.dtype == torch.bool:
        return None
    t = t.detach()
    if t.is_complex():
        t = t.abs()
    s = scan(t)
    out = {
        "nan": s.nan,
        "posinf": s.posinf,
        "neginf": s.neginf,
        "bound_lo": _finite_or_none(lo),
        "bound_hi": _finite_or_none(hi),
    }
    if s.min is None:
        return {"lo": 0.0, "hi": 0.0, "counts": [], **out}
    a, b = float(s.min), float(s.max)
    if a == b:
        a, b = a - 0.5, b + 0.5
    return {"lo": a, "hi": b, "counts": histogram_counts(t, s, a, b, bins), **out}


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
