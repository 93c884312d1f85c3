"""``Guard``: a :class:`Boundary` attached to a module or a function, that runs
each call through the current checker; ``guard``/``unguard`` attach it to an
existing module through forward hooks."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from modpact.errors import SpecError
from modpact.interfaces.interface import Interface

from ._boundary import Boundary
from ._modes import _DISABLED, _GLOBAL_MODE, ContractMode, _mode_from_env, check_mode
from ._old import Old
from .binding import Binder
from .checking import _CHECKER, _EAGER, Checker
from .condition import BINDER, CALL, Condition, ConditionLike, as_condition
from .source import user_site

__all__ = ["Guard", "guard", "unguard", "guard_submodules", "get_guard"]

_ATTR = "_modpact_guard"
_is_compiling = torch.compiler.is_compiling
_MAX_PENDING = 64
# the context variables behind the flags, read directly where the code is certainly not being traced
_disabled_now = _DISABLED.var.get
_checker_now = _CHECKER.var.get


def _conditions(items: Any, what: str, declared_at: str | None) -> tuple[Condition, ...]:
    if items is None:
        return ()
    if isinstance(items, (Condition, str)) or callable(items):
        items = [items]
    out = []
    for c in items:
        if isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], str):  # (condition, "why")
            out.append(as_condition(c[0], why=c[1], declared_at=declared_at))
        else:
            out.append(as_condition(c, declared_at=declared_at))
    return tuple(out)


class Guard(Boundary):
    """Contracts of one boundary (a module or a function), attached: each call
    runs through the current checker (``begin`` before it, ``end`` after it).

    Attributes: those of :class:`Boundary` (``interface``, ``requires``,
    ``ensures``, ``name``, ``mode``, ``every``, ``producer``, ``snapshot``,
    ``violations``), ``handles`` (the registered hook handles) and
    ``checker`` (a checker this guard uses in every thread instead of the
    context's current one: a runtime Monitor sets it while it is active).

    A call's pre and post hooks pair up per thread: calls from several
    threads at once do not read each other's bindings.
    """

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.handles: list[Any] = []
        self.calls = 0
        self.checker: Checker | None = None
        self._local = threading.local()  # per thread: the frames of calls begun and not ended
        self._traced: list[Any] = []  # the same, in code torch.compile traces (no thread-local lookups there)

    # --- the hot path ---------------------------------------------------
    def begin(self, args: tuple, kwargs: Mapping[str, Any], target: Any) -> Any:
        """Check the inputs and preconditions; returns the frame for ``end`` (None: skipped).

        The eager checker's happy path runs the compiled ``plan`` on the call
        itself; its frame is a list (``[args, kwargs, *dims]``). Anything the
        plan does not certainly accept goes the full way (an env, the current
        checker), whose frame is a tuple ``(env, state, checker)``."""
        __tracebackhide__ = True
        if _is_compiling():
            return self._traced_begin(args, kwargs, target)
        if (self.mode or _GLOBAL_MODE[0]) == "off" or _disabled_now():
            return None
        checker = self.checker or _checker_now()
        plan = self.plan
        if plan is not None and checker is _EAGER and self.every == 1:
            frame = plan.pre(args, kwargs)
            if frame is not None:
                return frame
        return self._begin(args, kwargs, target, checker)

    def _traced_begin(self, args: tuple, kwargs: Mapping[str, Any], target: Any) -> Any:
        """``begin`` in code torch.compile traces: the flags' last values, never the plan."""
        __tracebackhide__ = True
        if (self.mode or _GLOBAL_MODE[0]) == "off" or _DISABLED.last:
            return None
        return self._begin(args, kwargs, target, self.checker or _CHECKER.last)

    def _begin(self, args: tuple, kwargs: Mapping[str, Any], target: Any, checker: Checker) -> Any:
        __tracebackhide__ = True
        if self.every != 1:
            n = self.calls
            self.calls = n + 1
            if n % self.every:
                return None
        env = self.binder.bind(args, kwargs)
        if self.needs_call:
            env[CALL] = target
            env[BINDER] = self.binder
        if self.needs_old:
            env["old"] = Old(env, self.binder.all_names, self.snapshot)
        return env, checker.check_pre(self, env), checker

    def end(self, frame: Any, result: Any) -> None:
        __tracebackhide__ = True
        if type(frame) is list:  # the compiled plan's frame
            plan = self.plan
            if plan is not None and plan.post(frame, result):
                return
            self._end_full(frame, result)
            return
        env, state, checker = frame
        env["result"] = result
        if self.out_names:
            args = self.binder.all_names
            for k, v in self.named_outputs(result).items():
                if k not in args:  # an argument keeps its name; the output is still in result
                    env[k] = v
        checker.check_post(self, env, state)

    def _end_full(self, frame: list[Any], result: Any) -> None:
        """After the plan's ``pre`` accepted the call and its ``post`` is not certain: the eager
        checker's full check of the outputs, as if its own pre-check had bound these dims."""
        __tracebackhide__ = True
        binds = self.plan.binds(frame) if self.plan is not None else {}
        self.end((self.binder.bind(frame[0], frame[1] or {}), (binds, False), _EAGER), result)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (``copy.deepcopy(model)``) start with no call in flight and
        without a running Monitor's checker; the compiled plan (generated code, not
        picklable) is compiled again for the copy."""
        state = dict(self.__dict__)
        state["_local"], state["_traced"], state["plan"] = None, [], None
        if getattr(state.get("checker"), "transient", False):  # a running Monitor's: not the copy's
            state["checker"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self.plan = self._compile_plan()

    def _frames(self) -> list[Any]:
        """The calling thread's frames of calls begun and not ended."""
        if _is_compiling():
            return self._traced
        try:
            return self._local.frames
        except AttributeError:
            frames = self._local.frames = []
            return frames

    # hooks (registered with with_kwargs=True); each asks once whether it is being traced, and
    # the eager happy path is written out in them (as in ``begin`` and ``end``): a call less is
    # a measurable part of a guard's cost
    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        __tracebackhide__ = True
        if _is_compiling():
            frames = self._traced
            frame = self._traced_begin(args, kwargs, module)
        else:
            try:
                frames = self._local.frames
            except AttributeError:
                frames = self._local.frames = []
            if (self.mode or _GLOBAL_MODE[0]) == "off" or _disabled_now():
                frame = None
            else:
                checker = self.checker or _checker_now()
                plan = self.plan
                frame = plan.pre(args, kwargs) if plan is not None and checker is _EAGER and self.every == 1 else None
                if frame is None:  # a raising check pushes nothing
                    frame = self._begin(args, kwargs, module, checker)
        if len(frames) >= _MAX_PENDING:  # forwards that raised never popped theirs
            del frames[: _MAX_PENDING // 2]
        frames.append(frame)
        return None

    def _post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        __tracebackhide__ = True
        if _is_compiling():
            frames = self._traced
        else:
            try:
                frames = self._local.frames
            except AttributeError:
                frames = self._local.frames = []
        if frames:
            frame = frames.pop()
            if type(frame) is list:
                plan = self.plan
                if plan is not None and plan.post(frame, output):
                    return None
                self._end_full(frame, output)
            elif frame is not None:
                self.end(frame, output)
        return None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"]
        if self.interface is not None:
            parts.append(f"interface={getattr(self.interface, 'name', self.interface)!r}")
        if self.requires:
            parts.append(f"requires={list(self.requires)}")
        if self.ensures:
            parts.append(f"ensures={list(self.ensures)}")
        if self.mode:
            parts.append(f"mode={self.mode!r}")
        if self.every != 1:
            parts.append(f"every={self.every}")
        return f"Guard({', '.join(parts)})"


def _forward_binder(module: nn.Module) -> Binder:
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError) as e:
        raise SpecError(f"Cannot read the signature of {type(module).__name__}.forward: {e}") from None
    return Binder(sig)


