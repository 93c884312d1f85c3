"""Dim bindings across all tensors of one call, and shape unification.

``Bindings`` maps a dim name to ``(value, where)`` where ``where`` says which
tensor position bound it first (``inputs.x[0]``, ``inputs.x[1:3]`` for a
variadic). Expressions whose names are not yet bound wait in ``pending`` and
are settled by :meth:`Bindings.resolve` once every tensor has been seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from modpact.errors import Problem

from .dims import Dim, Shape, eval_expr, expr_names

__all__ = ["Bindings", "unify"]


class Bindings(Mapping):
    """dim name -> (value, where first bound). Values are ints, or tuples for variadics."""

    def __init__(self, initial: Mapping[str, Any] | None = None):
        self._b: dict[str, tuple[Any, str]] = {}
        self.pending: list[tuple[str, int, str, str, str]] = []  # (expr, actual, where, tensor, shape)
        for k, v in (initial or {}).items():
            if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], str):
                self._b[k] = (v[0], v[1])
            else:
                self._b[k] = (v, "given")

    def __getitem__(self, name: str) -> tuple[Any, str]:
        return self._b[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._b)

    def __len__(self) -> int:
        return len(self._b)

    def value(self, name: str) -> Any:
        return self._b[name][0]

    def values_dict(self) -> dict[str, Any]:
        """name -> value, without where."""
        return {k: v for k, (v, _) in self._b.items()}

    def as_dict(self) -> dict[str, tuple[Any, str]]:
        return dict(self._b)

    def bind(self, name: str, value: Any, where: str) -> None:
        self._b.setdefault(name, (value, where))

    def copy(self) -> Bindings:
        new = Bindings(self._b)
        new.pending = list(self.pending)
        return new

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v} (bound by {w})" for k, (v, w) in self._b.items())
        return f"Bindings({inner})"

    def _int_env(self) -> dict[str, int]:
        return {k: v for k, (v, _) in self._b.items() if isinstance(v, int)}

    def resolve(self, final: bool = True) -> list[Problem]:
        """Check pending expressions whose names are now bound.

        An expression with exactly one unbound name that is linear in it (``n+1``,
        ``2*n``) binds that name. With ``final`` the rest are reported as unbound.
        """
        problems: list[Problem] = []
        progress = True
        while progress:
            progress = False
            waiting = []
            for item in self.pending:
                expr, actual, where, tensor, shape = item
                env = self._int_env()
                missing = [n for n in expr_names(expr) if n not in env]
                if not missing:
                    want = eval_expr(expr, env)
                    if want != actual:
                        problems.append(_expr_problem(expr, want, actual, where, tensor, shape, env))
                    progress = True
                elif len(missing) == 1 and _solve(expr, missing[0], actual, env) is not None:
                    self.bind(missing[0], _solve(expr, missing[0], actual, env), f"{where} (via {expr})")
                    progress = True
                else:
                    waiting.append(item)
            self.pending = waiting
        if final:
            for expr, actual, where, tensor, shape in self.pending:
                unbound = [n for n in expr_names(expr) if n not in self._int_env()]
                problems.append(
                    Problem(
                        tensor,
                        "shape",
                        shape,
                        str(actual),
                        f"dim expression '{expr}' at {where} uses unbound dim(s) "
                        + ", ".join(repr(n) for n in unbound),
                    )
                )
            self.pending = []
        return problems


def _solve(expr: str, name: str, actual: int, env: dict[str, int]) -> int | None:
    f0 = eval_expr(expr, {**env, name: 0})
    slope = eval_expr(expr, {**env, name: 1}) - f0
    if slope == 0 or (actual - f0) % slope:
        return None
    n = (actual - f0) // slope
    if n < 0 or eval_expr(expr, {**env, name: n}) != actual:
        return None
    return n


def _expr_problem(expr, want, actual, where, tensor, shape, env) -> Problem:
    used = ", ".join(f"{n}={env[n]}" for n in expr_names(expr))
    return Problem(
        tensor, "shape", shape, str(actual), f"dim '{expr}' is {actual} at {where} but {expr} = {want} with {used}"
    )


def unify(shape: Shape, actual: tuple[int, ...], bindings: Bindings, tensor: str) -> list[Problem]:
    """Match ``actual`` against ``shape``, binding names into ``bindings``."""
    actual = tuple(int(s) for s in actual)
    want = str(shape)
    got = "(" + ", ".join(map(str, actual)) + ")"
    before, var, after = shape.split()
    n = len(actual)
    fixed = len(before) + len(after)
    if (var is None and n != fixed) or (var is not None and n < fixed):
        need = f"{fixed}" if var is None else f"at least {fixed}"
        return [Problem(tensor, "shape", want, got, f"rank {n}, expected {need}")]
    problems: list[Problem] = []
    positions = list(enumerate(before)) + [(n - len(after) + i, d) for i, d in enumerate(after)]
    for i, d in positions:
        msg = _check_dim(d, actual[i], f"{tensor}[{i}]", tensor, want, bindings)
        if msg:
            problems.append(Problem(tensor, "shape", want, got, msg))
    if var is not None and var.kind == "named":
        assert var.name is not None  # named dims have a name
        part = actual[len(before) : n - len(after)]
        where = f"{tensor}[{len(before)}:{n - len(after)}]"
        if var.name in bindings:
            bound, first = bindings[var.name]
            if not _variadic_match(bound, part, var.broadcast):
                problems.append(
                    Problem(
                        tensor,
                        "shape",
                        want,
                        got,
                        f"dims '*{var.name}' are {part} at {where} but were bound to {bound} by {first}",
                    )
                )
        else:
            bindings.bind(var.name, part, where)
    return problems


def _variadic_match(bound: Any, part: tuple[int, ...], broadcast: bool) -> bool:
    if not isinstance(bound, tuple):
        return False
    if not broadcast:
        return bound == part
    return len(bound) == len(part) and all(p == 1 or p == b for p, b in zip(part, bound))


def _check_dim(d: Dim, size: int, where: str, tensor: str, shape: str, bindings: Bindings) -> str | None:
    if d.kind == "fixed":
        return None if size == d.size else f"dim {where.rsplit('[', 1)[1][:-1]} is {size}, expected {d.size}"
    if d.kind == "anon":
        return None
    assert d.name is not None  # expr and named dims have a name (the expression's text for expr)
    if d.kind == "expr":
        bindings.pending.append((d.name, size, where, tensor, shape))
        return None
    if d.broadcast and size == 1:
        return None
    if d.name in bindings:
        bound, first = bindings[d.name]
        if bound != size:
            return f"dim '{d.name}' is {size} at {where} but was bound to {bound} by {first}"
        return None
    bindings.bind(d.name, size, where)
    return None
