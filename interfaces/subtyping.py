"""Compatibility as subtyping: spec A satisfies spec B when every tensor
that matches A also matches B. Every reason is collected, not just the first.

Shapes: a fixed dim satisfies the same fixed dim or any named dim; named dims
may be renamed consistently (each of B's names stands for one A term across
all tensors compared together); an anonymous dim of A only satisfies an
anonymous dim of B, or a B name used nowhere else. Variadics: B without a
variadic needs A of the same fixed rank; B's variadic absorbs A's middle
dims (and A's variadic), A's prefix/suffix must cover B's.

Nested specs (``nested.py``) compare structurally, leaf by leaf, with one
renaming across all leaves: a tuple satisfies a tuple of the same length
(a list a list) item by item; a dict satisfies a dict with the same keys
(and the same ``type`` name, when the consumer names one); a value
satisfies ``OptionalSpec(s)`` when it satisfies ``s`` (None satisfies any
optional), while an optional value satisfies only an optional spec; an
opaque type satisfies the same type name only (names are compared, classes
are never imported, so a subclass relation cannot be proved).

``spec_reasons`` compares two specs, ``mapping_compat`` two mappings of
specs (an Interface's outputs and another's inputs); ``check_compatible``
(compat.py) and ``Interface.is_substitutable_for`` are built on them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from modpact.errors import CompatibilityError

from .dims import Dim, Shape, eval_expr, expr_names
from .dtypes import describe_dtype, dtype_name
from .nested import DictSpec, OpaqueSpec, OptionalSpec, Spec, _SeqSpec
from .spec import TensorSpec, _fmt_range

__all__ = ["Compatibility", "mapping_compat", "shape_reasons", "spec_reasons", "any_spec_reasons"]


@dataclass
class Compatibility:
    """Truthy iff compatible. ``reasons`` lists every reason it is not; ``notes``
    hold remarks that do not block (e.g. how to align label spaces)."""

    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    producer: str = "producer"
    consumer: str = "consumer"

    @property
    def ok(self) -> bool:
        return not self.reasons

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"{self.producer} satisfies {self.consumer}"
        return f"{self.producer} does not satisfy {self.consumer}:\n" + "\n".join(f"  - {r}" for r in self.reasons)

    def raise_if_incompatible(self) -> Compatibility:
        if not self.ok:
            raise CompatibilityError(f"{self.producer} does not satisfy {self.consumer}", self.reasons)
        return self


_fresh = itertools.count()


class _Renaming:
    """B's dim names -> the A term each stands for; conflicts become reasons."""

    def __init__(self) -> None:
        self.map: dict[str, Any] = {}

    def bind(self, bname: str, term: Any, where: str, reasons: list[str]) -> None:
        if bname in self.map and self.map[bname] != term:
            reasons.append(f"{where}: dim '{bname}' would have to be both {_term(self.map[bname])} and {_term(term)}")
        else:
            self.map.setdefault(bname, term)


def _term(t: Any) -> str:
    if isinstance(t, tuple) and t and t[0] == "anon":
        return "an unconstrained dim"
    if isinstance(t, tuple) and t and t[0] == "var":
        return f"'*{t[1]}'"
    if isinstance(t, tuple):
        return "(" + " ".join(_term(x) for x in t) + ")"
    return str(t) if isinstance(t, int) else f"'{t}'"


def _a_term(d: Dim) -> Any:
    if d.kind == "fixed":
        return d.size
    if d.kind == "named":
        assert d.name is not None  # named dims have a name
        return ("#" if d.broadcast else "") + d.name
    if d.kind == "expr":
        assert d.name is not None  # the expression's text
        return "expr:" + d.name
    return ("anon", next(_fresh))


def _dim_reason(a: Dim, b: Dim, where: str, ren: _Renaming, reasons: list[str], deferred: list) -> None:
    if b.kind == "anon":
        return
    if b.kind == "fixed":
        if not (a.kind == "fixed" and a.size == b.size):
            reasons.append(f"{where}: {a} does not satisfy fixed size {b.size}")
        return
    assert b.name is not None  # expr and named dims have a name (the expression's text for expr)
    if b.kind == "expr":
        if a.kind == "expr" and a.name == b.name:
            for n in expr_names(b.name):  # a's expression is the same text
                ren.bind(n, n, where, reasons)
        elif a.kind == "fixed":
            deferred.append((a.size, b.name, where))
        else:
            reasons.append(f"{where}: cannot prove {a} equals '{b.name}'")
        return
    # b named: '#m' in A stands for "1 or m", a term of its own unless B is broadcastable too
    if b.broadcast and a.kind == "fixed" and a.size == 1:
        return
    term = _a_term(a)
    if isinstance(term, str) and term.startswith("#"):
        term = term[1:] if b.broadcast else ("anon", next(_fresh))  # each '#m' may be 1 on its own
    ren.bind(b.name, term, where, reasons)