def guard(
    module: nn.Module,
    interface: Interface | None = None,
    requires: ConditionLike | Iterable[ConditionLike] | None = (),
    ensures: ConditionLike | Iterable[ConditionLike] | None = (),
    name: str | None = None,
    mode: ContractMode | None = None,
    every: int = 1,
    producer: str | Mapping[str, str] | None = None,
    snapshot: Mapping[str, Callable[..., Any]] | None = None,
) -> nn.Module:
    """Attach contracts to an existing module through forward hooks; returns
    the same module. Guarding it again replaces the previous guard.

    ``name`` is the module path shown in messages (default: the class name;
    ``guard_submodules`` and the runtime Monitor use the path from
    ``named_modules()``). With ``mode="off"`` (or ``MODPACT_CONTRACTS=off``)
    nothing is attached.
    """
    if not isinstance(module, nn.Module):
        raise SpecError(f"Expected guard(module) to be an nn.Module, got {module!r} (type={type(module).__name__})")
    check_mode(mode)
    site = user_site(2)
    if name is not None and not isinstance(name, str):
        raise SpecError(f"Expected guard(name) to be a string, got {name!r}")
    unguard(module)
    if mode == "off" or (mode is None and _mode_from_env() == "off"):
        return module
    cls = type(module).__name__
    g = Guard(
        interface=interface,
        requires=_conditions(requires, "requires", site),
        ensures=_conditions(ensures, "ensures", site),
        name=name or cls,
        mode=mode,
        every=every,
        producer=producer,
        snapshot=snapshot,
        binder=_forward_binder(module),
        owner=f"{cls}.forward",
        declared_at=site,
    )
    g.handles.append(module.register_forward_pre_hook(g._pre_hook, with_kwargs=True))
    g.handles.append(module.register_forward_hook(g._post_hook, with_kwargs=True, always_call=False))
    setattr_plain(module, g)
    return module


