"""An Interface as ``dynamic_shapes`` for ``torch.export.export``.

Each dim of each input spec becomes, by its kind:

- fixed (``64``), or a named dim pinned by a label space: a constant (left
  out of ``dynamic_shapes``, so the program is specialized to it);
- named (``batch``): one ``torch.export.Dim`` per name, shared by every input
  that uses it, ``min``/``max`` from ``dims=``, else from the interface's own
  ``dims`` bounds, else ``min=1`` and no max (``dims=`` may only narrow the
  interface's bounds);
- an expression linear in one name (``n+1``, ``2*n``): a derived dim of that
  name's Dim (``2*n + 1``); any other expression, and anonymous dims (``_``,
  ``...``): ``Dim.DYNAMIC`` (torch.export relates dims linearly to one root only);
- a named variadic (``*b``): one Dim per position (``b_0``, ``b_1``), shared.

A broadcastable dim (``#c``: 1 or c) has no counterpart in an exported graph
(it is specialized one way or the other) and is refused with the reason.
Nothing here exports: ``plan_shapes`` reads the interface and the example's
sizes only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import Dim

from modpact.errors import SpecError
from modpact.interfaces import Interface
from modpact.interfaces.dims import Dim as SpecDim
from modpact.interfaces.dims import expr_names
from modpact.interfaces.nested import DictSpec, ListSpec, OpaqueSpec, OptionalSpec, TupleSpec, leaf_values, leaves
from modpact.interfaces.spec import TensorSpec

__all__ = ["ShapePlan", "plan_shapes", "dynamic_shapes", "linear_form", "positions", "leaf_specs", "leaf_example"]


@dataclass
class ShapePlan:
    """``dynamic_shapes`` for torch.export, and what each exported dim means."""

    dynamic_shapes: dict[str, dict[int, Any]]  # input leaf path (``x``, ``hx[0]``) -> {axis: Dim}
    dims: dict[str, Any] = field(default_factory=dict)  # interface dim name -> torch.export.Dim
    bounds: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # name -> (min, max or None)
    meaning: dict[tuple[str, int], SpecDim] = field(default_factory=dict)  # (input, axis) -> interface dim
    problems: list[str] = field(default_factory=list)  # contradictions found before exporting
    notes: list[str] = field(default_factory=list)  # what the export cannot express

    def with_auto(self) -> dict[str, dict[int, Any]]:
        """The same dims as ``Dim.AUTO`` (export decides): to find every dim the graph specializes."""
        return {k: {a: Dim.AUTO for a in axes} for k, axes in self.dynamic_shapes.items()}

    def nested(self, interface: Interface, flat: Mapping[str, dict[int, Any]] | None = None) -> dict[str, Any]:
        """Per input name, its dynamic shapes in the input's own structure (a tuple of
        ``{axis: Dim}`` for a tuple of tensors, a dict for a dict), as torch.export takes them."""
        flat = self.dynamic_shapes if flat is None else flat
        return {k: _nest(s, k, flat) for k, s in interface.inputs.items()}


def linear_form(text: str) -> tuple[str, int, int] | None:
    """``(name, a, b)`` when the dim expression is ``a*name + b`` with ints a > 0, else None."""
    import sympy  # imported when used: it takes a second to import

    names = expr_names(text)
    if len(names) != 1:
        return None
    n = sympy.Symbol(names[0], integer=True, positive=True)
    try:
        e = sympy.expand(sympy.sympify(text.replace("//", "/"), locals={names[0]: n}))
    except (sympy.SympifyError, TypeError, SyntaxError):
        return None
    if "//" in text or not e.is_polynomial(n) or sympy.degree(e, n) != 1:
        return None
    a, b = e.coeff(n, 1), e.coeff(n, 0)
    if not (a.is_Integer and b.is_Integer) or int(a) <= 0:
        return None
    return names[0], int(a), int(b)


def positions(shape: Any, rank: int) -> list[tuple[int, SpecDim, int | None]] | None:
    """``(axis, interface dim, index within a variadic)`` for each axis of a
    tensor of ``rank``; None when the rank cannot match the shape."""
    before, var, after = shape.split()
    if var is None:
        fixed: list[tuple[int, SpecDim, int | None]] = [(i, d, None) for i, d in enumerate(before)]
        return None if rank != len(before) else fixed
    n_var = rank - len(before) - len(after)
    if n_var < 0:
        return None
    out: list[tuple[int, SpecDim, int | None]] = [(i, d, None) for i, d in enumerate(before)]
    out += [(len(before) + j, var, j) for j in range(n_var)]
    out += [(len(before) + n_var + i, d, None) for i, d in enumerate(after)]
    return out


def _nest(spec: Any, path: str, flat: Mapping[str, dict[int, Any]]) -> Any:
    if isinstance(spec, TensorSpec):
        return flat.get(path, {})
    if isinstance(spec, (TupleSpec, ListSpec)):
        items = [_nest(x, f"{path}[{i}]", flat) for i, x in enumerate(spec.items)]
        return tuple(items) if isinstance(spec, TupleSpec) else items
    assert isinstance(spec, DictSpec)  # leaf_specs refused every other kind
    return {k: _nest(x, f"{path}.{k}", flat) for k, x in spec.fields.items()}


def leaf_specs(interface: Interface, what: str) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The inputs' and outputs' tensors by leaf path (``x``, ``hx[0]``, ``out.logits``):
    tensors and tuples, lists and dicts of them, to any depth. An optional or opaque
    part is a ``SpecError`` naming it: an exported graph takes and returns tensors."""
    refused = [
        f"{side}.{k} ({type(s).__name__})"
        for side, specs in (("inputs", interface.inputs), ("outputs", interface.outputs))
        for k, s in specs.items()
        if _has(s, (OptionalSpec, OpaqueSpec))
    ]
    if refused:
        raise SpecError(
            f"{what}: interface {interface.name!r} has optional or opaque parts: {', '.join(refused)}; "
            f"{what} handles tensors and tuples, lists and dicts of tensors"
        )
    ins = dict(p for k, s in interface.inputs.items() for p in leaves(s, k))
    outs = dict(p for k, s in interface.outputs.items() for p in leaves(s, k))
    return ins, outs


