"""``@requires``, ``@ensures`` and ``@contract`` for functions, methods,
``forward`` and ``nn.Module`` classes.

Stacked decorators merge into one wrapper (conditions are checked top to
bottom, all preconditions before the call). With ``mode="off"`` or
``MODPACT_CONTRACTS=off`` at decoration time the function is returned
unchanged.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from torch import nn

from modpact.errors import SpecError
from modpact.interfaces.interface import Interface

from ._modes import ContractMode, _mode_from_env, check_mode
from .binding import Binder
from .condition import Condition, ConditionLike
from .guard import Guard, _conditions
from .source import user_site

__all__ = ["requires", "ensures", "contract", "get_contract"]

F = TypeVar("F")
_ATTR = "__modpact_guard__"


def get_contract(fn: Any) -> Guard | None:
    """The Guard of a decorated function / forward / module class, or None."""
    if isinstance(fn, type):
        fn = fn.__dict__.get("forward")
    return getattr(fn, _ATTR, None)


def requires(
    cond: Condition | Callable[..., Any],
    why: str | None = None,
    *,
    mode: ContractMode | None = None,
    every: int | None = None,
    producer: str | Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Precondition: ``cond`` (a Condition, or a callable whose parameters name
    the arguments it reads) must hold before the call. Blames the caller."""
    site = user_site(2)
    conds = _conditions([(cond, why)] if why is not None else [cond], "requires", site)
    return _decorator(requires=conds, mode=mode, every=every, producer=producer, site=site)


def ensures(
    cond: Condition | Callable[..., Any],
    why: str | None = None,
    *,
    mode: ContractMode | None = None,
    every: int | None = None,
    snapshot: Mapping[str, Callable[..., Any]] | None = None,
) -> Callable[[F], F]:
    """Postcondition: ``cond`` must hold after the call; it also sees
    ``result`` (and the interface's named outputs) and ``old``. Blames the
    function / module when its preconditions held."""
    site = user_site(2)
    conds = _conditions([(cond, why)] if why is not None else [cond], "ensures", site)
    return _decorator(ensures=conds, mode=mode, every=every, snapshot=snapshot, site=site)


def contract(
    interface: Interface | None = None,
    requires: Iterable[ConditionLike] = (),
    ensures: Iterable[ConditionLike] = (),
    mode: ContractMode | None = None,
    every: int = 1,
    name: str | None = None,
    producer: str | Mapping[str, str] | None = None,
    snapshot: Mapping[str, Callable[..., Any]] | None = None,
) -> Callable[[F], F]:
    """Interface plus pre/postconditions in one decorator. Items of
    ``requires``/``ensures`` are conditions, callables or ``(condition, "why")``."""
    site = user_site(2)
    return _decorator(
        interface=interface,
        requires=_conditions(requires, "requires", site),
        ensures=_conditions(ensures, "ensures", site),
        mode=mode,
        every=every,
        name=name,
        producer=producer,
        snapshot=snapshot,
        site=site,
    )


def _decorator(
    *,
    interface: Interface | None = None,
    requires: tuple = (),
    ensures: tuple = (),
    mode: ContractMode | None = None,
    every: int | None = None,
    name: str | None = None,
    producer: Any = None,
    snapshot: Mapping[str, Any] | None = None,
    site: str | None = None,
) -> Callable[[Any], Any]:
    check_mode(mode)
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise SpecError(f"Expected every to be a positive int, got {every!r}")

    def apply(target: Any) -> Any:
        if mode == "off" or (mode is None and _mode_from_env() == "off"):
            return target
        if isinstance(target, type):
            if not issubclass(target, nn.Module):
                raise SpecError(
                    f"Contracts decorate functions, methods or nn.Module classes, not class {target.__qualname__}"
                )
            target.forward = apply_fn(
                target.__dict__.get("forward") or target.forward, owner_cls=target, merge="forward" in target.__dict__
            )
            return target
        return apply_fn(target, owner_cls=None, merge=True)

    def apply_fn(fn: Any, owner_cls: type | None, merge: bool) -> Any:
        if isinstance(fn, (staticmethod, classmethod)):
            raise SpecError("Put contract decorators below @staticmethod / @classmethod")
        if not callable(fn):
            raise SpecError(f"Expected a function to decorate, got {fn!r}")
        g: Guard | None = getattr(fn, _ATTR, None) if merge else None
        if g is not None:  # stacked: merge into the existing wrapper
            if interface is not None:
                if g.interface is not None:
                    raise SpecError(f"{g.owner} already has an interface ({getattr(g.interface, 'name', '')!r})")
                g.interface = interface
            g.add_snapshot(snapshot)
            if mode is not None:
                g.mode = mode
            if every is not None:
                g.every = every
            if producer is not None:
                g.producer = producer
            if name is not None:
                g.name = name
            g.add(requires, ensures)
            return fn
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as e:
            raise SpecError(f"Cannot read the signature of {fn!r}: {e}") from None
        params = list(sig.parameters)
        is_method = bool(params) and params[0] in ("self", "cls")
        binder = Binder(sig, skip_first=is_method)
        qual = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        parts = [p for p in qual.split(".") if p != "<locals>"]
        if owner_cls is not None:
            default_name = owner_cls.__name__
        elif is_method and len(parts) >= 2:  # Head.forward -> "Head"; Acc.add -> "Acc.add"
            default_name = parts[-2] if parts[-1] == "forward" else ".".join(parts[-2:])
        else:
            default_name = parts[-1]
        g = Guard(
            interface=interface,
            requires=requires,
            ensures=ensures,
            name=name or default_name,
            mode=mode,
            every=every or 1,
            producer=producer,
            snapshot=snapshot,
            binder=binder,
            owner=qual,
            declared_at=site,
        )
        return _wrap(fn, g, is_method)

    return apply


def _wrap(fn: Callable[..., Any], g: Guard, is_method: bool) -> Callable[..., Any]:
    begin, end = g.begin, g.end
    if is_method:

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            frame = begin(args, kwargs, types.MethodType(fn, self) if g.needs_call else None)
            if frame is None:
                return fn(self, *args, **kwargs)
            result = fn(self, *args, **kwargs)
            end(frame, result)
            return result
    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            frame = begin(args, kwargs, fn)
            if frame is None:
                return fn(*args, **kwargs)
            result = fn(*args, **kwargs)
            end(frame, result)
            return result

    setattr(wrapper, _ATTR, g)
    return wrapper