def setattr_plain(module: nn.Module, g: Guard | None) -> None:
    # bypass nn.Module.__setattr__ bookkeeping; a Guard is not a parameter/buffer/module
    if g is None:
        module.__dict__.pop(_ATTR, None)
    else:
        module.__dict__[_ATTR] = g


def get_guard(module: nn.Module) -> Guard | None:
    """The module's Guard, or None."""
    return module.__dict__.get(_ATTR)


def unguard(module: nn.Module) -> nn.Module:
    """Remove the hooks ``guard`` attached (no-op if not guarded); returns the module."""
    if not isinstance(module, nn.Module):
        raise SpecError(
            f"Expected unguard(module) to be an nn.Module, got {module!r:.80} (type={type(module).__name__})"
        )
    g = module.__dict__.get(_ATTR)
    if g is not None:
        g.remove()
        setattr_plain(module, None)
    return module


def guard_submodules(model: nn.Module, specs: Mapping[str, Mapping[str, Any] | Any], **common: Any) -> nn.Module:
    """Guard submodules by path: ``{"head": {"interface": iface, "ensures": [...]}, "encoder.0": iface}``.
    A value that is not a mapping is taken as the interface. ``common`` keyword
    arguments (mode, every, ...) apply to each. The path is the guard's name."""
    mods = dict(model.named_modules())
    for path, spec in specs.items():
        if path not in mods:
            close = [p for p in mods if p and (p.endswith(path) or path in p)][:5]
            paths = [p for p in mods if p]
            hint = (
                f" (did you mean {', '.join(close)}?)"
                if close
                else f" (submodules: {', '.join(paths[:12])}{', ...' if len(paths) > 12 else ''})"
            )
            raise SpecError(f"guard_submodules: {type(model).__name__} has no submodule {path!r}{hint}")
        kw = dict(common)
        kw.update(spec if isinstance(spec, Mapping) else {"interface": spec})
        kw.setdefault("name", path or type(model).__name__)
        if "producer" not in kw:
            kw["producer"] = _sequential_producer(model, mods, path)
        guard(mods[path], **kw)
    return model


def _sequential_producer(model: nn.Module, mods: Mapping[str, nn.Module], path: str) -> str | None:
    """For a child of an nn.Sequential, who produced its input: the previous
    child's path, or "the input data" for the first child of the model itself."""
    if not path:
        return None
    parent_path, _, last = path.rpartition(".")
    parent = mods.get(parent_path)
    if not isinstance(parent, nn.Sequential):
        return None
    keys = list(parent._modules)
    i = keys.index(last) if last in keys else -1
    if i > 0:
        return f"{parent_path}.{keys[i - 1]}" if parent_path else keys[i - 1]
    if i == 0 and parent is model:
        return "the input data"
    return None


def guarded(model: nn.Module) -> Iterable[tuple[str, Guard]]:
    """(path, Guard) for every guarded module under ``model``."""
    for path, m in model.named_modules():
        g = get_guard(m)
        if g is not None:
            yield path, g
