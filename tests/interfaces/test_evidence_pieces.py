"""Evidence read piece by piece (interfaces/scan.py) gives the same fields, with
the same meaning, as the full-size computation it replaced (kept here as the
reference), for any dtype, layout, piece size and placement of NaN/inf; and
no operation it runs allocates more than a piece, whatever the tensor's size
(bench/evidence.py measures the time and memory on 50M elements)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import modpact.interfaces.scan as scan_module
from modpact.interfaces import summary as S
from modpact.interfaces import values as V
from modpact.runtime.histogram import value_histogram

# -- the reference: the full-size computation (a mask of every element, nonzero(), a float64 copy) -----------


def ref_minmax(t):
    if t.numel() == 0 or t.dtype == torch.bool or t.is_complex():
        return {}
    vals = t[torch.isfinite(t)] if t.is_floating_point() else t
    if vals.numel() == 0:
        return {"min": math.nan, "max": math.nan}
    return {"min": vals.min().item(), "max": vals.max().item()}


def ref_evidence(t, ok, values=None):
    values = t if values is None else values
    bad = ~ok
    ev = {"failing": int(bad.sum()), "of": int(ok.numel())}
    if ev["failing"]:
        idx = tuple(int(i) for i in bad.nonzero()[0])
        ev["first_index"] = idx
        ev["first_value"] = values[idx].item() if values.dim() else values.item()
    ev.update(ref_minmax(t))
    return ev


def ref_finite(t):
    if not t.is_floating_point():
        return {"failing": 0, "of": t.numel(), **ref_minmax(t)}
    ev = ref_evidence(t, torch.isfinite(t))
    if ev["failing"]:
        ev["nan"], ev["inf"] = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return ev


def ref_histogram(t, lo, hi, bins=24):
    flat = t.reshape(-1).to(torch.float64)
    vals = flat[torch.isfinite(flat)]
    out = {
        "nan": int(torch.isnan(flat).sum()),
        "posinf": int((flat == math.inf).sum()),
        "neginf": int((flat == -math.inf).sum()),
        "bound_lo": None if lo is None else float(lo),
        "bound_hi": None if hi is None else float(hi),
    }
    if vals.numel() == 0:
        return {"lo": 0.0, "hi": 0.0, "counts": [], **out}
    a, b = float(vals.min()), float(vals.max())
    if a == b:
        a, b = a - 0.5, b + 0.5
    return {"lo": a, "hi": b, "counts": [int(c) for c in torch.histc(vals, bins=bins, min=a, max=b)], **out}


def ref_summarize(t):
    parts = [S.describe(t)]
    if t.numel() == 0:
        return parts[0]
    if t.is_floating_point():
        nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        parts += [f"nan={nan}"] * bool(nan) + [f"inf={inf}"] * bool(inf)
        f = t[torch.isfinite(t)]
        if f.numel():
            parts.append(f"min={float(f.min()):.4g} max={float(f.max()):.4g}")
    else:
        parts.append(f"min={int(t.min())} max={int(t.max())}")
    return " ".join(parts)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and isinstance(b[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
        for k in a
    )


def random_tensor(rng: random.Random) -> torch.Tensor:
    shape = tuple(rng.randint(0 if rng.random() < 0.05 else 1, 6) for _ in range(rng.randint(0, 4)))
    dtype = rng.choice([torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8])
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    if dtype.is_floating_point:
        t = (torch.randn(shape, generator=gen) * rng.choice([1, 10, 1000])).to(dtype)
        for _ in range(rng.randint(0, 3) if t.numel() else 0):
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([math.nan, math.inf, -math.inf, 0.0])
    else:
        t = torch.randint(0 if dtype == torch.uint8 else -5, 9, shape, dtype=dtype, generator=gen)
    if t.dim() >= 2 and rng.random() < 0.5:
        t = t.transpose(0, -1)  # not contiguous: pieces are copies of at most a piece
    if t.dim() >= 1 and t.shape[0] > 1 and rng.random() < 0.3:
        t = t[::2]
    return t


@pytest.mark.parametrize("seed", range(6))
def test_same_evidence_as_the_full_size_computation(seed, monkeypatch):
    rng = random.Random(seed)
    for _ in range(60):
        monkeypatch.setattr(scan_module, "PIECE", rng.choice([1, 2, 3, 7, 16, 1 << 18]))
        monkeypatch.setattr(scan_module, "HISTOGRAM_PIECE", rng.choice([1, 5, 1 << 20]))
        t = random_tensor(rng)
        lo, hi = rng.choice([(None, 1.0), (-1.0, None), (-1.0, 1.0), (0, 3), (-1000, 1000)])
        where = f"{t.dtype} {tuple(t.shape)} stride {t.stride()} piece {scan_module.PIECE}"
        assert same(V.finite_evidence(t), ref_finite(t)), where
        assert same(V.range_evidence(t, lo, hi), ref_evidence(t, V._range_mask(t, lo, hi))), where
        assert same(V.nonnegative_evidence(t), ref_evidence(t, t >= 0)), where
        assert S.summarize(t) == ref_summarize(t), where
        if t.numel():
            assert value_histogram(t, lo, hi) == ref_histogram(t, lo, hi), where
        if not t.is_floating_point():
            assert same(V.indices_evidence(t, 4), ref_evidence(t, (t >= 0) & (t < 4))), where
        elif t.dim() and t.numel():
            sums = V._sums(t, -1)
            ref = ref_evidence(t, ((sums - 1).abs() <= 1e-4) & (t >= 0).all(dim=-1), sums)
            assert same(V.simplex_evidence(t), {**ref, "negative": int((t < 0).sum())}), where


def test_one_nan_in_a_big_tensor_is_found_where_it_is():
    t = torch.randn(3, 1_000_003)
    t[2, 999_999] = math.nan
    t[0, 7] = math.inf
    ev = V.finite_evidence(t)
    assert ev["failing"] == 2 and ev["first_index"] == (0, 7) and ev["first_value"] == math.inf
    assert ev["nan"] == 1 and ev["inf"] == 1
    h = value_histogram(t)
    assert sum(h["counts"]) == t.numel() - 2 and h["nan"] == 1 and h["posinf"] == 1


class LargestAllocation(TorchDispatchMode):
    """The largest tensor any operation makes that is neither a view nor one of its inputs (in place, out=)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)
        }
        for o in tree_flatten(out)[0]:
            if isinstance(o, torch.Tensor) and not o._is_view() and o.untyped_storage().data_ptr() not in inputs:
                if o.numel() > self.numel:
                    self.numel, self.op = o.numel(), func
        return out


