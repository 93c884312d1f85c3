"""Built-in conditions: value domains, metadata relations, labels, ``mostly``.

Value conditions reuse ``modpact.interfaces.values`` (device form for
``device_ok``, evidence form for ``check``). Conditions that re-run the
callable live in :mod:`modpact.contracts.relational` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from modpact.errors import SpecError
from modpact.interfaces import values as V
from modpact.interfaces.labels import LabelSpace
from modpact.interfaces.summary import describe

from .condition import Condition, Outcome, as_condition, register

__all__ = [
    "finite",
    "in_range",
    "simplex",
    "nonnegative",
    "norm_at_most",
    "shape_preserved",
    "dtype_preserved",
    "labels_within",
    "mostly",
    "batch_independent",
    "invariant_under",
    "equivariant_under",
    "monotone",
    "lipschitz_at_most",
    "agrees_with",
]


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise SpecError(f"Expected {what} to be an argument name (an identifier string), got {value!r}")
    return value


def _number(value: Any, what: str, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"Expected {what} to be a number, got {value!r} (type={type(value).__name__})")
    if value != value:  # NaN: every comparison with it is false, so no value could pass or fail as meant
        raise SpecError(f"Expected {what} to be a number, got nan")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # tensors compare with int64 scalars
        raise SpecError(f"Expected {what} to fit in 64 bits, got an integer of {value.bit_length()} bits")
    return value


def tensors_of(value: Any, name: str) -> list[torch.Tensor]:
    """The tensors inside a value (a tensor, or a tuple/list/dict of them)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        out = [v for v in value if isinstance(v, torch.Tensor)]
    elif isinstance(value, Mapping):
        out = [v for v in value.values() if isinstance(v, torch.Tensor)]
    else:
        out = []
    if not out:
        raise TypeError(f"{name} is {describe(value)}, not a tensor")
    return out


def _and(acc: Any, ok: Any) -> Any:
    return ok if acc is None else acc & ok


def _row_mask(mask: torch.Tensor) -> torch.Tensor:
    if mask.ndim == 0:
        return mask.reshape(1)
    return mask.reshape(mask.shape[0], -1).all(dim=1)


