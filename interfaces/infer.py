"""Derive an Interface from a live module by running it on example inputs.

Each example is a tensor, a tuple/list (positional arguments, named after
``forward``'s parameters) or a dict (keyword arguments: ``{"input_ids": ...,
"attention_mask": ...}`` for a Hugging Face model). An argument may itself be
nested (an LSTM's ``(x, (h0, c0))``). The module runs on meta tensors (a
deepcopy moved to ``meta``: no compute, no memory) and falls back to a real
run under ``torch.no_grad()`` when meta fails; with ``finite=True`` it runs
for real (the outputs' values are read).

What is described, and how:

- Every part of every argument and result: tensors (``TensorSpec``), tuples
  and lists (``TupleSpec``/``ListSpec``), dicts, dataclasses and
  ``ModelOutput`` mappings (``DictSpec``, with the class's qualified name
  unless it is a plain dict), values that are None in some examples
  (``OptionalSpec``), and any other object (a cache, a Python number) as an
  ``OpaqueSpec`` of its type, checked by type only. Nothing is dropped: the
  interface's description lists each part described by type only.
- Dims: across examples, a dim whose size varies becomes symbolic (``batch``
  at position 0, ``d1``, ``d2``.. elsewhere); dims that vary the same way in
  several tensors share one name (so give examples in which different dims
  vary differently). With one example every dim is fixed.
- Integer inputs read by an ``nn.Embedding`` (seen by a forward pre-hook on
  every embedding while the examples run: the tensor itself or a view of it)
  get ``range=(0, num_embeddings - 1)``, the smallest over the embeddings
  that read them; integer or bool inputs named like a mask (``attention_mask``,
  ``*_mask``) whose example values are all 0 or 1 get ``range=(0, 1)`` (the
  Hugging Face convention: 1 attends, 0 is padding). The description says
  where each range came from, and which integer inputs have no known range.
- With ``finite=True``: every floating input must be finite in the examples
  (``SpecError`` otherwise) and gets ``finite=True`` and the range its
  examples spanned; every floating output must be finite on the examples and
  is declared ``finite=True``. Without it no value domain is claimed for
  floating tensors.

dtype is what was seen (a set if it varied); device is ``any``. Outputs are
named ``result`` (one value), ``result0``.. (a tuple or list) or by key (a
mapping, a ``ModelOutput``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Mapping
from typing import Any

import torch

from modpact.errors import SpecError

from .interface import Interface
from .nested import DictSpec, ListSpec, OpaqueSpec, OptionalSpec, Spec, TupleSpec, type_name
from .spec import TensorSpec
from .tree import named_tensors

__all__ = ["infer_interface", "interface_from_tensors"]

_MASK = re.compile(r"(^|_)mask$")


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


def _as_named(batch: Any, module: torch.nn.Module) -> tuple[dict[str, Any], bool]:
    if isinstance(batch, torch.Tensor):
        batch = (batch,)
    if isinstance(batch, Mapping):
        return dict(batch), True
    if isinstance(batch, (tuple, list)):
        return dict(zip(_input_names(module, len(batch)), batch)), False
    raise SpecError(
        f"infer_interface: example {type(batch).__name__} is not a tensor, a tuple/list (positional "
        "arguments) or a dict (keyword arguments)"
    )


def _name_outputs(out: Any) -> dict[str, Any]:
    if isinstance(out, Mapping):  # dicts, ModelOutput
        return {str(k): v for k, v in out.items()}
    if isinstance(out, (tuple, list)) and type(out) in (tuple, list):
        return {f"result{i}": v for i, v in enumerate(out)}
    return {"result": out}


def _map_tensors(obj: Any, fn: Any) -> Any:
    """``obj`` with each tensor replaced by ``fn(tensor)``: tuples, lists, dicts, other objects kept."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if type(obj) in (tuple, list):
        return type(obj)(_map_tensors(x, fn) for x in obj)
    if type(obj) is dict:
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


class _Readers:
    """Forward pre-hooks on every nn.Embedding: which input tensors each one reads."""

    def __init__(self, module: torch.nn.Module, named: dict[str, Any]):
        self.leaves = [(p, t) for k, v in named.items() for p, t in named_tensors(v, k)]
        self.found: dict[str, list[tuple[str, int]]] = {}
        self.handles = [
            m.register_forward_pre_hook(self._hook(path or type(module).__name__, m.num_embeddings), with_kwargs=True)
            for path, m in module.named_modules()
            if isinstance(m, torch.nn.Embedding)
        ]

    def _hook(self, path: str, n: int) -> Any:
        def hook(mod: Any, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, torch.Tensor):
                return
            for leaf, t in self.leaves:
                if x is t or x._base is t:  # the input itself or a view of it (views share one base)
                    self.found.setdefault(leaf, []).append((path, n))

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _run(module: torch.nn.Module, named: dict, as_kwargs: bool, real: bool) -> tuple[Any, dict]:
    """The module's output on one example and the embeddings that read each input leaf."""

    def call(m: torch.nn.Module, args: dict) -> tuple[Any, dict]:
        readers = _Readers(m, args)
        try:
            with torch.no_grad():
                out = m(**args) if as_kwargs else m(*args.values())
        finally:
            readers.remove()
        return out, readers.found

    if not real:
        try:
            meta_mod = copy.deepcopy(module).to("meta")
            return call(meta_mod, _map_tensors(named, lambda t: torch.empty_like(t, device="meta")))
        except Exception:  # data-dependent ops, custom kernels, ...: run for real
            pass
    # fresh copies of the inputs: a view among the examples would share its base with another input
    return call(module, _map_tensors(named, lambda t: t.clone()))