def shape_reasons(a: Shape, b: Shape, where: str, ren: _Renaming | None = None) -> list[str]:
    ren = _Renaming() if ren is None else ren
    reasons: list[str] = []
    deferred: list = []
    ab, av, aa = a.split()
    bb, bv, ba = b.split()
    if bv is None:
        if av is not None:
            return [f"{where}: shape {str(a)!r} allows any rank >= {len(a) - 1}, {str(b)!r} needs rank {len(b)}"]
        if len(a) != len(b):
            return [f"{where}: rank {len(a)} ({str(a)!r}) does not satisfy rank {len(b)} ({str(b)!r})"]
        pairs = list(zip(a, b))
        middle: list[Dim] = []
    elif av is None:
        if len(a) < len(bb) + len(ba):
            return [f"{where}: rank {len(a)} ({str(a)!r}) is below the minimum {len(bb) + len(ba)} of {str(b)!r}"]
        pairs = list(zip(a[: len(bb)], bb)) + list(zip(a[len(a) - len(ba) :], ba))
        middle = list(a[len(bb) : len(a) - len(ba)])
    else:
        if len(ab) < len(bb) or len(aa) < len(ba):
            return [f"{where}: variadic shape {str(a)!r} does not pin the dims {str(b)!r} needs around its variadic"]
        pairs = list(zip(ab, bb)) + list(zip(aa[len(aa) - len(ba) :], ba))
        middle = list(ab[len(bb) :]) + [av] + list(aa[: len(aa) - len(ba)])
    for da, db in pairs:
        _dim_reason(da, db, where, ren, reasons, deferred)
    if bv is not None and bv.kind == "named":
        assert bv.name is not None  # named dims have a name
        terms = tuple(
            ("var", d.name)
            if d.variadic and d.kind == "named"
            else ("anon", next(_fresh))
            if d.broadcast and not bv.broadcast
            else _a_term(d)
            for d in middle
        )
        ren.bind("*" + bv.name, terms, where, reasons)
    for size, expr, w in deferred:
        env = {k: v for k, v in ren.map.items() if isinstance(v, int)}
        if all(n in env for n in expr_names(expr)):
            if eval_expr(expr, env) != size:
                reasons.append(f"{w}: {size} does not satisfy '{expr}' = {eval_expr(expr, env)}")
        else:
            reasons.append(f"{w}: cannot prove {size} equals '{expr}' (its dims are not fixed)")
    return reasons


def _implied_range(s: TensorSpec):
    lo, hi = s.range if s.range is not None else (None, None)
    cand = []
    if s.indices is not None:
        cand.append((0, s.indices - 1))
    if s.simplex is not None:
        cand.append((0, 1))
    for clo, chi in cand:
        lo = clo if lo is None else max(lo, clo)
        hi = chi if hi is None else min(hi, chi)
    return lo, hi


def spec_reasons(
    a: TensorSpec, b: TensorSpec, where: str = "tensor", ren: _Renaming | None = None, notes: list[str] | None = None
) -> list[str]:
    """Every reason why a tensor matching ``a`` might not match ``b``."""
    reasons = shape_reasons(a.shape, b.shape, where, ren)
    extra = a.allowed - b.allowed
    if extra:
        names = sorted(dtype_name(d) for d in extra)
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        reasons.append(f"{where}: dtype {describe_dtype(a.dtype)} allows {shown}, not in {describe_dtype(b.dtype)}")
    if b.device != "any" and a.device != b.device:
        reasons.append(f"{where}: device {a.device} does not satisfy {b.device}")
    lo, hi = _implied_range(a)
    if b.range is not None:
        blo, bhi = b.range
        if (blo is not None and (lo is None or lo < blo)) or (bhi is not None and (hi is None or hi > bhi)):
            reasons.append(f"{where}: range {_fmt_range((lo, hi))} is not within {_fmt_range(b.range)}")
    if b.finite:
        integral = all(not (d.is_floating_point or d.is_complex) for d in a.allowed)
        if not (a.finite or (lo is not None and hi is not None) or integral):
            reasons.append(f"{where}: finite values are required but not guaranteed (no finite=True or bounded range)")
    if b.simplex is not None:
        if a.simplex is None:
            reasons.append(f"{where}: a simplex along dim {b.simplex} is required but not guaranteed")
        elif not _same_axis(a, a.simplex, b, b.simplex):
            reasons.append(f"{where}: simplex along dim {a.simplex} does not satisfy simplex along dim {b.simplex}")
        elif a.simplex_tol > b.simplex_tol:
            reasons.append(f"{where}: simplex tolerance {a.simplex_tol} is looser than {b.simplex_tol}")
    if b.indices is not None and (a.indices is None or a.indices > b.indices):
        got = "no index bound" if a.indices is None else f"indices in [0, {a.indices})"
        reasons.append(f"{where}: {got} does not satisfy indices in [0, {b.indices})")
    if b.padding is not None and a.padding != b.padding:
        got = "no padding convention" if a.padding is None else f"{a.padding} padding"
        reasons.append(f"{where}: {got} does not satisfy {b.padding} padding")
    if b.labels is not None:
        if a.labels is None:
            reasons.append(f"{where}: label space {b.labels.name!r} is required; producer declares none")
        elif a.labels == b.labels:
            if not _same_axis(a, a.label_dim, b, b.label_dim):
                reasons.append(f"{where}: labels along dim {a.label_dim} do not satisfy labels along dim {b.label_dim}")
        elif not a.labels.missing_from(b.labels):
            perm = a.labels.align(b.labels)
            reasons.append(
                f"{where}: label spaces {a.labels.name!r} and {b.labels.name!r} differ in order but are alignable: "
                f"insert {a.labels.name}.adapter({b.labels.name}) (perm {perm})"
            )
        else:
            missing = a.labels.missing_from(b.labels)
            reasons.append(
                f"{where}: label space {a.labels.name!r} lacks {missing} of {b.labels.name!r}; not alignable"
            )
    return reasons