class _Elementwise(Condition):
    """A value condition on one or more named tensors, with an evidence form."""

    def _ok(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _evidence(self, t: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def _mask(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        acc = None
        for n in self.reads:
            for t in tensors_of(env[n], n):
                acc = _and(acc, self._ok(t))
        return True if acc is None else acc

    def ok(self, env: Mapping[str, Any]) -> bool:
        for n in self.reads:
            for t in tensors_of(env[n], n):
                if not bool(self._ok(t)):
                    return False
        return True

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        for n in self.reads:
            ts = tensors_of(env[n], n)
            for i, t in enumerate(ts):
                ev = self._evidence(t)
                if ev.get("failing"):
                    where = n if len(ts) == 1 else f"{n}[{i}]"
                    return {"tensor": where, **ev} if len(self.reads) > 1 or len(ts) > 1 else ev
        return {}

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        acc = None
        for n in self.reads:
            for t in tensors_of(env[n], n):
                acc = _and(acc, _row_mask(self._mask(t)))
        return acc


@register
class Finite(_Elementwise):
    name = "finite"

    def __init__(self, names: Sequence[str] = ("result",)):
        names = (names,) if isinstance(names, str) else tuple(names)
        for n in names:
            _name(n, "finite(...) names")
        super().__init__(names=names)
        self.reads = names

    def _ok(self, t):
        return V.finite_ok(t)

    def ok(self, env: Mapping[str, Any]) -> bool:
        # Host fast path: a float sum is finite only if every element is (one
        # reduction, ~3x cheaper than isfinite().all() on CPU); a non-finite sum
        # may be an overflow, so confirm with the exact check.
        for n in self.reads:
            for t in tensors_of(env[n], n):
                if t.is_floating_point():
                    if not math.isfinite(t.detach().sum().item()) and not bool(V.finite_ok(t)):
                        return False
                elif t.is_complex() and not bool(V.finite_ok(t)):
                    return False
        return True

    def _evidence(self, t):
        return V.finite_evidence(t)

    def _mask(self, t):
        return torch.isfinite(t) if (t.is_floating_point() or t.is_complex()) else torch.ones_like(t, dtype=torch.bool)


def finite(*names: str) -> Condition:
    """Every element of each named tensor is finite (no NaN, no inf).
    Without names: ``result``."""
    return Finite(names or ("result",))


@register
class InRange(_Elementwise):
    name = "in_range"

    def __init__(self, name: str = "result", lo: float | None = None, hi: float | None = None):
        _name(name, "in_range(name)")
        _number(lo, "in_range(lo)", allow_none=True)
        _number(hi, "in_range(hi)", allow_none=True)
        if lo is None and hi is None:
            raise SpecError(f"in_range({name!r}): give lo, hi or both")
        if lo is not None and hi is not None and lo > hi:
            raise SpecError(f"Cannot have in_range({name!r}, lo={lo!r}, hi={hi!r}) with hi < lo")
        super().__init__(name=name, lo=lo, hi=hi)
        self.reads = (name,)
        self.lo, self.hi = lo, hi

    @property
    def text(self):
        return f"in_range({self.reads[0]}, {self.lo!r}, {self.hi!r})"

    def _ok(self, t):
        return V.range_ok(t, self.lo, self.hi)

    def _evidence(self, t):
        return V.range_evidence(t, self.lo, self.hi)

    def _mask(self, t):
        m = torch.ones_like(t, dtype=torch.bool)
        if self.lo is not None:
            m = m & (t >= self.lo)
        if self.hi is not None:
            m = m & (t <= self.hi)
        return m


def in_range(name: str, lo: float | None = None, hi: float | None = None) -> Condition:
    """Every element of ``name`` lies in ``[lo, hi]`` (NaN fails)."""
    return InRange(name, lo, hi)


@register
class Nonnegative(_Elementwise):
    name = "nonnegative"

    def __init__(self, name: str = "result"):
        _name(name, "nonnegative(name)")
        super().__init__(name=name)
        self.reads = (name,)

    def _ok(self, t):
        return V.nonnegative_ok(t)

    def _evidence(self, t):
        return V.nonnegative_evidence(t)

    def _mask(self, t):
        return t >= 0


def nonnegative(name: str = "result") -> Condition:
    """Every element of ``name`` is >= 0 (NaN fails)."""
    return Nonnegative(name)


@register
class Simplex(_Elementwise):
    name = "simplex"

    def __init__(self, name: str = "result", dim: int = -1, tol: float = 1e-4):
        _name(name, "simplex(name)")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise SpecError(f"Expected simplex(dim) to be an int, got {dim!r}")
        _number(tol, "simplex(tol)")
        if tol < 0:
            raise SpecError(f"Cannot have simplex(tol={tol!r}) < 0")
        super().__init__(name=name, dim=dim, tol=tol)
        self.reads = (name,)
        self.dim, self.tol = dim, tol

    def _ok(self, t):
        return V.simplex_ok(t, self.dim, self.tol)

    def _evidence(self, t):
        return V.simplex_evidence(t, self.dim, self.tol)

    def _mask(self, t):
        s = t.sum(dim=self.dim, dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)
        return ((s - 1).abs() <= self.tol) & (t >= 0).all(dim=self.dim)


def simplex(name: str = "result", dim: int = -1, tol: float = 1e-4) -> Condition:
    """Non-negative and summing to 1 (within ``tol``) along ``dim``: probabilities."""
    return Simplex(name, dim, tol)


@register
class NormAtMost(_Elementwise):
    name = "norm_at_most"

    def __init__(self, name: str = "result", bound: float = 1.0, p: float = 2, dim: int | None = None):
        _name(name, "norm_at_most(name)")
        _number(bound, "norm_at_most(bound)")
        _number(p, "norm_at_most(p)")
        if bound < 0:
            raise SpecError(f"Cannot have norm_at_most({name!r}, bound={bound!r}) < 0")
        super().__init__(name=name, bound=bound, p=p, dim=dim)
        self.reads = (name,)
        self.bound, self.p, self.dim = bound, p, dim

    def _norms(self, t):
        src = t if t.is_floating_point() else t.float()
        return torch.linalg.vector_norm(src, ord=self.p, dim=self.dim)

    def _ok(self, t):
        return (self._norms(t) <= self.bound).all()

    def _evidence(self, t):
        n = self._norms(t.detach())
        bad = ~(n <= self.bound)
        ev: dict[str, Any] = {"failing": int(bad.sum()), "of": int(n.numel())}
        if ev["failing"]:
            idx = tuple(int(i) for i in bad.nonzero()[0]) if n.ndim else ()
            ev["first_index"] = idx
            ev["first_value"] = float(n[idx]) if n.ndim else float(n)
        ev["max_norm"] = float(n.max()) if n.numel() else float("nan")
        return ev

    def _mask(self, t):
        if self.dim is None:
            src = t if t.is_floating_point() else t.float()
            return torch.linalg.vector_norm(src.reshape(src.shape[0], -1), ord=self.p, dim=1) <= self.bound
        return self._norms(t) <= self.bound


def norm_at_most(name: str, bound: float, p: float = 2, dim: int | None = None) -> Condition:
    """The ``p``-norm of ``name`` (over ``dim``, or all elements) is at most ``bound``."""
    return NormAtMost(name, bound, p, dim)


class _Preserved(Condition):
    metadata_only = True
    attr = ""

    def __init__(self, in_name: str = "x", out_name: str = "result"):
        _name(in_name, f"{self.name}(in_name)")
        _name(out_name, f"{self.name}(out_name)")
        super().__init__(in_name=in_name, out_name=out_name)
        self.reads = (in_name, out_name)

    @property
    def text(self):
        return f"{self.name}({self.reads[0]}, {self.reads[1]})"

    def _get(self, env, n):
        v = env[n]
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{n} is {describe(v)}, not a tensor")
        return getattr(v, self.attr)

    def device_ok(self, env):
        return self._get(env, self.reads[0]) == self._get(env, self.reads[1])

    ok = device_ok

    def check(self, env):
        a, b = (self._get(env, n) for n in self.reads)
        out = Outcome(ok=a == b, values=self.values(env))
        if not out.ok:
            out.expected = f"{self.attr} {_fmt_meta(a)} (as {self.reads[0]})"
            out.actual = _fmt_meta(b)
        return out


def _fmt_meta(v: Any) -> str:
    if isinstance(v, torch.Size):
        return "[" + ",".join(map(str, v)) + "]"
    return str(v).replace("torch.", "")


@register
class ShapePreserved(_Preserved):
    name = "shape_preserved"
    attr = "shape"


@register
class DtypePreserved(_Preserved):
    name = "dtype_preserved"
    attr = "dtype"


def shape_preserved(in_name: str = "x", out_name: str = "result") -> Condition:
    """``out_name`` has the same shape as ``in_name`` (metadata only)."""
    return ShapePreserved(in_name, out_name)


def dtype_preserved(in_name: str = "x", out_name: str = "result") -> Condition:
    """``out_name`` has the same dtype as ``in_name`` (metadata only)."""
    return DtypePreserved(in_name, out_name)


@register
class LabelsWithin(Condition):
    name = "labels_within"

    def __init__(self, space: LabelSpace | Mapping[str, Any], name: str = "result"):
        if isinstance(space, Mapping):
            space = LabelSpace.from_dict(dict(space))
        if not isinstance(space, LabelSpace):
            raise SpecError(f"Expected labels_within(space) to be a LabelSpace, got {space!r}")
        _name(name, "labels_within(name)")
        super().__init__(space=space, name=name)
        self.space = space
        self.reads = (name,)

    @property
    def text(self):
        return f"labels_within({self.space.name}, {self.reads[0]})"

    def _tensor(self, env):
        n = self.reads[0]
        v = env[n]
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{n} is {describe(v)}, not a tensor")
        return v

    def device_ok(self, env):
        t = self._tensor(env)
        if t.is_floating_point():  # scores over the label space: metadata only
            return t.ndim >= 1 and t.shape[-1] == len(self.space)
        return V.indices_ok(t, len(self.space))

    def ok(self, env):
        return as_py(self.device_ok(env))

    def evidence(self, env):
        t = self._tensor(env)
        if t.is_floating_point():
            return {"expected": f"last dim {len(self.space)} (labels of {self.space.name})", "actual": describe(t)}
        return V.indices_evidence(t, len(self.space))

    def rows(self, env):
        t = self._tensor(env)
        if t.is_floating_point():
            return None
        return _row_mask((t >= 0) & (t < len(self.space)))


def as_py(v: Any) -> bool:
    return v if isinstance(v, bool) else bool(v)


def labels_within(space: LabelSpace, name: str = "result") -> Condition:
    """Class indices in ``name`` lie in ``[0, len(space))``; for float scores,
    the last dim has one entry per label (metadata only)."""
    return LabelsWithin(space, name)


@register
class Mostly(Condition):
    name = "mostly"

    def __init__(self, cond: Condition | Callable[..., Any], fraction: float = 0.99):
        inner = as_condition(cond)
        _number(fraction, "mostly(fraction)")
        if not 0 <= fraction <= 1:
            raise SpecError(f"Cannot have mostly(fraction={fraction!r}) outside [0, 1]")
        super().__init__(cond=inner, fraction=fraction)
        self.inner = inner
        self.fraction = fraction
        self.reads = inner.reads
        self.serializable = inner.serializable
        self.needs_call = inner.needs_call
        if isinstance(inner, Condition) and type(inner).rows is Condition.rows:
            raise SpecError(f"mostly({inner.text}): this condition has no per-row form")

    @property
    def text(self):
        return f"mostly({self.inner.text}, {self.fraction!r})"

    def _rows(self, env):
        r = self.inner.rows(env)
        if r is None:
            raise TypeError(f"{self.inner.text} has no per-row form for these values")
        return r

    def device_ok(self, env):
        r = self._rows(env)
        return r.float().mean() >= self.fraction

    def ok(self, env):
        return bool(self.device_ok(env))

    def evidence(self, env):
        r = self._rows(env)
        held = int(r.sum())
        ev: dict[str, Any] = {
            "rows_holding": held,
            "of": int(r.numel()),
            "fraction": round(held / max(1, r.numel()), 4),
            "required": self.fraction,
        }
        bad = (~r).nonzero()
        if bad.numel():
            ev["first_failing_row"] = int(bad[0, 0])
        return ev


def mostly(cond: Condition | Callable[..., Any], fraction: float) -> Condition:
    """``cond`` holds for at least ``fraction`` of the batch rows. ``cond`` is a
    built-in value condition, or a callable returning one boolean per row."""
    return Mostly(cond, fraction)


from .relational import (  # noqa: E402  (re-exported: part of the conditions library)
    agrees_with,
    batch_independent,
    equivariant_under,
    invariant_under,
    lipschitz_at_most,
    monotone,
)
