"""Derive an Interface from a live module by running it on example inputs.

Each example batch is a tensor, a tuple/list of tensors (positional, named after
``forward``'s parameters) or a dict. The module runs on meta tensors (a deepcopy
moved to ``meta``: no compute, no memory) and falls back to a real run under
``torch.no_grad()`` when meta fails. Across examples, a dim whose size varies
becomes symbolic: ``batch`` at position 0, ``d1``, ``d2``.. elsewhere; dims that
vary the same way in several tensors share one name. With one example every
dim is fixed. dtype is what was seen (a set if it varied); device is ``any``.
Outputs are named ``result`` (one tensor), ``result0``.. (tuple) or by dict key.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from modpact.errors import SpecError

from .interface import Interface
from .spec import TensorSpec

__all__ = ["infer_interface", "interface_from_tensors"]


def _input_names(module: torch.nn.Module, n: int) -> list[str]:
    try:
        params = [
            p
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        names = [p.name for p in params[:n]]
    except (TypeError, ValueError):
        names = []
    return names + [f"x{i}" for i in range(len(names), n)]


def _as_named(batch: Any, module: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    if isinstance(batch, torch.Tensor):
        batch = (batch,)
    if isinstance(batch, dict):
        return dict(batch), True
    if isinstance(batch, (tuple, list)):
        return dict(zip(_input_names(module, len(batch)), batch)), False
    raise SpecError(f"infer_interface: example {type(batch).__name__} is not a tensor, tuple or dict")


def _name_outputs(out: Any) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"result": out}
    if isinstance(out, dict):
        return {str(k): v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if isinstance(out, (tuple, list)):
        return {f"result{i}": v for i, v in enumerate(out) if isinstance(v, torch.Tensor)}
    raise SpecError(f"infer_interface: module returned {type(out).__name__}; expected tensor(s)")


def _run(module: torch.nn.Module, named: dict, as_kwargs: bool) -> dict[str, torch.Tensor]:
    def call(m, args):
        with torch.no_grad():
            return m(**args) if as_kwargs else m(*args.values())

    try:
        meta_mod = copy.deepcopy(module).to("meta")
        meta_args = {
            k: torch.empty_like(v, device="meta") if isinstance(v, torch.Tensor) else v for k, v in named.items()
        }
        return _name_outputs(call(meta_mod, meta_args))
    except Exception:  # data-dependent ops, custom kernels, ...: run for real
        return _name_outputs(call(module, named))


def infer_interface(module: torch.nn.Module, *examples: Any, name: str | None = None) -> Interface:
    """Run ``module`` on each example and describe what went in and out."""
    if not examples:
        raise SpecError("infer_interface: give at least one example input batch")
    seen_in, seen_out = [], []
    for ex in examples:
        named, kw = _as_named(ex, module)
        seen_in.append(named)
        seen_out.append(_run(module, named, kw))
    return interface_from_tensors(
        name or type(module).__name__, seen_in, seen_out, description=f"inferred from {len(examples)} example(s)"
    )


def interface_from_tensors(
    name: str,
    seen_in: list[dict[str, Any]],
    seen_out: list[dict[str, Any]],
    *,
    batch_dim: bool = False,
    description: str = "",
) -> Interface:
    """An Interface from the named input and output tensors seen in several
    calls (meta tensors are fine: only shapes and dtypes are read). A dim
    that varies becomes symbolic; with ``batch_dim`` dim 0 of every tensor
    is the symbolic ``batch`` even when it never varied."""
    if not seen_in or len(seen_in) != len(seen_out):
        raise SpecError("interface_from_tensors: give the same non-zero number of input and output records")
    namer = _DimNamer(batch_dim)
    inputs = _specs(seen_in, "inputs", namer)
    outputs = _specs(seen_out, "outputs", namer)
    return Interface(name, inputs, outputs, description=description)


class _DimNamer:
    def __init__(self, batch_dim: bool = False) -> None:
        self.by_sizes: dict[tuple[int, ...], str] = {}
        self.count = 0
        self.batch_dim = batch_dim

    def name(self, sizes: tuple[int, ...], pos: int) -> str:
        if self.batch_dim and pos == 0:
            return "batch"
        if sizes not in self.by_sizes:
            if pos == 0 and "batch" not in self.by_sizes.values():
                self.by_sizes[sizes] = "batch"
            else:
                self.count += 1
                self.by_sizes[sizes] = f"d{self.count}"
        return self.by_sizes[sizes]


def _specs(seen: list[dict[str, Any]], side: str, namer: _DimNamer) -> dict[str, TensorSpec]:
    keys = list(seen[0])
    for s in seen[1:]:
        if list(s) != keys:
            raise SpecError(f"infer_interface: {side} differ between examples: {keys} vs {list(s)}")
    out = {}
    for k in keys:
        ts = [s[k] for s in seen]
        if not all(isinstance(t, torch.Tensor) for t in ts):
            continue
        ranks = {t.dim() for t in ts}
        if len(ranks) > 1:
            raise SpecError(f"infer_interface: {side}.{k} has different ranks across examples: {sorted(ranks)}")
        dims: list[Any] = []
        for i in range(ts[0].dim()):
            sizes = tuple(int(t.shape[i]) for t in ts)
            fixed = len(set(sizes)) == 1 and not (namer.batch_dim and i == 0)
            dims.append(sizes[0] if fixed else namer.name(sizes, i))
        dtypes = {str(t.dtype).replace("torch.", "") for t in ts}
        out[k] = TensorSpec(dims, dtype=dtypes)
    return out
