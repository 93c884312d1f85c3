"""What a Monitor checks: its settings, validated once, and the modules they select.

``Settings.build`` checks every argument of ``Monitor(...)`` and names what is
wrong; ``Scope.select`` resolves, when the Monitor is entered, which modules are
guarded, which get the default contracts, and (``leaf_checks="on_violation"``)
which leaves are hooked only while a call is checked in full.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from modpact.errors import MonitorError, SpecError
from modpact.runtime.contracts_info import guard_of
from modpact.runtime.propagation import ACTIVATIONS

__all__ = ["Mode", "LeafChecks", "Settle", "MODES", "LEAF_CHECKS", "SETTLES", "Settings", "Scope"]

Mode = Literal["raise", "record"]
LeafChecks = Literal["on_violation", "every_call"]
Settle = Literal["optimizer", "step"]
MODES: tuple[Mode, ...] = ("raise", "record")
LEAF_CHECKS: tuple[LeafChecks, ...] = ("on_violation", "every_call")
SETTLES: tuple[Settle, ...] = ("optimizer", "step")
ModuleSelection = Iterable[str] | Callable[[str, nn.Module], bool] | None


@dataclass(frozen=True)
class Settings:
    """The Monitor's arguments, validated (see ``Monitor`` for their meaning)."""

    mode: Mode
    defaults: bool
    modules: Any
    backward: bool
    grad_norm: tuple[float | None, float | None] | None
    replay: bool
    leaf_checks: LeafChecks
    elide: bool
    max_violations: int
    sync_every: int
    group: Any
    timeout: datetime.timedelta
    settle: Settle

    @classmethod
    def build(
        cls,
        *,
        mode: Any,
        defaults: bool,
        modules: ModuleSelection,
        backward: bool,
        grad_norm: Any,
        replay: bool,
        leaf_checks: Any,
        elide: Any,
        max_violations: int,
        sync_every: Any,
        group: Any,
        timeout: Any,
        settle: Any,
    ) -> Settings:
        if mode not in MODES:
            raise SpecError(f"Monitor(mode={mode!r}): expected one of {', '.join(map(repr, MODES))}")
        if isinstance(max_violations, bool) or not isinstance(max_violations, int) or max_violations < 1:
            raise SpecError(
                f"Monitor(max_violations={max_violations!r}): expected an int >= 1 (violations past it are "
                "counted, not kept as records)"
            )
        if settle not in SETTLES:
            raise SpecError(f"Monitor(settle={settle!r}): expected one of {', '.join(map(repr, SETTLES))}")
        if grad_norm is not None:
            if not (isinstance(grad_norm, tuple) and len(grad_norm) == 2):
                raise SpecError(f"Monitor(grad_norm={grad_norm!r}): expected a (min, max) tuple; either may be None")
            lo, hi = grad_norm
            if lo is not None and hi is not None and lo > hi:
                raise SpecError(f"Monitor(grad_norm={grad_norm!r}): min {lo} > max {hi}")
        if not isinstance(sync_every, int) or isinstance(sync_every, bool) or sync_every < 0:
            raise SpecError(
                f"Monitor(sync_every={sync_every!r}): expected an int >= 0 (0: never exchange across ranks)"
            )
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise SpecError(f"Monitor(timeout={timeout!r}): expected a positive number of seconds")
        if modules is not None and not callable(modules):
            if isinstance(modules, str) or not isinstance(modules, Iterable):
                raise SpecError(
                    f"Monitor(modules={modules!r}): expected module paths (a list of str) or a predicate "
                    "(path, module) -> bool"
                )
            modules = frozenset(modules)
            bad = [m for m in modules if not isinstance(m, str)]
            if bad:
                raise SpecError(f"Monitor(modules=...): expected module paths as str, got {bad[0]!r}")
        backward = backward or grad_norm is not None
        if leaf_checks is None:
            leaf_checks = "on_violation" if replay and modules is None and not backward else "every_call"
        elif leaf_checks not in LEAF_CHECKS:
            raise SpecError(
                f"Monitor(leaf_checks={leaf_checks!r}): expected one of {', '.join(map(repr, LEAF_CHECKS))}"
            )
        elif leaf_checks == "on_violation" and not replay:
            raise SpecError(
                "Monitor(leaf_checks='on_violation', replay=False): leaves are checked when a failing "
                "call is replayed; pass replay=True, or leaf_checks='every_call'"
            )
        elif leaf_checks == "on_violation" and modules is not None:
            raise SpecError(
                "Monitor(leaf_checks='on_violation', modules=...): the model's outputs stand in for "
                "the leaves only when every leaf has default contracts; pass leaf_checks='every_call'"
            )
        return cls(
            mode=mode,
            defaults=defaults,
            modules=modules,
            backward=backward,
            grad_norm=grad_norm,
            replay=replay,
            leaf_checks=leaf_checks,
            elide=replay if elide is None else bool(elide),
            max_violations=max_violations,
            sync_every=sync_every,
            group=group,
            timeout=datetime.timedelta(seconds=float(timeout)),
            settle=settle,
        )


