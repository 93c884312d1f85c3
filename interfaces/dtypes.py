"""Dtype specs: one torch dtype name, a family, or a set of those.

Normal form (what is stored, compared and serialized): a string (one name or
family) or a sorted tuple of strings. ``allowed`` is the set of torch dtypes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from modpact.errors import SpecError

__all__ = ["FAMILIES", "DTYPES", "normalize_dtype", "allowed_dtypes", "dtype_name"]


def _all_dtypes() -> dict[str, torch.dtype]:
    out: dict[str, torch.dtype] = {}
    for attr in dir(torch):
        val = getattr(torch, attr, None)
        if isinstance(val, torch.dtype):
            out[attr] = val
    return out


#: every torch dtype by name, aliases included (``float`` -> float32)
DTYPES: dict[str, torch.dtype] = _all_dtypes()


def dtype_name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def _canonical(dt: torch.dtype) -> str:
    return dtype_name(dt)


def _is_quantized(dt: torch.dtype) -> bool:
    s = str(dt)
    return "qint" in s or "quint" in s or "bits" in s


def _is_integer(dt: torch.dtype) -> bool:
    return not (dt.is_floating_point or dt.is_complex or dt == torch.bool or _is_quantized(dt))


_CANON = sorted({_canonical(d) for d in DTYPES.values()})
FAMILIES: dict[str, frozenset[torch.dtype]] = {
    "floating": frozenset(d for d in DTYPES.values() if d.is_floating_point),
    "integer": frozenset(d for d in DTYPES.values() if _is_integer(d)),
    "signed": frozenset(d for d in DTYPES.values() if _is_integer(d) and d.is_signed),
    "bool": frozenset({torch.bool}),
    "complex": frozenset(d for d in DTYPES.values() if d.is_complex),
    "any": frozenset(DTYPES.values()),
}

_ACCEPTED = (
    "expected a torch dtype name (float32, int64, ...), a family "
    "(floating, integer, signed, bool, complex, any) or a set of those"
)


def _one(item, where: str, original) -> str:
    if isinstance(item, torch.dtype):
        return _canonical(item)
    if isinstance(item, str):
        key = item.replace("torch.", "").strip()
        if key in FAMILIES:
            return key
        if key in DTYPES:
            return _canonical(DTYPES[key])
    raise SpecError(f"{where}(dtype={original!r}): unknown dtype {item!r}; {_ACCEPTED}")


def normalize_dtype(spec: str | torch.dtype | Iterable, where: str = "TensorSpec") -> str | tuple[str, ...]:
    if isinstance(spec, (str, torch.dtype)):
        return _one(spec, where, spec)
    if isinstance(spec, (set, frozenset, list, tuple)):
        names = sorted({_one(x, where, spec) for x in spec})
        if not names:
            raise SpecError(f"{where}(dtype={spec!r}): empty dtype set; {_ACCEPTED}")
        if "any" in names:
            return "any"
        return names[0] if len(names) == 1 else tuple(names)
    raise SpecError(f"{where}(dtype={spec!r}): unknown dtype {spec!r}; {_ACCEPTED}")


def allowed_dtypes(norm: str | tuple[str, ...]) -> frozenset[torch.dtype]:
    items = (norm,) if isinstance(norm, str) else norm
    out: set[torch.dtype] = set()
    for x in items:
        out |= FAMILIES[x] if x in FAMILIES else {DTYPES[x]}
    return frozenset(out)


def describe_dtype(norm: str | tuple[str, ...]) -> str:
    return norm if isinstance(norm, str) else "{" + ", ".join(norm) + "}"
