"""Monitor: check every monitored module while the model runs.

    with Monitor(model, mode="record", defaults=True) as mon:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); opt.step()
            mon.step()
    print(mon.report())

This file is the public face: the arguments, entering and leaving, ``step``
and ``report``. The work is done by parts with one job each:

* ``scope.py``: the settings, validated, and the modules they select;
* ``hooks.py``: the hot path (forward hooks, the calls they see);
* ``recording.py``: slots, flags and records, and the ``Recording`` seam
  the contracts' checker (``checker.py``) writes through;
* ``diagnosis.py``: reading the flags, re-running and replaying failing calls;
* ``assemble.py`` with ``violations.py``: root causes and the report.

By default (``leaf_checks="on_violation"``) only the model and its guarded
modules are hooked between failures: each call checks the model's outputs,
and the first call and any call that breaks a check or raises run again
with every leaf hooked, which locates the module.
"""

from __future__ import annotations

import weakref
from contextvars import Token
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from modpact.contracts.context import ContextFlag
from modpact.errors import ContractViolation, MonitorError, SpecError
from modpact.runtime import distributed as D
from modpact.runtime.assemble import assemble
from modpact.runtime.calls import WINDOW
from modpact.runtime.checker import MonitorChecker
from modpact.runtime.diagnosis import Diagnosis
from modpact.runtime.hooks import Hooks
from modpact.runtime.propagation import FINITE_PRESERVING, propagates_non_finite
from modpact.runtime.recording import Recorder, Recording
from modpact.runtime.records import ViolationRecord
from modpact.runtime.report import DiagnosisReport
from modpact.runtime.scope import LEAF_CHECKS, MODES, LeafChecks, Mode, ModuleSelection, Scope, Settings, Settle

__all__ = [
    "Monitor",
    "MonitorViolation",
    "active_monitor",
    "propagates_non_finite",
    "FINITE_PRESERVING",
    "MODES",
    "LEAF_CHECKS",
]

_ACTIVE: ContextFlag[Monitor | None] = ContextFlag("modpact_monitor", None)
_CLAIMED: weakref.WeakKeyDictionary[nn.Module, Monitor] = weakref.WeakKeyDictionary()


def active_monitor() -> Monitor | None:
    return _ACTIVE.get()


class MonitorViolation(ContractViolation):
    """Raised by ``step()``/``report()`` in mode="raise"; ``.report`` holds the diagnosis."""

    kind = "monitor"
    report: DiagnosisReport


def _setting(name: str) -> property:
    return property(lambda self: getattr(self.settings, name), doc=f"The ``{name}`` setting (read-only).")


