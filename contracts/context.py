"""A context variable that code traced by torch.compile can read.

Dynamo cannot trace ``ContextVar.get`` (each call is a graph break). While
compiling, ``ContextFlag.get`` reads instead the value most recently set or
restored in any context, a plain attribute dynamo guards on. Eager code
keeps the exact per-context (thread, task) semantics of the ContextVar.
"""

from __future__ import annotations

import contextvars
from typing import Generic, TypeVar

import torch

__all__ = ["ContextFlag"]

T = TypeVar("T")
_is_compiling = torch.compiler.is_compiling


class ContextFlag(Generic[T]):
    __slots__ = ("var", "last")

    def __init__(self, name: str, default: T) -> None:
        #: the context variable itself: ``var.get()`` is the eager read, for code that already knows
        #: it is not being traced (one compile check per call instead of one per flag)
        self.var: contextvars.ContextVar[T] = contextvars.ContextVar(name, default=default)
        self.last = default

    def get(self) -> T:
        if _is_compiling():
            return self.last
        return self.var.get()

    def set(self, value: T) -> contextvars.Token:
        self.last = value
        return self.var.set(value)

    def reset(self, token: contextvars.Token) -> None:
        self.var.reset(token)
        self.last = self.var.get()
