"""Precomputed argument binding: call arguments -> env dict, and back.

Built once per guard/decorator from ``inspect.signature``; ``bind`` has a
fast path (no ``Signature.bind``) for the common call shapes.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["Binder"]


class Binder:
    __slots__ = ("sig", "names", "defaults", "var_pos", "var_kw", "kwonly", "all_names", "_n", "_known", "_fast")

    def __init__(self, sig: inspect.Signature, skip_first: bool = False):
        params = list(sig.parameters.values())
        if skip_first and params:
            params = params[1:]
            sig = sig.replace(parameters=params)
        self.sig = sig
        self.names = tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        self.kwonly = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self.var_pos = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
        self.var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        self.all_names = tuple(p.name for p in params)
        self._n = len(self.names) + len(self.kwonly)
        self._known = frozenset(self.names + self.kwonly)
        posonly = any(p.kind is p.POSITIONAL_ONLY for p in params)
        self._fast = self.var_pos is None and self.var_kw is None and not posonly

    def bind(self, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if self._fast and len(args) <= len(self.names):
            env = dict(self.defaults) if self.defaults else {}
            env.update(zip(self.names, args))
            if kwargs:
                known = self._known
                for k, v in kwargs.items():
                    if k not in known:
                        return self._slow(args, kwargs)
                    env[k] = v
            if len(env) == self._n:
                return env
        return self._slow(args, kwargs)

    def _slow(self, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        ba = self.sig.bind(*args, **kwargs)  # TypeError exactly as the call would raise
        ba.apply_defaults()
        env = dict(ba.arguments)
        if self.var_kw is not None:  # f(**kw): a contract reads what was passed by its name
            for k, v in env.get(self.var_kw, {}).items():
                env.setdefault(k, v)
        return env

    def call(self, fn: Any, env: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
        """Call ``fn`` with the env's arguments, some replaced by ``overrides``."""

        def get(n: str) -> Any:
            return overrides[n] if n in overrides else env[n]

        args = [get(n) for n in self.names]
        if self.var_pos:
            args.extend(get(self.var_pos))
        kw = {n: get(n) for n in self.kwonly}
        if self.var_kw:
            kw.update(get(self.var_kw))
        return fn(*args, **kw)

    def describe(self) -> str:
        return ", ".join(self.all_names)
