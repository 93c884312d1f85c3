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
- Arguments that some examples leave out, where ``forward`` defaults them to
  None, are None in those examples (an ``OptionalSpec``).
- Dims: across examples, a dim whose size varies becomes symbolic (``batch``
  at position 0, ``d1``, ``d2``.. elsewhere); dims that vary the same way in
  several tensors share one name (so give examples in which different dims
  vary differently). With one example every dim is fixed.
- Integer inputs read by an ``nn.Embedding`` (seen by a forward pre-hook on
  every embedding while the examples run: the tensor itself or a view of it)
  get ``range=(0, num_embeddings - 1)``, the smallest over the embeddings
  that read them; integer or bool inputs named like a mask (``attention_mask``,
  ``*_mask``) whose example values are all 0 or 1 get ``range=(0, 1)`` (the
  Hugging Face convention: 1 attends, 0 is padding), and ``padding="right"``
  (``"left"``) when every observed row is ones then zeros (zeros then ones)
  with at least one 1. An integer ``labels`` input gets ``range=(0, n - 1)``,
  ``n`` the last dim of the ``logits`` output, unless the examples hold
  other values (an ignore index). The description says where each range
  came from, and which integer inputs have no known range.
- A module with a Hugging Face ``config`` giving ``max_position_embeddings``
  gets ``dims={<seq>: (1, max_position_embeddings)}`` for the symbolic last
  dim of ``input_ids`` (``token_type_ids``, ``position_ids``,
  ``attention_mask``): longer sequences have no position embedding.
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
import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from modpact.errors import SpecError

from .interface import Interface
from .nested import DictSpec, ListSpec, OpaqueSpec, OptionalSpec, Spec, TupleSpec, type_name
from .spec import TensorSpec
from .tree import named_tensors
from .values import padded_rows

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


def _run(module: torch.nn.Module, named: dict, as_kwargs: bool, real: bool, i: int) -> tuple[Any, dict]:
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
    try:
        return call(module, _map_tensors(named, lambda t: t.clone()))
    except Exception as e:
        raise SpecError(
            f"infer_interface: {type(module).__name__} raised {type(e).__name__} on example {i}: {str(e)[:300]}"
        ) from e


def _fill_defaults(module: torch.nn.Module, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arguments some examples leave out are None there, when ``forward`` defaults them to None
    (they become optional); any other difference between the examples' arguments is an error."""
    keys = list(dict.fromkeys(k for s in seen for k in s))
    if all(list(s) == keys for s in seen):
        return seen
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]  # no signature: nothing has a default
    order = {k: i for i, k in enumerate(params)}
    keys.sort(key=lambda k: order.get(k, len(order)))
    out = []
    for i, s in enumerate(seen):
        for k in keys:
            if k not in s and (k not in params or params[k].default is not None):
                raise SpecError(
                    f"infer_interface: inputs differ between examples: example {i} has no {k!r}, and "
                    f"{type(module).__name__}.forward has no default None for it"
                )
        out.append({k: s.get(k) for k in keys})
    return out


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
    for i, ex in enumerate(examples):
        named, kw = _as_named(ex, module)
        kinds.add(kw)
        out, found = _run(module, named, kw, real=finite, i=i)
        for leaf, rs in found.items():
            readers.setdefault(leaf, [])
            readers[leaf] += [r for r in rs if r not in readers[leaf]]
        seen_in.append(named)
        seen_out.append(_name_outputs(out))
    if len(kinds) > 1:
        raise SpecError("infer_interface: give every example the same way (all dicts of keywords, or all positional)")
    seen_in = _fill_defaults(module, seen_in)
    notes: list[str] = []
    din = _Describer("inputs", finite, readers, notes, classes=_classes(module, seen_out))
    iface = interface_from_tensors(
        name or type(module).__name__,
        seen_in,
        seen_out,
        description=f"inferred from {len(examples)} example(s)",
        _describers=(din, _Describer("outputs", finite, {}, notes)),
    )
    dims, why = _position_bounds(module, iface)
    if not dims:
        return iface
    desc = "; ".join([iface.description, *why]) if iface.description else "; ".join(why)
    return Interface(iface.name, iface.inputs, iface.outputs, description=desc, dims=dims)


