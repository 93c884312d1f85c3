"""Short tensor descriptions for messages: never print whole tensors.

``describe(t)`` reads metadata only (no device sync): ``f32[8,3,32]``.
``summarize(t)`` also reads values (syncs on CUDA; use on slow paths only):
``f32[8,3,32] nan=3 min=-1.2 max=4e7``.
"""

from __future__ import annotations

from typing import Any

import torch

from .scan import scan

__all__ = ["describe", "summarize", "dtype_abbrev"]

_ABBREV = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "bool",
    torch.complex64: "c64",
    torch.complex128: "c128",
}


def dtype_abbrev(dtype: torch.dtype) -> str:
    return _ABBREV.get(dtype, str(dtype).replace("torch.", ""))


def describe(value: Any) -> str:
    """Metadata-only description: dtype, shape and (if not cpu) device."""
    if isinstance(value, torch.Tensor):
        dev = "" if value.device.type == "cpu" else f" {value.device}"
        if value.is_nested:  # ragged: no fixed shape
            return f"{dtype_abbrev(value.dtype)}[nested, {value.size(0)} x {value.dim() - 1}-d]{dev}"
        shape = ",".join(str(s) for s in value.shape)
        layout = "" if value.layout is torch.strided else f" {str(value.layout).replace('torch.', '')}"
        return f"{dtype_abbrev(value.dtype)}[{shape}]{layout}{dev}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"{type(value).__name__}({inner}{more})"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.is_sparse:
        return t.coalesce().values()
    if t.is_nested:
        return torch.cat([c.reshape(-1) for c in t.unbind()]) if t.layout is torch.strided else t.values()
    return t.values()


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def summarize(value: Any) -> str:
    """Description plus value statistics (nan/inf counts, min, max)."""
    if not isinstance(value, torch.Tensor):
        return describe(value)
    head = describe(value)
    if value.device.type == "meta" or (not value.is_nested and value.numel() == 0):
        return head
    t = value.detach()
    if t.is_nested or t.layout is not torch.strided:  # the stored values
        t = _stored(t)
    parts = [head]
    if t.dtype == torch.bool:
        parts.append(f"true={int(t.sum())}")
        return " ".join(parts)
    if t.is_complex():
        t = t.abs()
    s = scan(t)  # piece by piece: no full-size mask or copy (interfaces/scan.py)
    if t.is_floating_point():
        if s.nan:
            parts.append(f"nan={s.nan}")
        if s.inf:
            parts.append(f"inf={s.inf}")
        if s.min is not None:
            parts.append(f"min={_fmt(float(s.min))} max={_fmt(float(s.max))}")
    else:
        parts.append(f"min={int(s.min)} max={int(s.max)}")
    return " ".join(parts)