def infer_interface(
    module: torch.nn.Module, *examples: Any, name: str | None = None, finite: bool = False
) -> Interface:
    """Run ``module`` on each example and describe what went in and out (see the module's docstring)."""
    if not examples:
        raise SpecError("infer_interface: give at least one example input batch")
    if not isinstance(finite, bool):
        raise SpecError(f"infer_interface(finite={finite!r}): expected True or False")
    seen_in, seen_out = [], []
    readers: dict[str, list[tuple[str, int]]] = {}
    kinds = set()
    for ex in examples:
        named, kw = _as_named(ex, module)
        kinds.add(kw)
        out, found = _run(module, named, kw, real=finite)
        for leaf, rs in found.items():
            readers.setdefault(leaf, [])
            readers[leaf] += [r for r in rs if r not in readers[leaf]]
        seen_in.append(named)
        seen_out.append(_name_outputs(out))
    if len(kinds) > 1:
        raise SpecError("infer_interface: give every example the same way (all dicts of keywords, or all positional)")
    notes: list[str] = []
    return interface_from_tensors(
        name or type(module).__name__,
        seen_in,
        seen_out,
        description=f"inferred from {len(examples)} example(s)",
        _describers=(_Describer("inputs", finite, readers, notes), _Describer("outputs", finite, {}, notes)),
    )


def interface_from_tensors(
    name: str,
    seen_in: list[dict[str, Any]],
    seen_out: list[dict[str, Any]],
    *,
    batch_dim: bool = False,
    description: str = "",
    _describers: tuple[_Describer, _Describer] | None = None,
) -> Interface:
    """An Interface from the named inputs and outputs seen in several calls
    (tensors or nested values; meta tensors are fine: only shapes and dtypes
    are read). A dim that varies becomes symbolic; with ``batch_dim`` dim 0
    of every tensor is the symbolic ``batch`` even when it never varied."""
    if not seen_in or len(seen_in) != len(seen_out):
        raise SpecError("interface_from_tensors: give the same non-zero number of input and output records")
    namer = _DimNamer(batch_dim)
    if _describers is None:
        shared: list[str] = []
        _describers = (_Describer("inputs", False, None, shared), _Describer("outputs", False, None, shared))
    din, dout = _describers
    inputs = din.describe_side(seen_in, namer)
    outputs = dout.describe_side(seen_out, namer)
    notes = list(dict.fromkeys(([description] if description else []) + din.notes + dout.notes))
    return Interface(name, inputs, outputs, description="; ".join(notes))


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


