"""What a Monitor checks: its settings, validated once, and the modules they select.

``Settings.build`` checks every argument of ``Monitor(...)`` and names what is
wrong; ``Scope.select`` resolves, when the Monitor is entered, which modules are
guarded, which get the default contracts, and (``leaf_checks="on_violation"``)
which leaves are hooked only while a call is checked in full.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

from torch import nn

from modpact.interfaces.errors import MonitorError, SpecError
from modpact.runtime.contracts_info import guard_of

__all__ = ["Mode", "LeafChecks", "MODES", "LEAF_CHECKS", "Settings", "Scope"]

Mode = Literal["raise", "record"]
LeafChecks = Literal["on_violation", "every_call"]
MODES: tuple[Mode, ...] = ("raise", "record")
LEAF_CHECKS: tuple[LeafChecks, ...] = ("on_violation", "every_call")
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

    @classmethod
    def build(cls, *, mode: Any, defaults: bool, modules: ModuleSelection, backward: bool, grad_norm: Any,
              replay: bool, leaf_checks: Any, elide: Any, max_violations: int, sync_every: Any, group: Any,
              timeout: Any) -> Settings:
        if mode not in MODES:
            raise SpecError(f"Monitor(mode={mode!r}): expected one of {', '.join(map(repr, MODES))}")
        if grad_norm is not None:
            if not (isinstance(grad_norm, tuple) and len(grad_norm) == 2):
                raise SpecError(f"Monitor(grad_norm={grad_norm!r}): expected a (min, max) tuple; either may be None")
            lo, hi = grad_norm
            if lo is not None and hi is not None and lo > hi:
                raise SpecError(f"Monitor(grad_norm={grad_norm!r}): min {lo} > max {hi}")
        if not isinstance(sync_every, int) or isinstance(sync_every, bool) or sync_every < 0:
            raise SpecError(f"Monitor(sync_every={sync_every!r}): expected an int >= 0 (0: never exchange across ranks)")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise SpecError(f"Monitor(timeout={timeout!r}): expected a positive number of seconds")
        backward = backward or grad_norm is not None
        if leaf_checks is None:
            leaf_checks = "on_violation" if replay and modules is None and not backward else "every_call"
        elif leaf_checks not in LEAF_CHECKS:
            raise SpecError(
                f"Monitor(leaf_checks={leaf_checks!r}): expected one of {', '.join(map(repr, LEAF_CHECKS))}")
        elif leaf_checks == "on_violation" and not replay:
            raise SpecError("Monitor(leaf_checks='on_violation', replay=False): leaves are checked when a failing "
                            "call is replayed; pass replay=True, or leaf_checks='every_call'")
        elif leaf_checks == "on_violation" and modules is not None:
            raise SpecError("Monitor(leaf_checks='on_violation', modules=...): the model's outputs stand in for "
                            "the leaves only when every leaf has default contracts; pass leaf_checks='every_call'")
        return cls(mode=mode, defaults=defaults, modules=modules, backward=backward, grad_norm=grad_norm,
                   replay=replay, leaf_checks=leaf_checks, elide=replay if elide is None else bool(elide),
                   max_violations=max_violations, sync_every=sync_every, group=group,
                   timeout=datetime.timedelta(seconds=float(timeout)))


@dataclass
class Scope:
    """The modules a Monitor hooks, by path ("" is the model).

    ``paths``: every hooked module (guarded, or with default contracts);
    ``defaults``: the paths with default contracts; ``guarded``: path -> Guard;
    ``leaves``: on_violation's leaves, hooked only for the first call and
    while a failing call runs again."""

    model: nn.Module
    paths: dict[nn.Module, str] = field(default_factory=dict)
    defaults: set[str] = field(default_factory=set)
    guarded: dict[str, Any] = field(default_factory=dict)
    leaves: dict[nn.Module, str] = field(default_factory=dict)

    def select(self, settings: Settings) -> None:
        """Resolve the modules (when the Monitor is entered: guards may have
        been added since it was made)."""
        model = self.model
        self.paths, self.defaults, self.guarded, self.leaves = {}, set(), {}, {}
        for path, mod in model.named_modules():
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


def _wants_defaults(settings: Settings, model: nn.Module, path: str, mod: nn.Module) -> bool:
    if not settings.defaults:
        return False
    if settings.modules is None:
        return len(list(mod.children())) == 0 or mod is model
    if callable(settings.modules):
        return bool(settings.modules(path, mod))
    return path in set(settings.modules)