def _kind(s: Spec | None) -> str:
    if s is None:
        return "None"
    if isinstance(s, TensorSpec):
        return "a tensor"
    if isinstance(s, _SeqSpec):
        return f"a {s.kind} of {len(s.items)}"
    if isinstance(s, DictSpec):
        return f"a {s.type}" if s.type else "a mapping"
    if isinstance(s, OptionalSpec):
        return f"an optional {_kind(s.inner)}" if s.inner is not None else "None"
    return f"an opaque {s.type}"


def any_spec_reasons(
    a: Spec, b: Spec, where: str = "value", ren: _Renaming | None = None, notes: list[str] | None = None
) -> list[str]:
    """Every reason why a value matching ``a`` might not match ``b``; tensors
    or nested specs (one renaming of dim names across every leaf)."""
    ren = _Renaming() if ren is None else ren
    if isinstance(b, OptionalSpec):
        if isinstance(a, OptionalSpec):
            if a.inner is None:
                return []
            if b.inner is None:
                return [f"{where}: {_kind(a)} does not satisfy None"]
            return any_spec_reasons(a.inner, b.inner, where, ren, notes)
        if b.inner is None:
            return [f"{where}: {_kind(a)} does not satisfy None"]
        return any_spec_reasons(a, b.inner, where, ren, notes)
    if isinstance(a, OptionalSpec):
        return [f"{where}: {_kind(a)} may be None, which {_kind(b)} does not allow"]
    if isinstance(a, TensorSpec) and isinstance(b, TensorSpec):
        return spec_reasons(a, b, where, ren, notes)
    if isinstance(a, _SeqSpec) and isinstance(b, _SeqSpec) and a.kind == b.kind:
        if len(a.items) != len(b.items):
            return [f"{where}: {_kind(a)} does not satisfy {_kind(b)}"]
        reasons: list[str] = []
        for i, (x, y) in enumerate(zip(a.items, b.items)):
            reasons += any_spec_reasons(x, y, f"{where}[{i}]", ren, notes)
        return reasons
    if isinstance(a, DictSpec) and isinstance(b, DictSpec):
        reasons = []
        if b.type is not None and a.type != b.type:
            reasons.append(f"{where}: {_kind(a)} is not known to be a {b.type} (types are compared by name)")
        for k, y in b.fields.items():
            if k not in a.fields:
                reasons.append(f"{where}.{k} is required but the producer has no key {k!r}")
            else:
                reasons += any_spec_reasons(a.fields[k], y, f"{where}.{k}", ren, notes)
        for k in a.fields:
            if k not in b.fields:
                reasons.append(f"{where}.{k} is not a key of the consumer's {_kind(b)}")
        return reasons
    if isinstance(a, OpaqueSpec) and isinstance(b, OpaqueSpec):
        if a.type != b.type:
            return [f"{where}: {_kind(a)} is not known to be a {b.type} (types are compared by name)"]
        return []
    return [f"{where}: {_kind(a)} does not satisfy {_kind(b)}"]


def _same_axis(a: TensorSpec, ia: int, b: TensorSpec, ib: int) -> bool:
    if ia == ib:
        return True
    if a.shape.variadic_index is None and b.shape.variadic_index is None and len(a.shape) == len(b.shape):
        return ia % len(a.shape) == ib % len(b.shape)
    return False


def mapping_compat(a: dict, b: dict, aname: str, bname: str, allow_extra: bool) -> Compatibility:
    """Every spec of ``b`` satisfied by the same-named spec of ``a`` (positional if one each)."""
    reasons: list[str] = []
    notes: list[str] = []
    ren = _Renaming()
    if len(a) == 1 and len(b) == 1 and set(a) != set(b):
        (ka, sa), (kb, sb) = next(iter(a.items())), next(iter(b.items()))
        notes.append(f"matched {aname}.{ka} to {bname}.{kb} by position")
        reasons += any_spec_reasons(sa, sb, f"{ka} -> {kb}", ren, notes)
        return Compatibility(reasons, notes, aname, bname)
    for k, sb in b.items():
        if k not in a:
            reasons.append(f"{bname}.{k} is required but {aname} has no '{k}'")
        else:
            reasons += any_spec_reasons(a[k], sb, k, ren, notes)
    if not allow_extra:
        for k in a:
            if k not in b:
                reasons.append(f"{aname}.{k} is not declared by {bname}")
    return Compatibility(reasons, notes, aname, bname)