@pytest.mark.parametrize(
    "evidence",
    [
        V.finite_evidence,
        S.summarize,
        value_histogram,
        lambda t: V.range_evidence(t, -1, 1),
        V.nonnegative_evidence,
        lambda t: V.simplex_evidence(t.reshape(100, 1000)),
    ],
    ids=["finite", "summarize", "histogram", "range", "nonnegative", "simplex"],
)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_no_operation_allocates_more_than_a_piece(evidence, layout, monkeypatch):
    monkeypatch.setattr(scan_module, "PIECE", 1000)
    monkeypatch.setattr(scan_module, "HISTOGRAM_PIECE", 1000)
    t = torch.randn(1000, 100)
    t[50, 5] = math.nan
    t = t if layout == "contiguous" else t.T
    seen = LargestAllocation()
    with seen:
        evidence(t)
    assert seen.numel <= 1000, f"{seen.op} made a tensor of {seen.numel} elements (a piece is 1000 of 100,000)"


def test_histograms_of_extreme_values():
    huge = torch.tensor([1e300, 1e300, math.nan], dtype=torch.float64)  # equal, beyond +-0.5's reach
    h = value_histogram(huge)
    assert h["counts"][12] == 2 and sum(h["counts"]) == 2 and h["nan"] == 1
    wide = torch.tensor([-1.7e308, 0.0, 1.7e308, math.inf, math.nan], dtype=torch.float64)  # hi - lo overflows
    h = value_histogram(wide)
    assert h["counts"][0] == 1 and h["counts"][12] == 1 and h["counts"][-1] == 1 and sum(h["counts"]) == 3
    assert h["lo"] == -1.7e308 and h["posinf"] == 1 and h["nan"] == 1