def _has(spec: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(spec, kinds):
        return True
    if isinstance(spec, (TupleSpec, ListSpec)):
        return any(_has(x, kinds) for x in spec.items)
    if isinstance(spec, DictSpec):
        return any(_has(x, kinds) for x in spec.fields.values())
    return False


def leaf_example(interface: Interface, example: Mapping[str, Any]) -> dict[str, Any]:
    """``example`` (input name -> value) as leaf path -> tensor, the paths of ``leaf_specs``."""
    return {path: v for path, _, v in leaf_values(interface.inputs, example)}


def _bounds(dims: Mapping[str, Any] | None, known: list[str]) -> dict[str, tuple[int, int | None]]:
    out: dict[str, tuple[int, int | None]] = {}
    for name, value in (dims or {}).items():
        if name not in known:
            raise SpecError(f"dims={{{name!r}: {value!r}}}: no dim {name!r} in the inputs (dims: {', '.join(known)})")
        if isinstance(value, tuple) and len(value) == 2 and all(type(v) is int or v is None for v in value):
            lo, hi = value
        else:
            raise SpecError(f"dims={{{name!r}: {value!r}}}: expected a (min, max) pair of ints (max may be None)")
        if lo is None or lo < 0 or (hi is not None and hi < lo):
            raise SpecError(f"dims={{{name!r}: {value!r}}}: expected 0 <= min <= max")
        out[name] = (lo, hi)
    return out


def _declared(interface: Interface, known: list[str]) -> dict[str, tuple[int, int | None]]:
    """The interface's own dims bounds of the inputs' dims: the default bounds (min 1 when unsaid)."""
    return {n: (1 if lo is None else max(lo, 1), hi) for n, (lo, hi) in interface.dims.items() if n in known}


def plan_shapes(interface: Interface, example: Mapping[str, Any], dims: Mapping[str, Any] | None = None) -> ShapePlan:
    """The plan for ``example`` (input name -> tensor or a tuple, list or dict of
    them, checked against the interface by the caller): which axes are dynamic and how they relate.
    ``dims``: ``{name: (min, max)}`` bounds of named dims (max None: unbounded)."""
    ins = leaf_specs(interface, "dynamic_shapes")[0]
    example = leaf_example(interface, example)
    known = [n for s in ins.values() for n in s.shape.names]
    bounds = _declared(interface, known)
    for name, (lo, hi) in _bounds(dims, known).items():  # given bounds narrow the interface's own
        dlo, dhi = interface.dims.get(name, (None, None))
        if (dlo is not None and lo < dlo) or (dhi is not None and (hi is None or hi > dhi)):
            raise SpecError(
                f"dims={{{name!r}: {(lo, hi)!r}}}: outside the interface's dims bounds for {name!r} "
                f"[{0 if dlo is None else dlo}, {'inf' if dhi is None else dhi}]; give bounds within them"
            )
        bounds[name] = (lo, hi)
    pinned = _pinned(interface)
    plan = ShapePlan({k: {} for k in ins})
    for tname, spec in ins.items():
        t = example.get(tname)
        if not isinstance(t, torch.Tensor):
            continue
        for axis, d, j in positions(spec.shape, t.dim()) or []:
            where = f"inputs.{tname}[{axis}]"
            if d.kind == "fixed" or (d.kind == "named" and d.name in pinned and not d.variadic):
                continue  # a constant
            if d.broadcast:
                raise SpecError(
                    f"export: {where} is the broadcastable dim '#{d.name}' (1 or {d.name}); an exported graph "
                    "either broadcasts there or not: write the dim as a name or a size in the interface"
                )
            key = d.name if d.kind == "named" and not d.variadic else None
            if d.kind == "named" and d.variadic:
                key = f"{d.name}_{j}"
            if t.shape[axis] in (0, 1):
                plan.problems.append(
                    f"{where} ({d}) is {t.shape[axis]} in the example: torch.export specializes sizes 0 and 1; "
                    "give an example where it is at least 2"
                )
            if key is not None:
                plan.dynamic_shapes[tname][axis] = _named(plan, key, bounds.get(str(d.name)), where)
                plan.meaning[(tname, axis)] = d
            elif d.kind == "expr" and (lin := linear_form(str(d.name))) is not None:
                root, a, b = lin
                base = _named(plan, root, bounds.get(root), where)
                plan.dynamic_shapes[tname][axis] = base * a + b if a != 1 else base + b if b else base
                plan.meaning[(tname, axis)] = d
            else:
                if d.kind == "expr":
                    plan.notes.append(
                        f"{where} ('{d.name}') is exported as a dim of its own: torch.export relates dims "
                        "linearly to one name only; the ported module's interface check still relates them"
                    )
                plan.dynamic_shapes[tname][axis] = Dim.DYNAMIC
                plan.meaning[(tname, axis)] = d
    return plan


def _named(plan: ShapePlan, key: str, bound: tuple[int, int | None] | None, where: str) -> Any:
    if key not in plan.dims:
        lo, hi = bound if bound is not None else (1, None)
        plan.dims[key] = Dim(key, min=lo) if hi is None else Dim(key, min=lo, max=hi)
        plan.bounds[key] = (lo, hi)
    return plan.dims[key]


def _pinned(interface: Interface) -> set[str]:
    """Named dims a label space pins to its size (a constant in the graph)."""
    out = set()
    for spec in leaf_specs(interface, "dynamic_shapes")[0].values():
        if spec.labels is not None:
            d = spec._dim_at(spec.label_dim)
            if d is not None and d.kind == "named" and not d.broadcast and d.name is not None:
                out.add(d.name)
    return out


def dynamic_shapes(
    interface: Interface, example: Mapping[str, Any], dims: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``dynamic_shapes`` for ``torch.export.export(module, (), kwargs=example, dynamic_shapes=...)``:
    per input, ``{axis: Dim}``, or that in the input's structure (tuples, lists, dicts)."""
    return plan_shapes(interface, example, dims).nested(interface)