@dataclass
class Scope:
    """The modules a Monitor hooks, by path ("" is the model).

    ``paths``: every hooked module (guarded, or with default contracts);
    ``defaults``: the paths with default contracts (leaves, the model, and
    modules with parameters of their own); ``guarded``: path -> Guard;
    ``leaves``: on_violation's leaves, hooked only for the first call and
    while a failing call runs again. A model compiled with ``torch.compile``
    keeps its own paths: the wrapper is the model, ``_orig_mod`` is not a path."""

    model: nn.Module
    paths: dict[nn.Module, str] = field(default_factory=dict)
    defaults: set[str] = field(default_factory=set)
    guarded: dict[str, Any] = field(default_factory=dict)
    leaves: dict[nn.Module, str] = field(default_factory=dict)
    # every module of the model by id: (path, module); the model's parameters and buffers, with names
    modules: dict[int, tuple[str, nn.Module]] = field(default_factory=dict)
    state: list[torch.Tensor] = field(default_factory=list)
    state_names: list[str] = field(default_factory=list)
    _module_list: list[nn.Module] = field(default_factory=list)

    @property
    def inner(self) -> nn.Module:
        """The module that runs the forward: ``torch.compile(m)`` wraps ``m``,
        whose paths are the model's (no ``_orig_mod.`` prefix)."""
        return getattr(self.model, "_orig_mod", self.model) if _is_compiled(self.model) else self.model

    def named_modules(self) -> list[tuple[str, nn.Module]]:
        """(path, module) of the model as the user wrote it (a compiled
        model's paths without ``_orig_mod.``); the model itself is ""."""
        inner = self.inner
        out = [("", self.model)]
        out += [(p, m) for p, m in inner.named_modules() if m is not inner]
        return out

    def running_modules(self) -> list[tuple[str, nn.Module]]:
        """(path, module) of every module that runs in the forward (a
        compiled model's ``_orig_mod`` as "", not its wrapper)."""
        return [("", self.inner), *self.named_modules()[1:]]

    def versions(self) -> tuple[int, ...]:
        """The version counters of the model's parameters and buffers (host only)."""
        return tuple([t._version for t in self.state])

    def training(self) -> tuple[bool, ...]:
        """The train/eval mode of every module whose forward may read it
        (all but PyTorch's own modules that never do: Linear, Conv, ReLU, ...)."""
        return tuple([m.training for m in self._module_list])

    def check_paths(self, settings: Settings) -> None:
        """Every path given as ``modules=`` names a module of the model."""
        if not isinstance(settings.modules, frozenset):
            return
        paths = [p for p, _ in self.named_modules()]
        for path in sorted(settings.modules - set(paths)):
            close = difflib.get_close_matches(path, paths, n=3)
            hint = (
                f"; did you mean {', '.join(map(repr, close))}?"
                if close
                else f"; its modules: {', '.join(map(repr, paths[:12]))}"
            )
            raise SpecError(f"Monitor(modules=...): {type(self.model).__name__} has no module {path!r}{hint}")

    def select(self, settings: Settings) -> None:
        """Resolve the modules (when the Monitor is entered: guards may have
        been added since it was made)."""
        model = self.model
        self.paths, self.defaults, self.guarded, self.leaves = {}, set(), {}, {}
        named = self.named_modules()
        self.modules = {id(m): (p, m) for p, m in named}
        self._module_list = [m for _, m in named if _reads_training(m)]
        inner = self.inner
        if inner is not model:
            self.modules[id(inner)] = ("", inner)
        self.state_names, self.state = [], []
        for name, t in (*inner.named_parameters(), *inner.named_buffers()):
            self.state_names.append(name)
            self.state.append(t)
        for path, mod in named:
            guard = guard_of(mod)
            if guard is not None:
                self.guarded[path] = guard
            wants = _wants_defaults(settings, model, path, mod)
            if guard is not None or wants:
                self.paths[mod] = path
                if wants:
                    self.defaults.add(path)
        self.paths.setdefault(model, "")
        if not self.guarded and not settings.defaults:
            raise MonitorError(
                f"Monitor: {type(model).__name__} has no guarded modules, so there is nothing to check; "
                "guard modules with modpact.guard(...) / @modpact.contract, or pass defaults=True to check every "
                "leaf module with default contracts (finite outputs, stable dtype)"
            )
        if settings.defaults and settings.leaf_checks == "on_violation":
            self.leaves = {m: p for m, p in self.paths.items() if m is not model and p not in self.guarded}


# PyTorch modules whose forward never reads ``self.training`` (dropout, batch
# norm, RNNs and attention do, and are not here)
_MODE_FREE = (
    *ACTIVATIONS,
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Softmax,
    nn.LogSoftmax,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)


def _reads_training(mod: nn.Module) -> bool:
    """Whether ``mod``'s forward may read its train/eval mode (a subclass
    that overrides ``forward`` may)."""
    for base in _MODE_FREE:
        if isinstance(mod, base):
            return type(mod).forward is not base.forward
    return True


def _is_compiled(model: nn.Module) -> bool:
    return type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module)


def _wants_defaults(settings: Settings, model: nn.Module, path: str, mod: nn.Module) -> bool:
    if not settings.defaults:
        return False
    if settings.modules is None:
        # leaves, the model, and modules that compute with parameters of their
        # own (nn.MultiheadAttention never calls its out_proj as a module)
        return mod is model or len(list(mod.children())) == 0 or any(True for _ in mod.parameters(recurse=False))
    if callable(settings.modules):
        return bool(settings.modules(path, mod))
    return path in settings.modules