class Monitor:
    """Checks every guarded module of ``model`` (and with ``defaults=True``
    every leaf module: finite floating outputs, stable floating dtype, finite
    model inputs) while the model runs.

    mode: "record" collects violations; "raise" raises ``MonitorViolation``
        with the diagnosis at the first ``step()``/``report()`` that sees one.
    defaults: add default contracts to leaf modules (or to ``modules``).
    modules: restrict default contracts to these paths (or a predicate on
        (path, module)).
    backward: also check gradients: finite gradients arriving at each
        monitored module's outputs and, at ``step()``, each module's
        parameter gradients (finite; within ``grad_norm=(lo, hi)`` if given).
    replay: keep each call's inputs and RNG state, so that a failing call can
        be re-run with every check evaluated at once: the re-run locates the
        module, traces where a non-finite value began, and collects evidence.
    leaf_checks: when the default contracts of the leaves run.
        "on_violation" (the default with ``defaults=True``, ``replay=True``,
        no ``modules`` and no gradient checks): every call checks the
        model's outputs and every guarded module; the first call, and a call
        that breaks one of these checks or raises, is run (again) with every
        leaf checked, which finds the first module whose output went bad. A
        non-finite value or dtype change that never reaches a checked tensor
        (a -inf a ReLU turns into 0) is not seen.
        "every_call": every leaf is checked on every call.
    elide: skip a default ``finite(output)`` check when the tensor's next
        consumer is a module that propagates non-finite values (Linear,
        stride-1 Conv, norms, ...) whose own output is checked: a bad value
        still sets a flag, one module later, and the replay finds the module
        that produced it. Default: on when ``replay`` is on (without a replay
        the blame could land one module downstream).
    sync_every: under torch.distributed, exchange violation flags across
        ranks at every ``sync_every``-th ``step()`` (one all_reduce; 0: never).
    group: the process group to exchange over (default: the world).
    timeout: seconds to wait for the other ranks at an exchange before
        raising MonitorError (a rank that died or hangs).
    settle: when a training loop's flags are read, so that a failing call
        can be re-run as it was: "optimizer" (default) reads them before
        every ``optimizer.step()`` (a global optimizer step pre-hook), while
        the weights the call used are still there; on CUDA that waits for
        the device once per optimizer step. "step" reads them only at
        ``step()``/``report()``: a call whose weights an optimizer changed
        in the meantime is not re-run, and the report says so.
    """

    def __init__(
        self,
        model: nn.Module,
        mode: Mode = "record",
        *,
        defaults: bool = False,
        modules: ModuleSelection = None,
        backward: bool = False,
        grad_norm: tuple[float | None, float | None] | None = None,
        replay: bool = True,
        leaf_checks: LeafChecks | None = None,
        elide: bool | None = None,
        max_violations: int = 10_000,
        sync_every: int = 1,
        group: Any = None,
        timeout: float = D.DEFAULT_TIMEOUT.total_seconds(),
        settle: Settle = "optimizer",
    ):
        if not isinstance(model, nn.Module):
            raise SpecError(f"Monitor(model=...): expected an nn.Module, got {type(model).__name__}")
        self.model = model
        self.settings = Settings.build(
            mode=mode,
            defaults=defaults,
            modules=modules,
            backward=backward,
            grad_norm=grad_norm,
            replay=replay,
            leaf_checks=leaf_checks,
            elide=elide,
            max_violations=max_violations,
            sync_every=sync_every,
            group=group,
            timeout=timeout,
            settle=settle,
        )
        self._token: Token[Any] | None = None
        self._optimizer_hook: Any = None
        self._guard_checkers: list[tuple[Any, Any]] = []  # (guard, its checker before this Monitor)
        self._entered = False
        self._scope = Scope(model)
        self._scope.check_paths(self.settings)
        self._recorder = Recorder(self.settings.max_violations)
        self._hooks = Hooks(self.settings, self._scope, self._recorder, self._collect)
        self._diagnosis = Diagnosis(self.settings, self._scope, self._recorder, self._hooks)
        self._remote: list[ViolationRecord] = []  # other ranks' records, from exchanges
        self._raised = 0  # mode="raise": violations raised so far (they stay in the report)
        self._raised_keys: set[tuple] = set()
        self._world_size: int | None = None

    mode = _setting("mode")
    defaults = _setting("defaults")
    modules = _setting("modules")
    backward = _setting("backward")
    grad_norm = _setting("grad_norm")
    replay = _setting("replay")
    leaf_checks = _setting("leaf_checks")
    elide = _setting("elide")
    max_violations = _setting("max_violations")
    sync_every = _setting("sync_every")
    group = _setting("group")
    timeout = _setting("timeout")
    settle = _setting("settle")

    def _collect(self, block: bool) -> None:
        self._diagnosis.collect(block)

    @property
    def recording(self) -> Recording:
        """The seam a checker writes through (see ``runtime/recording.py``)."""
        return Recording(self._recorder, self._hooks.current, self._scope.guarded)

    # ------------------------------------------------------------ enter/exit
    def __enter__(self) -> Monitor:
        if self._entered:
            raise MonitorError("Monitor is already active; a Monitor can be entered once at a time")
        for path, mod in self.model.named_modules():
            other = _CLAIMED.get(mod)
            if other is not None and other is not self:
                raise MonitorError(
                    f"Monitor: module {path or '<model>'} ({type(mod).__name__}) is already monitored by another "
                    "active Monitor; nested monitors over the same modules are not supported — exit the outer one "
                    "first or monitor disjoint submodules"
                )
        self._scope.select(self.settings)
        param = next(self.model.parameters(), None)
        self._recorder.allocate(param.device if param is not None else torch.device("cpu"))
        try:
            for mod in self._scope.paths:
                _CLAIMED[mod] = self
            self._hooks.install()
            if self.settings.replay:
                self._optimizer_hook = register_optimizer_step_pre_hook(self._before_optimizer_step)
            self._token = _ACTIVE.set(self)
            if self._scope.guarded:  # the guards check through this Monitor in every thread
                checker = MonitorChecker(self.recording)
                for guard in self._scope.guarded.values():
                    self._guard_checkers.append((guard, guard.checker))
                    guard.checker = checker
        except BaseException:
            self._remove_hooks()
            raise
        self._entered = True
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._collect(block=True)
            elif self._entered and issubclass(exc_type, Exception):
                try:  # read what the calls left (a forward that raised is re-run) without hiding the error
                    self._collect(block=True)
                except Exception as e:
                    self._recorder.notes.append(
                        f"reading the flags after {exc_type.__name__} raised {type(e).__name__}: {e}"
                    )
        finally:
            self._remove_hooks()
            if self._token is not None:
                try:
                    _ACTIVE.reset(self._token)
                except ValueError:  # exited in another context
                    _ACTIVE.set(None)
                self._token = None
            self._entered = False
        if exc_type is None and self.settings.mode == "raise":
            self._raise_if_violations()

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """settle="optimizer": read the flags while the weights a failing call
        used are still there, so that its re-run is the call that failed."""
        self._diagnosis.optimizer_step(self._hooks.calls.step)
        if self.settings.settle == "optimizer":
            self._collect(block=True)

    def _remove_hooks(self) -> None:
        while self._guard_checkers:
            guard, previous = self._guard_checkers.pop()
            guard.checker = previous
        if self._optimizer_hook is not None:
            self._optimizer_hook.remove()
            self._optimizer_hook = None
        self._hooks.remove()
        for mod in list(self._scope.paths):
            if _CLAIMED.get(mod) is self:
                del _CLAIMED[mod]

    @property
    def hooks(self) -> int:
        """Number of hooks currently installed by this monitor."""
        return len(self._hooks.handles)

    # ------------------------------------------------------------------ step
    def step(self) -> None:
        """Mark a step boundary: flush this step's checks, read those that have
        arrived (on CPU: all), and in mode="raise" raise on a violation."""
        settings, hooks = self.settings, self._hooks
        if settings.backward:
            hooks.gradients.check_params()
        self._collect(block=False)
        calls = hooks.calls
        if settings.sync_every and (calls.step + 1) % settings.sync_every == 0 and D.active(settings.group):
            self._exchange()
        calls.next_step()
        self._diagnosis.next_step(calls.step, WINDOW)
        if settings.mode == "raise":
            self._raise_if_violations()

    def _exchange(self) -> None:
        """One all_reduce of per-rank violation counts; records are gathered
        only when some rank has new ones."""
        rec = self._recorder
        new = rec.records[rec.sent :]
        counts = D.exchange_counts(len(new), self.settings.group, self.settings.timeout)
        self._world_size = len(counts)
        if any(counts):
            me = torch.distributed.get_rank(self.settings.group)
            for r, records in enumerate(D.gather(new if counts[me] else [], self.settings.group)):
                if r != me:
                    self._remote.extend(records)
        rec.sent = len(rec.records)

    # ---------------------------------------------------------------- report
    def report(self) -> DiagnosisReport:
        """Read every outstanding flag (waits for in-flight copies) and return
        the diagnosis: root causes, consequences, per-module counts."""
        self._collect(block=True)
        return assemble(self._scope, self.settings, self._hooks, self._recorder, self._remote, self._world_size)

    @property
    def violations(self) -> list[ViolationRecord]:
        return list(self._recorder.records)

    def _raise_if_violations(self) -> None:
        """mode="raise": raise for violations not raised yet (those raised
        before stay in the report)."""
        rec = self._recorder
        total = rec.total + len(self._remote)
        if total <= self._raised:
            return
        rep = self.report()
        seen = self._raised_keys
        fresh = [v for v in rep.roots if (v.rank, v.step, v.phase, v.call, v.seq) not in seen]
        root = fresh[0] if fresh else rep.root_cause
        if root is None:  # records past max_violations: counted, none kept
            raise MonitorViolation(rep.headline(), contract=None)
        err = MonitorViolation(
            rep.headline(),
            module=root.where,
            blame=root.blame,
            blame_reason=root.blame_reason,
            contract=root.check,
            evidence=dict(root.evidence),
            declared_at=root.declared_at,
        )
        err.report = rep
        self._raised = total
        self._raised_keys = {(v.rank, v.step, v.phase, v.call, v.seq) for v in rep.violations}
        raise err
