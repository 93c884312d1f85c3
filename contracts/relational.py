"""Conditions that re-run the guarded callable (checks switched off meanwhile).

They read the callable from the env (``env[CALL]``, see ``condition.rerun``)
and compare the original ``result`` with the re-run's. Re-runs happen under
``torch.no_grad()``; a module with dropout in training mode will not compare
equal to itself, so use these in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from modpact.errors import SpecError
from modpact.interfaces.summary import describe

from .condition import BINDER, CALL, Condition, register, rerun

__all__ = [
    "batch_independent",
    "invariant_under",
    "equivariant_under",
    "monotone",
    "lipschitz_at_most",
    "agrees_with",
]


def _names(v: str | Sequence[str], what: str) -> tuple[str, ...]:
    names = (v,) if isinstance(v, str) else tuple(v)
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise SpecError(f"Expected {what} to be an argument name or a list of them, got {v!r}")
    return names


def _tol(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise SpecError(f"Expected {what} to be a non-negative number, got {v!r}")
    return float(v)


def _flat(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat(v)]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _flat(v)]
    return []


def _close(a: Any, b: Any, tol: float) -> torch.Tensor | bool:
    """All tensors in ``a`` and ``b`` equal within ``tol`` (abs + rel); no sync."""
    ta, tb = _flat(a), _flat(b)
    if len(ta) != len(tb) or not ta:
        return False
    acc: Any = None
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            return False
        ok = torch.isclose(x.detach(), y.detach().to(x.dtype), rtol=tol, atol=tol, equal_nan=True).all()
        acc = ok if acc is None else acc & ok
    return acc


def _diff_evidence(a: Any, b: Any, tol: float, rows: torch.Tensor | None = None) -> dict[str, Any]:
    ta, tb = _flat(a), _flat(b)
    if len(ta) != len(tb):
        return {"expected": f"{len(ta)} tensors", "actual": f"{len(tb)} tensors"}
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            return {"expected": describe(x), "actual": describe(y)}
        bad = ~torch.isclose(x.detach(), y.detach().to(x.dtype), rtol=tol, atol=tol, equal_nan=True)
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            if rows is not None and idx:
                idx = (int(rows[idx[0]]),) + idx[1:]
            diff = (x.detach().double() - y.detach().double()).abs()
            return {
                "failing": int(bad.sum()),
                "of": int(bad.numel()),
                "first_index": idx,
                "max_abs_diff": float(diff[~torch.isnan(diff)].max()) if (~torch.isnan(diff)).any() else float("nan"),
                "tol": tol,
            }
    return {}


class _Relational(Condition):
    needs_call = True

    def _rerun(self, env: Mapping[str, Any], **overrides: Any) -> Any:
        with torch.no_grad():
            return rerun(env, **overrides)


class _Compared(_Relational):
    """A relational condition that compares an expected and an actual value within ``tol``."""

    tol: float  # set by each subclass's __init__

    def _pair(self, env):  # (expected, actual, rows) - computed once per check
        raise NotImplementedError

    def device_ok(self, env):
        expected, actual, _ = self._pair(env)
        return _close(actual, expected, self.tol)

    def evidence(self, env):
        expected, actual, rows = self._pair(env)
        return _diff_evidence(expected, actual, self.tol, rows)


@register
class BatchIndependent(_Compared):
    name = "batch_independent"

    def __init__(self, in_names: str | Sequence[str] = "x", out_name: str = "result", dim: int = 0, tol: float = 1e-5):
        names = _names(in_names, "batch_independent(in_names)")
        super().__init__(in_names=names, out_name=out_name, dim=dim, tol=_tol(tol, "batch_independent(tol)"))
        self.in_names, self.out_name, self.dim, self.tol = names, out_name, dim, float(tol)
        self.reads = names + (out_name,)

    @property
    def text(self):
        return f"batch_independent({', '.join(self.in_names)} -> {self.out_name})"

    def _pair(self, env):
        x = env[self.in_names[0]]
        n = x.shape[self.dim]
        # a permuted sub-batch: the last ceil(n/2) rows (at least 2) in reverse order
        k = min(n, max(2, (n + 1) // 2))
        idx = torch.arange(n - 1, n - 1 - k, -1, device=x.device)
        sub = {name: env[name].index_select(self.dim, idx) for name in self.in_names}
        actual = self._rerun(env, **sub)
        expected = [t.index_select(self.dim, idx) for t in _flat(env[self.out_name])]
        return expected, actual, idx

    def device_ok(self, env):
        if env[self.in_names[0]].shape[self.dim] < 2:
            return True
        return super().device_ok(env)


def batch_independent(
    in_names: str | Sequence[str] = "x", out_name: str = "result", dim: int = 0, tol: float = 1e-5
) -> Condition:
    """Output row i depends only on input row i: re-running on a permuted
    sub-batch of the inputs gives the same rows of the output."""
    return BatchIndependent(in_names, out_name, dim, tol)


@register
class InvariantUnder(_Compared):
    name = "invariant_under"

    def __init__(
        self, transform: Callable[[Any], Any], in_name: str = "x", out_name: str = "result", tol: float = 1e-5
    ):
        if not callable(transform):
            raise SpecError(f"Expected invariant_under(transform) to be callable, got {transform!r}")
        super().__init__(transform=transform, in_name=in_name, out_name=out_name, tol=_tol(tol, "tol"))
        self.transform, self.in_name, self.out_name, self.tol = transform, in_name, out_name, float(tol)
        self.reads = (in_name, out_name)
        self.serializable = False

    def _pair(self, env):
        actual = self._rerun(env, **{self.in_name: self.transform(env[self.in_name])})
        return env[self.out_name], actual, None


def invariant_under(
    transform: Callable[[Any], Any], in_name: str = "x", out_name: str = "result", tol: float = 1e-5
) -> Condition:
    """f(transform(x)) == f(x) within ``tol``."""
    return InvariantUnder(transform, in_name, out_name, tol)


@register
class EquivariantUnder(_Compared):
    name = "equivariant_under"

    def __init__(
        self,
        transform: Callable[[Any], Any],
        out_transform: Callable[[Any], Any] | None = None,
        in_name: str = "x",
        out_name: str = "result",
        tol: float = 1e-5,
    ):
        for what, fn in (("transform", transform), ("out_transform", out_transform)):
            if fn is not None and not callable(fn):
                raise SpecError(f"Expected equivariant_under({what}) to be callable, got {fn!r}")
        super().__init__(
            transform=transform, out_transform=out_transform, in_name=in_name, out_name=out_name, tol=_tol(tol, "tol")
        )
        self.transform, self.out_transform = transform, out_transform or transform
        self.in_name, self.out_name, self.tol = in_name, out_name, float(tol)
        self.reads = (in_name, out_name)
        self.serializable = False

    def _pair(self, env):
        actual = self._rerun(env, **{self.in_name: self.transform(env[self.in_name])})
        with torch.no_grad():
            expected = self.out_transform(env[self.out_name])
        return expected, actual, None


def equivariant_under(
    transform: Callable[[Any], Any],
    out_transform: Callable[[Any], Any] | None = None,
    in_name: str = "x",
    out_name: str = "result",
    tol: float = 1e-5,
) -> Condition:
    """f(transform(x)) == out_transform(f(x)) (``out_transform`` defaults to ``transform``)."""
    return EquivariantUnder(transform, out_transform, in_name, out_name, tol)


@register
class Monotone(_Compared):
    name = "monotone"

    def __init__(
        self,
        in_name: str = "x",
        out_name: str = "result",
        increasing: bool = True,
        delta: float = 1e-2,
        tol: float = 1e-6,
    ):
        super().__init__(
            in_name=in_name,
            out_name=out_name,
            increasing=bool(increasing),
            delta=_tol(delta, "monotone(delta)"),
            tol=_tol(tol, "monotone(tol)"),
        )
        self.in_name, self.out_name, self.increasing = in_name, out_name, bool(increasing)
        self.delta, self.tol = float(delta), float(tol)
        self.reads = (in_name, out_name)

    def _pair(self, env):
        x = env[self.in_name]
        bumped = self._rerun(env, **{self.in_name: x + self.delta})
        return env[self.out_name], bumped, None

    def _masks(self, env):
        before, after, _ = self._pair(env)
        out = []
        for b, a in zip(_flat(before), _flat(after)):
            out.append((a >= b - self.tol) if self.increasing else (a <= b + self.tol))
        return out

    def device_ok(self, env):
        acc: Any = None
        for m in self._masks(env):
            acc = m.all() if acc is None else acc & m.all()
        return True if acc is None else acc

    def evidence(self, env):
        before, after, _ = self._pair(env)
        for b, a in zip(_flat(before), _flat(after)):
            bad = ~((a >= b - self.tol) if self.increasing else (a <= b + self.tol))
            if bad.any():
                idx = tuple(int(i) for i in bad.nonzero()[0])
                return {
                    "failing": int(bad.sum()),
                    "of": int(bad.numel()),
                    "first_index": idx,
                    "before": float(b[idx]),
                    "after": float(a[idx]),
                    "input_shift": self.delta,
                }
        return {}


def monotone(
    in_name: str = "x", out_name: str = "result", increasing: bool = True, delta: float = 1e-2, tol: float = 1e-6
) -> Condition:
    """Raising every element of ``in_name`` by ``delta`` does not lower any
    element of the output (``increasing=False``: does not raise it)."""
    return Monotone(in_name, out_name, increasing, delta, tol)


@register
class LipschitzAtMost(_Relational):
    name = "lipschitz_at_most"

    def __init__(
        self,
        L: float = 1.0,
        in_name: str = "x",
        out_name: str = "result",
        samples: int = 4,
        eps: float = 1e-3,
        seed: int = 0,
    ):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SpecError(f"Expected lipschitz_at_most(samples) to be a positive int, got {samples!r}")
        super().__init__(
            L=_tol(L, "lipschitz_at_most(L)"),
            in_name=in_name,
            out_name=out_name,
            samples=samples,
            eps=_tol(eps, "eps"),
            seed=seed,
        )
        self.L, self.in_name, self.out_name = float(L), in_name, out_name
        self.samples, self.eps, self.seed = samples, float(eps), seed
        self.reads = (in_name, out_name)

    @property
    def text(self):
        return f"lipschitz_at_most({self.L!r}, {self.in_name} -> {self.out_name}, samples={self.samples})"

    def _ratios(self, env) -> torch.Tensor:
        x = env[self.in_name]
        y = env[self.out_name]
        g = torch.Generator().manual_seed(self.seed)
        ratios = []
        rowwise = isinstance(y, torch.Tensor) and x.ndim >= 1 and y.ndim >= 1 and x.shape[0] == y.shape[0]
        for _ in range(self.samples):
            d = torch.randn(x.shape, generator=g, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
            if rowwise:
                d = d * (
                    self.eps / torch.linalg.vector_norm(d.reshape(d.shape[0], -1), dim=1).clamp_min(1e-12)
                ).reshape((-1,) + (1,) * (d.ndim - 1))
                y2 = self._rerun(env, **{self.in_name: x + d})
                num = torch.linalg.vector_norm((y2 - y).reshape(y.shape[0], -1).double(), dim=1)
                den = torch.linalg.vector_norm(d.reshape(d.shape[0], -1).double(), dim=1)
            else:
                d = d * (self.eps / torch.linalg.vector_norm(d).clamp_min(1e-12))
                y2 = self._rerun(env, **{self.in_name: x + d})
                num = torch.linalg.vector_norm(
                    torch.cat([(a - b).double().reshape(-1) for a, b in zip(_flat(y2), _flat(y))])
                )
                den = torch.linalg.vector_norm(d.double())
            ratios.append((num / den.clamp_min(1e-30)).reshape(-1))
        return torch.cat(ratios)

    def device_ok(self, env):
        return (self._ratios(env) <= self.L * (1 + 1e-4)).all()

    def evidence(self, env):
        r = self._ratios(env)
        bad = ~(r <= self.L * (1 + 1e-4))
        return {
            "failing": int(bad.sum()),
            "of": int(r.numel()),
            "estimated_lipschitz": round(float(r.max()), 6),
            "bound": self.L,
        }


def lipschitz_at_most(
    L: float, in_name: str = "x", out_name: str = "result", samples: int = 4, eps: float = 1e-3, seed: int = 0
) -> Condition:
    """Sampled: for ``samples`` random perturbations d of norm ``eps`` (per row
    when input and output share a batch dim), ||f(x+d) - f(x)|| <= L ||d||."""
    return LipschitzAtMost(L, in_name, out_name, samples, eps, seed)


@register
class AgreesWith(_Relational):
    name = "agrees_with"

    def __init__(
        self,
        reference: Callable[..., Any],
        tol: float | None = None,
        top1: float | None = None,
        out_name: str = "result",
    ):
        if not callable(reference):
            raise SpecError(f"Expected agrees_with(reference) to be a module or callable, got {reference!r}")
        if top1 is not None and not (isinstance(top1, (int, float)) and 0 <= top1 <= 1):
            raise SpecError(f"Expected agrees_with(top1) to be a fraction in [0, 1], got {top1!r}")
        if tol is None and top1 is None:
            tol = 1e-5
        super().__init__(
            reference=reference,
            tol=None if tol is None else _tol(tol, "agrees_with(tol)"),
            top1=top1,
            out_name=out_name,
        )
        self.tol: float | None = tol  # None: top-1 agreement only
        self.reference, self.top1, self.out_name = reference, top1, out_name
        self.reads = (out_name,)
        self.serializable = False

    def _ref(self, env):
        from ._modes import disabled

        binder = env.get(BINDER)
        if binder is None or CALL not in env:
            raise TypeError("agrees_with needs the call's arguments, but no binder was provided in its env")
        with disabled(), torch.no_grad():
            return binder.call(self.reference, env, {})

    def device_ok(self, env):
        ref = self._ref(env)
        y = env[self.out_name]
        parts: list[Any] = []
        if self.tol is not None:
            parts.append(_close(y, ref, self.tol))
        if self.top1 is not None:
            parts.append((y.argmax(-1) == ref.argmax(-1)).float().mean() >= self.top1)
        acc: Any = True
        for p in parts:
            if p is False:
                return False
            if p is not True:
                acc = p if acc is True else acc & p
        return acc

    def evidence(self, env):
        ref = self._ref(env)
        y = env[self.out_name]
        ev: dict[str, Any] = {}
        if self.top1 is not None:
            a = y.argmax(-1) == ref.argmax(-1)
            ev.update(
                {
                    "top1_agreement": round(float(a.float().mean()), 4),
                    "required": self.top1,
                    "disagreeing_rows": int((~a).sum()),
                }
            )
        if self.tol is not None:
            ev.update(_diff_evidence(ref, y, self.tol))
        return ev


def agrees_with(
    reference: Callable[..., Any], tol: float | None = None, top1: float | None = None, out_name: str = "result"
) -> Condition:
    """The output matches ``reference`` run on the same arguments: elementwise
    within ``tol``, and/or the same argmax on at least a ``top1`` fraction of rows."""
    return AgreesWith(reference, tol, top1, out_name)
