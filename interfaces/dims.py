"""Symbolic dimensions and shapes, written the jaxtyping way.

A shape is a sequence of :class:`Dim`. Each dim is one of

- fixed: ``64``
- named: ``batch`` (binds on first sight, must agree afterwards)
- broadcastable: ``#c`` (size 1, or the value ``c`` is bound to; a size 1 never binds)
- anonymous: ``_`` or ``_name`` (any size, never binds)
- variadic: ``*batch`` (any number of dims, binds to a tuple), ``...`` / ``*_`` (anonymous)
- expression: ``dim-1``, ``2*n``, ``n+1`` (``+ - * //`` over names and ints, parsed
  with :mod:`ast`, never evaluated with ``eval``)

Shapes parse from strings (``"*b c h w"``) or sequences of ints / strings / Dims.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from modpact.errors import SpecError

__all__ = ["Dim", "Shape", "parse_shape", "parse_dim", "eval_expr", "expr_names"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCEPTED = (
    "expected a whitespace-separated list of ints, names, '*name', '#name', '_', '...', "
    "or expressions of names and ints with + - * //"
)
MAX_SIZE = 2**63 - 1  # a fixed dim torch can hold
MAX_EXPR = 200  # characters in one dim expression (``2*n+1``); longer ones are no shape anyone writes


def _expr_tree(text: str, where: str) -> ast.expr:
    if len(text) > MAX_EXPR:
        raise SpecError(f"{where}: dim expression {text[:40]!r}... is {len(text)} characters long; at most {MAX_EXPR}")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise SpecError(f"{where}: cannot parse dim {text!r}; {_ACCEPTED}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.BinOp, ast.Name, ast.Load, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv))
        ok = ok or (isinstance(node, ast.Constant) and type(node.value) is int)
        ok = ok or isinstance(node, (ast.UnaryOp, ast.USub))
        if not ok:
            raise SpecError(
                f"{where}: dim expression {text!r} uses {type(node).__name__}; "
                "only names, ints and + - * // are allowed"
            )
    return tree


def expr_names(text: str) -> list[str]:
    """Names used by a dim expression, in order of first use."""
    out: list[str] = []
    for node in ast.walk(_expr_tree(text, "expr")):
        if isinstance(node, ast.Name) and node.id not in out:
            out.append(node.id)
    return out


def eval_expr(text: str, env: Mapping[str, int]) -> int:
    """Evaluate a dim expression with the integer values in ``env`` (no eval())."""

    def ev(node: ast.expr) -> int:
        if isinstance(node, ast.Constant):
            return cast(int, node.value)  # _expr_tree admits int constants only
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand)
        assert isinstance(node, ast.BinOp)  # _expr_tree admits nothing else
        a, b = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return a // b if b else 0

    return ev(_expr_tree(text, "expr"))


@dataclass(frozen=True)
class Dim:
    """One dimension of a shape. Build with :func:`parse_dim` or ``Dim.parse``."""

    kind: str  # "fixed" | "named" | "anon" | "expr"
    name: str | None = None  # name, or expression text for kind "expr"
    size: int | None = None  # for kind "fixed"
    variadic: bool = False
    broadcast: bool = False

    @staticmethod
    def parse(token: int | str | Dim, where: str = "shape") -> Dim:
        return parse_dim(token, where)

    def __str__(self) -> str:
        if self.kind == "fixed":
            return str(self.size)
        if self.kind == "anon" and self.variadic and self.name is None:
            return "..."
        prefix = ("*" if self.variadic else "") + ("#" if self.broadcast else "")
        if self.kind == "anon":
            return prefix + (self.name or "_")
        return prefix + str(self.name)


def parse_dim(token: int | str | Dim, where: str = "shape") -> Dim:
    if isinstance(token, Dim):
        return token
    if isinstance(token, bool) or not isinstance(token, (int, str)):
        raise SpecError(f"{where}: dim {token!r} has type {type(token).__name__}; expected int, str or Dim")
    if isinstance(token, int):
        if token < 0:
            raise SpecError(f"{where}: dim {token} is negative; fixed dims must be >= 0")
        if token > MAX_SIZE:
            raise SpecError(f"{where}: dim {token} is larger than any tensor can be (at most 2**63 - 1)")
        return Dim("fixed", size=token)
    text = token.strip()
    if text == "...":
        return Dim("anon", variadic=True)
    variadic = broadcast = False
    rest = text
    while rest[:1] in ("*", "#"):
        if rest[0] == "*":
            if variadic:
                break
            variadic = True
        else:
            if broadcast:
                break
            broadcast = True
        rest = rest[1:]
    if not rest:
        raise SpecError(f"{where}: cannot parse dim {text!r}; {_ACCEPTED}")
    if rest.isdigit():
        if variadic or broadcast:
            raise SpecError(f"{where}: dim {text!r} puts '*' or '#' on a number; {_ACCEPTED}")
        if not rest.isascii() or len(rest) > 19 or int(rest) > MAX_SIZE:  # '²' is a digit to isdigit()
            raise SpecError(f"{where}: dim {text[:40]!r} is not a size a tensor can have (0 .. 2**63 - 1)")
        return Dim("fixed", size=int(rest))
    if _NAME.match(rest):
        if rest.startswith("_"):
            return Dim("anon", name=None if rest == "_" else rest, variadic=variadic)
        return Dim("named", name=rest, variadic=variadic, broadcast=broadcast)
    if variadic or broadcast:
        raise SpecError(f"{where}: cannot parse dim {text!r}; '*' and '#' apply to names only")
    tree = _expr_tree(rest, where)
    if not any(isinstance(node, ast.Name) for node in ast.walk(tree)):
        value = eval_expr(rest, {})  # a constant: it must be a size, like a fixed dim
        if value < 0:
            raise SpecError(f"{where}: dim {text!r} is negative ({value}); dims must be >= 0")
    return Dim("expr", name=ast.unparse(tree).replace(" ", ""))


class Shape(tuple):
    """An immutable tuple of :class:`Dim` with at most one variadic dim."""

    def __new__(cls, spec: str | Iterable[int | str | Dim] | Shape = (), where: str = "shape"):
        if isinstance(spec, Shape):
            return spec
        if isinstance(spec, str):
            tokens: Sequence = spec.split()
        elif isinstance(spec, (list, tuple)):
            tokens = list(spec)
        else:
            raise SpecError(
                f"{where}: got {spec!r} (type {type(spec).__name__}); expected a shape string like "
                "'batch 64' or a sequence of ints / str / Dim"
            )
        dims = tuple(parse_dim(t, where) for t in tokens)
        nvar = sum(d.variadic for d in dims)
        if nvar > 1:
            raise SpecError(f"{where}: {' '.join(map(str, dims))!r} has {nvar} variadic dims; at most one is allowed")
        return super().__new__(cls, dims)

    def __str__(self) -> str:
        return " ".join(str(d) for d in self)

    def __repr__(self) -> str:
        return f"Shape({str(self)!r})"

    @property
    def variadic_index(self) -> int | None:
        for i, d in enumerate(self):
            if d.variadic:
                return i
        return None

    @property
    def names(self) -> list[str]:
        """Every dim name the shape binds or uses (expressions included)."""
        out: list[str] = []
        for d in self:
            if d.name is None:  # fixed dims and '...' have no name
                continue
            new = expr_names(d.name) if d.kind == "expr" else [d.name] if d.kind == "named" else []
            out += [n for n in new if n not in out]
        return out

    def split(self) -> tuple[tuple[Dim, ...], Dim | None, tuple[Dim, ...]]:
        """(dims before the variadic, the variadic or None, dims after)."""
        i = self.variadic_index
        if i is None:
            return tuple(self), None, ()
        return tuple(self[:i]), self[i], tuple(self[i + 1 :])

    def __iter__(self) -> Iterator[Dim]:
        return super().__iter__()


def parse_shape(spec, where: str = "shape") -> Shape:
    return Shape(spec, where)