class _Describer:
    """Specs of one side (inputs or outputs) from the values seen at each place."""

    def __init__(
        self, side: str, finite: bool, readers: dict[str, list[tuple[str, int]]] | None, notes: list[str]
    ) -> None:
        # readers None: the values were not run through the module, so nothing is known of integer ranges
        self.side, self.finite, self.notes = side, finite, notes
        self.traced = readers is not None
        self.readers = readers or {}

    def side_names(self, seen: list[dict[str, Any]]) -> list[str]:
        keys = list(seen[0])
        for s in seen[1:]:
            if list(s) != keys:
                raise SpecError(f"infer_interface: {self.side} differ between examples: {keys} vs {list(s)}")
        return keys

    def describe_side(self, seen: list[dict[str, Any]], namer: _DimNamer) -> dict[str, Spec]:
        return {k: self.spec([s[k] for s in seen], k, namer) for k in self.side_names(seen)}

    def spec(self, vals: list[Any], path: str, namer: _DimNamer) -> Spec:
        where = f"{self.side}.{path}"
        present = [v for v in vals if v is not None]
        if not present:
            return OptionalSpec(None)
        if len(present) < len(vals):
            inner = self.spec(present, path, namer)
            return inner if isinstance(inner, OptionalSpec) else OptionalSpec(inner)
        if all(isinstance(v, torch.Tensor) for v in vals):
            return self.tensor(vals, path, namer)
        types = {type(v) for v in vals}
        if len(types) > 1:
            shown = ", ".join(sorted(type_name(t) for t in types))
            raise SpecError(f"infer_interface: {where} has different types across examples: {shown}")
        v0 = vals[0]
        if type(v0) in (tuple, list) or (isinstance(v0, tuple) and not isinstance(v0, torch.Tensor)):
            lengths = {len(v) for v in vals}
            if len(lengths) > 1:
                raise SpecError(
                    f"infer_interface: {where} has different lengths across examples: {sorted(lengths)}; "
                    "a TupleSpec or ListSpec has a fixed length"
                )
            items = [self.spec([v[i] for v in vals], f"{path}[{i}]", namer) for i in range(len(v0))]
            return ListSpec(items) if isinstance(v0, list) else TupleSpec(items)
        if isinstance(v0, Mapping) or (dataclasses.is_dataclass(v0) and not isinstance(v0, type)):
            fields = [DictSpec({}).fields_of(v) or {} for v in vals]
            keys = list(fields[0])
            for f in fields[1:]:
                if list(f) != keys:
                    raise SpecError(f"infer_interface: {where} has different keys across examples: {keys} vs {list(f)}")
            if not all(isinstance(k, str) and k for k in keys):
                return self.opaque(v0, where, "its keys are not all non-empty strings")
            specs = {k: self.spec([f[k] for f in fields], f"{path}.{k}", namer) for k in keys}
            return DictSpec(specs, type=None if type(v0) is dict else type_name(v0))
        return self.opaque(v0, where, "not a tensor, tuple, list, mapping or dataclass")

    def opaque(self, v: Any, where: str, why: str) -> OpaqueSpec:
        tname = type_name(v)
        note = f"{where} is described by its type {tname} only ({why})"
        self.notes.append(note)
        return OpaqueSpec(tname, note=f"described by type only: {why}")

    def tensor(self, ts: list[torch.Tensor], path: str, namer: _DimNamer) -> TensorSpec:
        where = f"{self.side}.{path}"
        ranks = {t.dim() for t in ts}
        if len(ranks) > 1:
            raise SpecError(f"infer_interface: {where} has different ranks across examples: {sorted(ranks)}")
        dims: list[Any] = []
        for i in range(ts[0].dim()):
            sizes = tuple(int(t.shape[i]) for t in ts)
            fixed = len(set(sizes)) == 1 and not (namer.batch_dim and i == 0)
            dims.append(sizes[0] if fixed else namer.name(sizes, i))
        dtypes = {str(t.dtype).replace("torch.", "") for t in ts}
        floating = all(t.is_floating_point() for t in ts)
        integral = all(not (t.is_floating_point() or t.is_complex()) for t in ts)
        kw: dict[str, Any] = {}
        if self.side == "inputs" and integral and self.traced:
            kw = self._int_range(ts, path)
        elif self.finite and floating:
            kw = self._finite(ts, where)
        return TensorSpec(dims, dtype=dtypes, **kw)

    def _int_range(self, ts: list[torch.Tensor], path: str) -> dict[str, Any]:
        where = f"{self.side}.{path}"
        rs = self.readers.get(path)
        if rs:
            n = min(k for _, k in rs)
            by = ", ".join(f"{p} (nn.Embedding, num_embeddings={k})" for p, k in rs)
            self.notes.append(f"{where}: range [0, {n - 1}] from the embedding(s) that read it: {by}")
            return {"range": (0, n - 1)}
        last = re.split(r"[.\[\]]", path.rstrip("]"))[-1]
        real = all(t.device.type != "meta" for t in ts)
        if all(t.dtype == torch.bool for t in ts):
            return {}
        if _MASK.search(last) and real and all(bool(((t == 0) | (t == 1)).all()) for t in ts):
            self.notes.append(f"{where}: a 0/1 mask (1 attends, 0 is padding): range [0, 1]")
            return {"range": (0, 1)}
        self.notes.append(f"{where}: integer values with no known range (no embedding read it)")
        return {}

    def _finite(self, ts: list[torch.Tensor], where: str) -> dict[str, Any]:
        if any(t.device.type == "meta" for t in ts):
            raise SpecError(f"infer_interface(finite=True): {where} is a meta tensor; its values cannot be read")
        for i, t in enumerate(ts):
            if not bool(torch.isfinite(t).all()):
                raise SpecError(
                    f"infer_interface(finite=True): {where} is not finite in example {i} "
                    f"({int((~torch.isfinite(t)).sum())} non-finite values)"
                )
        if self.side == "outputs":
            return {"finite": True}
        if not any(t.numel() for t in ts):
            return {"finite": True}
        lo = min(float(t.min()) for t in ts if t.numel())
        hi = max(float(t.max()) for t in ts if t.numel())
        self.notes.append(f"{where}: finite, in [{lo:.4g}, {hi:.4g}] (the range the examples spanned)")
        return {"finite": True, "range": (lo, hi)}
