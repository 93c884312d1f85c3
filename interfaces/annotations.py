"""TensorSpecs from jaxtyping annotations (``Float[Tensor, "batch 64"]``);
``Interface.from_annotations`` builds an Interface from them."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from modpact.errors import SpecError

from .spec import TensorSpec

__all__ = ["specs_from_annotations", "spec_from_annotation"]

# jaxtyping dtype class name -> modpact dtype (family, name or set)
_FAMILY = {
    "Float": "floating",
    "Int": "signed",
    "UInt": {"uint8", "uint16", "uint32", "uint64"},
    "Integer": "integer",
    "Bool": "bool",
    "Complex": "complex",
    "Inexact": {"floating", "complex"},
    "Real": {"floating", "integer"},
    "Num": {"floating", "integer", "complex"},
    "Shaped": "any",
    "Key": "any",
}


def spec_from_annotation(ann: Any, where: str = "annotation") -> TensorSpec:
    """One jaxtyping array annotation -> TensorSpec (shape and dtype)."""
    dim_str = getattr(ann, "dim_str", None)
    jdtype = getattr(ann, "dtype", None)
    if dim_str is None or jdtype is None:
        raise SpecError(f"{where}: {ann!r} is not a jaxtyping array annotation like Float[Tensor, 'batch 64']")
    name = getattr(jdtype, "__name__", "")
    if name in _FAMILY:
        dtype = _FAMILY[name]
    else:
        import torch

        known = [d for d in getattr(ann, "dtypes", ()) if isinstance(getattr(torch, d, None), torch.dtype)]
        if not known:
            raise SpecError(f"{where}: jaxtyping dtype {name!r} has no torch dtype")
        dtype = set(known)
    return TensorSpec(dim_str if dim_str.strip() else (), dtype=dtype)


def specs_from_annotations(fn) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """(inputs, outputs) of ``fn``: inputs from annotated parameters (non-array
    ones are skipped); the return annotation gives output ``result``, or
    ``result0``, ``result1``.. for tuples."""
    hints = typing.get_type_hints(fn, include_extras=True)
    inputs = {}
    for p in inspect.signature(fn).parameters:
        if p in hints and hasattr(hints[p], "dim_str"):
            inputs[p] = spec_from_annotation(hints[p], f"{fn.__qualname__}({p})")
    outputs = {}
    ret = hints.get("return")
    if ret is not None:
        args = typing.get_args(ret) if typing.get_origin(ret) is tuple else None
        if args:
            for i, a in enumerate(args):
                outputs[f"result{i}"] = spec_from_annotation(a, f"{fn.__qualname__} -> [{i}]")
        elif hasattr(ret, "dim_str"):
            outputs["result"] = spec_from_annotation(ret, f"{fn.__qualname__} -> result")
    return inputs, outputs