def _config(module: torch.nn.Module) -> Any:
    """A Hugging Face-style ``config`` of the module (an object with ``to_dict``), or None."""
    cfg = getattr(module, "config", None)
    return cfg if cfg is not None and callable(getattr(cfg, "to_dict", None)) else None


def _classes(module: torch.nn.Module, seen_out: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The number of classes a ``labels`` argument indexes: the last dim of the ``logits``
    output when it is the same in every example (what the module scores), with where it came
    from; Hugging Face's ``config.num_labels`` is named when it agrees."""
    sizes = {int(o["logits"].shape[-1]) for o in seen_out if isinstance(o.get("logits"), torch.Tensor)}
    if len(sizes) != 1 or not all(isinstance(o.get("logits"), torch.Tensor) for o in seen_out):
        return None
    (n,) = sizes
    if n < 1:
        return None
    why = f"the last dim of outputs.logits ({n})"
    cfg = _config(module)
    if cfg is not None and getattr(cfg, "num_labels", None) == n:
        why += f", = {type(module).__name__}.config.num_labels"
    return n, why


#: inputs whose last dim is the sequence a model's position embeddings index
_POSITIONAL = ("input_ids", "token_type_ids", "position_ids", "attention_mask")


def _position_bounds(module: torch.nn.Module, iface: Interface) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """``{seq dim: (1, max_position_embeddings)}`` for a Hugging Face model whose config says how
    many positions it embeds (a longer sequence fails in its position embedding), with the reason."""
    cfg = _config(module)
    limit = getattr(cfg, "max_position_embeddings", None) if cfg is not None else None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return {}, []
    dims: dict[str, tuple[int, int]] = {}
    why = []
    for k in _POSITIONAL:
        spec = iface.inputs.get(k)
        if isinstance(spec, OptionalSpec):
            spec = spec.inner
        if not isinstance(spec, TensorSpec) or not len(spec.shape):
            continue
        d = spec.shape[-1]
        if d.kind == "named" and not d.variadic and d.name is not None and d.name not in dims:
            dims[d.name] = (1, limit)
            why.append(
                f"dims: {d.name} (inputs.{k}[-1], the sequence) in [1, {limit}] from "
                f"{type(module).__name__}.config.max_position_embeddings={limit} (longer sequences have no "
                "position embedding)"
            )
    return dims, why


def interface_from_tensors(
    name: str,
    seen_in: list[dict[str, Any]],
    seen_out: list[dict[str, Any]],
    *,
    batch_dim: bool = False,
    batch_axes: Mapping[str, int | None] | None = None,
    description: str = "",
    _describers: tuple[_Describer, _Describer] | None = None,
) -> Interface:
    """An Interface from the named inputs and outputs seen in several calls
    (tensors or nested values; meta tensors are fine: only shapes and dtypes
    are read). A dim that varies becomes symbolic; with ``batch_dim`` dim 0
    of every tensor is the symbolic ``batch`` even when it never varied."""
    if not seen_in or len(seen_in) != len(seen_out):
        raise SpecError("interface_from_tensors: give the same non-zero number of input and output records")
    namer = _DimNamer(batch_dim, batch_axes)
    if _describers is None:
        shared: list[str] = []
        _describers = (_Describer("inputs", False, None, shared), _Describer("outputs", False, None, shared))
    din, dout = _describers
    namer.register(seen_in)
    namer.register(seen_out)
    inputs = din.describe_side(seen_in, namer)
    outputs = dout.describe_side(seen_out, namer)
    notes = list(dict.fromkeys(([description] if description else []) + din.notes + dout.notes))
    return Interface(name, inputs, outputs, description="; ".join(notes))


_ABSENT: Any = object()  # a value whose container was None in that example


class _DimNamer:
    """Names for the dims that vary across examples, one per pattern of sizes."""

    def __init__(self, batch_dim: bool = False, batch_axes: Mapping[str, int | None] | None = None) -> None:
        self.by_sizes: dict[tuple[int, ...], str] = {}
        self.count = 0
        self.batch_dim = batch_dim
        # leaf path (``result1[0]``) -> its batch axis (None: none); any other leaf: axis 0
        self.batch_axes = dict(batch_axes or {})

    def is_batch(self, pos: int, path: str) -> bool:
        return self.batch_dim and self.batch_axes.get(path.lstrip("."), 0) == pos

    def dim(self, sizes: tuple[int | None, ...], pos: int, path: str = "") -> int | str:
        """A fixed size, or a name. ``sizes`` has None for examples without the tensor:
        such a dim takes the one varying name whose sizes agree with it, else its fixed size."""
        known = [s for s in sizes if s is not None]
        if None not in sizes:
            full = tuple(known)
            if len(set(full)) == 1 and not self.is_batch(pos, path):
                return full[0]
            return self.name(full, pos, path)
        if self.is_batch(pos, path):
            return "batch"
        fits = {n for sz, n in self.by_sizes.items() if all(a is None or a == b for a, b in zip(sizes, sz))}
        if len(fits) == 1:
            return fits.pop()
        if len(set(known)) == 1:
            return known[0]
        return self.name(tuple(s if s is not None else -1 for s in sizes), pos, path)

    def register(self, seen: list[Any]) -> None:
        """Name, in order, the varying dims of every tensor that each example has (so that a
        tensor some examples lack can be linked to them, whatever the order of description)."""
        by_path: dict[str, list[torch.Tensor]] = {}
        for value in seen:
            for p, t in named_tensors(value, ""):
                by_path.setdefault(p, []).append(t)
        for p, ts in by_path.items():
            if len(ts) == len(seen) and len({t.dim() for t in ts}) == 1:
                for i in range(ts[0].dim()):
                    sizes = tuple(int(t.shape[i]) for t in ts)
                    if len(set(sizes)) > 1:
                        self.name(sizes, i, p)

    def name(self, sizes: tuple[int, ...], pos: int, path: str = "") -> str:
        if self.is_batch(pos, path):
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
        self,
        side: str,
        finite: bool,
        readers: dict[str, list[tuple[str, int]]] | None,
        notes: list[str],
        classes: tuple[int, str] | None = None,
    ) -> None:
        # readers None: the values were not run through the module, so nothing is known of integer ranges
        self.side, self.finite, self.notes = side, finite, notes
        self.classes = classes  # (n, where from): the class count a ``labels`` input indexes
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
        """The spec of the values seen at one place, one per example: None where the
        value was None, ``_ABSENT`` where its container was None."""
        where = f"{self.side}.{path}"
        present = [v for v in vals if v is not None and v is not _ABSENT]
        if not present:
            return OptionalSpec(None)
        inner = self._present(vals, present, path, where, namer)
        if any(v is None for v in vals):
            return inner if isinstance(inner, OptionalSpec) else OptionalSpec(inner)
        return inner

    def _present(self, vals: list[Any], present: list[Any], path: str, where: str, namer: _DimNamer) -> Spec:
        if all(isinstance(v, torch.Tensor) for v in present):
            return self.tensor([v if isinstance(v, torch.Tensor) else None for v in vals], path, namer)
        types = {type(v) for v in present}
        if len(types) > 1:
            shown = ", ".join(sorted(type_name(t) for t in types))
            raise SpecError(f"infer_interface: {where} has different types across examples: {shown}")
        v0 = present[0]

        def part(v: Any, key: Any) -> Any:
            return v[key] if v is not None and v is not _ABSENT else _ABSENT

        if isinstance(v0, (tuple, list)):
            lengths = {len(v) for v in present}
            if len(lengths) > 1:
                raise SpecError(
                    f"infer_interface: {where} has different lengths across examples: {sorted(lengths)}; "
                    "a TupleSpec or ListSpec has a fixed length"
                )
            items = [self.spec([part(v, i) for v in vals], f"{path}[{i}]", namer) for i in range(len(v0))]
            return ListSpec(items) if isinstance(v0, list) else TupleSpec(items)
        if isinstance(v0, Mapping) or (dataclasses.is_dataclass(v0) and not isinstance(v0, type)):
            fields = [_ABSENT if v is None or v is _ABSENT else (DictSpec({}).fields_of(v) or {}) for v in vals]
            keys = list(next(f for f in fields if f is not _ABSENT))
            for f in fields:
                if f is not _ABSENT and list(f) != keys:
                    raise SpecError(f"infer_interface: {where} has different keys across examples: {keys} vs {list(f)}")
            if not all(isinstance(k, str) and k for k in keys):
                return self.opaque(v0, where, "its keys are not all non-empty strings")
            specs = {k: self.spec([part(f, k) for f in fields], f"{path}.{k}", namer) for k in keys}
            return DictSpec(specs, type=None if type(v0) is dict else type_name(v0))
        return self.opaque(v0, where, "not a tensor, tuple, list, mapping or dataclass")

    def opaque(self, v: Any, where: str, why: str) -> OpaqueSpec:
        tname = type_name(v)
        note = f"{where} is described by its type {tname} only ({why})"
        self.notes.append(note)
        return OpaqueSpec(tname, note=f"described by type only: {why}")

    def tensor(self, seen: list[torch.Tensor | None], path: str, namer: _DimNamer) -> TensorSpec:
        """``seen``: the tensor of each example, None where the example has none."""
        where = f"{self.side}.{path}"
        ts = [t for t in seen if t is not None]
        ranks = {t.dim() for t in ts}
        if len(ranks) > 1:
            raise SpecError(f"infer_interface: {where} has different ranks across examples: {sorted(ranks)}")
        dims: list[Any] = []
        for i in range(ts[0].dim()):
            dims.append(namer.dim(tuple(None if t is None else int(t.shape[i]) for t in seen), i, path))
        dtypes = {str(t.dtype).replace("torch.", "") for t in ts}
        floating = all(t.is_floating_point() for t in ts)
        integral = all(not (t.is_floating_point() or t.is_complex()) for t in ts)
        kw: dict[str, Any] = {}
        if self.side == "inputs" and integral and self.traced:
            kw = self._int_range(ts, path)
        elif integral:  # an output: a mask it passes on (a split stage's) is described as the input it came from
            kw = self._mask_range(ts, path)
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
        if all(t.dtype == torch.bool for t in ts):
            return {}
        if path == "labels" and self.classes is not None:
            n, why = self.classes
            real = all(t.device.type != "meta" for t in ts)
            outside = real and any(bool(((t < 0) | (t >= n)).any()) for t in ts if t.numel())
            if not outside:
                self.notes.append(f"{where}: class labels, range [0, {n - 1}] from {why}")
                return {"range": (0, n - 1)}
            self.notes.append(
                f"{where}: no range claimed: the examples hold labels outside [0, {n - 1}] ({why}), "
                "such as an ignore index"
            )
            return {}
        mask = self._mask_range(ts, path)
        if not mask:
            self.notes.append(f"{where}: integer values with no known range (no embedding read it)")
        return mask

    def _mask_range(self, ts: list[torch.Tensor], path: str) -> dict[str, Any]:
        """``range=(0, 1)`` for integers named like a mask whose example values are all 0 or 1."""
        last = re.split(r"[.\[\]]", path.rstrip("]"))[-1]
        real = all(t.device.type != "meta" for t in ts)
        if any(t.dtype == torch.bool for t in ts) or not (_MASK.search(last) and real):
            return {}
        if all(bool(((t == 0) | (t == 1)).all()) for t in ts):
            self.notes.append(f"{self.side}.{path}: a 0/1 mask (1 attends, 0 is padding): range [0, 1]")
            out: dict[str, Any] = {"range": (0, 1)}
            for side in ("right", "left"):  # right first: rows of ones only fit both
                if all(t.dim() >= 1 and t.shape[-1] >= 1 and bool(padded_rows(t, side).all()) for t in ts):
                    rows = sum(math.prod(t.shape[:-1]) for t in ts)
                    padded = sum(int((t == 0).any(-1).sum()) for t in ts)
                    form = "ones then zeros" if side == "right" else "zeros then ones"
                    self.notes.append(
                        f"{self.side}.{path}: {side} padding: every observed row ({rows}; {padded} with padding) "
                        f"is {form} with at least one 1"
                    )
                    out["padding"] = side
                    break
            return out
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
