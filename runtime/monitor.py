"""Monitor: check every monitored module while the model runs.

    with Monitor(model, mode="record", defaults=True) as mon:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); opt.step()
            mon.step()
    print(mon.report())

By default (``leaf_checks="on_violation"``) only the model and its guarded
modules are hooked between failures: each call checks the model's outputs,
and the first call and any call that breaks a check or raises run again with
every leaf hooked, which locates the module (``_diagnose``).

Hot path (per monitored module call): metadata checks on the host (free),
value checks recorded as one ``aminmax`` per tensor into a FlagBuffer (no
host-device sync), a dataflow edge per input tensor. At ``step()`` the
buffer is flushed (a few vectorised ops, an async copy to pinned memory) and
copies that have arrived are read; on CPU they arrive at once. When a flag
is set, the failing call is replayed synchronously from its kept inputs and
RNG state to collect evidence (which elements, which values).
"""

from __future__ import annotations

import contextlib
import datetime
import sys
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from modpact.interfaces.errors import ContractViolation, MonitorError, SpecError
from modpact.interfaces import values as V
from modpact.interfaces.summary import describe, summarize
from modpact.contracts._context import ContextFlag
from modpact.contracts.checking import use_checker
from modpact.runtime._buffer import FlagBuffer, checkable, range_violated
from modpact.runtime import distributed as D
from modpact.runtime.checker import MonitorChecker
from modpact.runtime.contracts_info import guard_of as _guard_of, module_contracts
from modpact.runtime.histogram import value_histogram
from modpact.runtime.report import DiagnosisReport, Histogram, ViolationRecord
from modpact.runtime.violations import INPUT_DATA, Dataflow, RuntimeViolation, assign_roots

__all__ = ["Monitor", "MonitorViolation", "active_monitor"]

MODES = ("raise", "record")
LEAF_CHECKS = ("on_violation", "every_call")
_ACTIVE: ContextFlag["Monitor | None"] = ContextFlag("modpact_monitor", None)
_CLAIMED: "weakref.WeakKeyDictionary[nn.Module, Monitor]" = weakref.WeakKeyDictionary()


def active_monitor() -> "Monitor | None":
    return _ACTIVE.get()


class MonitorViolation(ContractViolation):
    """Raised by ``step()``/``report()`` in mode="raise"; ``.report`` holds the diagnosis."""

    kind = "monitor"


@dataclass(frozen=True)
class Slot:
    """The static part of one check: same for every call of the module."""

    module: str
    kind: str
    check: str
    tensor: str
    lo: float | None = None
    hi: float | None = None
    finite: bool = True
    declared_at: str | None = None
    phase: str = "forward"


_Tensor = torch.Tensor

# Modules whose output is finite whenever their input is: their value check is
# skipped when the input was produced by a module this monitor already checks.
FINITE_PRESERVING = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)


# Modules whose output is non-finite somewhere whenever an input element is
# (every input element reaches some output element through +, * or a mean;
# inf * 0 is NaN). A default ``finite(output)`` check on a tensor consumed by
# one of them is covered by the check on its output, so it can be elided.
# ReLU (-inf -> 0), sigmoid, tanh, softmax, max pooling and strided
# convolutions (which skip input positions) absorb values and are not here.
_PROPAGATING = (
    nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def propagates_non_finite(mod: nn.Module) -> bool:
    """Whether a non-finite element anywhere in ``mod``'s input always makes
    some element of its output non-finite (checked per instance: a subclass
    that overrides ``forward`` is not trusted)."""
    for base in _PROPAGATING + _DROPOUT + _CONV + (nn.LeakyReLU,):
        if isinstance(mod, base):
            if type(mod).forward is not base.forward:
                return False
            if base in _CONV:
                return all(s == 1 for s in mod.stride) and all(d == 1 for d in mod.dilation)
            if base in _DROPOUT:
                return mod.p < 1
            if base is nn.LeakyReLU:
                return mod.negative_slope > 0
            return True
    return False


def _flat(obj: Any, prefix: str) -> list[tuple[str, torch.Tensor]]:
    """Tensors in obj with their names; fast path for the common shapes."""
    if type(obj) is _Tensor or isinstance(obj, _Tensor):
        return [(prefix, obj)]
    if type(obj) is tuple and len(obj) == 1 and isinstance(obj[0], _Tensor):
        return [(f"{prefix}[0]", obj[0])]
    return list(_tensors(obj, prefix))


def _flat_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in obj, without names (hot path)."""
    if type(obj) is tuple and len(obj) == 1 and type(obj[0]) is _Tensor:
        return [obj[0]]
    return [t for _, t in _tensors(obj, "")]


def _tensors(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, (tuple, list)):
        for i, x in enumerate(obj):
            yield from _tensors(x, f"{prefix}[{i}]")
    elif isinstance(obj, dict):
        for k, x in obj.items():
            yield from _tensors(x, f"{prefix}.{k}")


_is_compiling = torch.compiler.is_compiling
_CUDA = torch.cuda.is_available()
SLOT_CAPACITY = 4096
FLUSH_AT = 4096  # pending checks that trigger a flush without step()


def _rank() -> int | None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return None


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
    replay: replay a failing call synchronously to collect evidence.
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
    """

    def __init__(
        self,
        model: nn.Module,
        mode: str = "record",
        *,
        defaults: bool = False,
        modules: Iterable[str] | Callable[[str, nn.Module], bool] | None = None,
        backward: bool = False,
        grad_norm: tuple[float | None, float | None] | None = None,
        replay: bool = True,
        leaf_checks: str | None = None,
        elide: bool | None = None,
        max_violations: int = 10_000,
        sync_every: int = 1,
        group: Any = None,
        timeout: float = D.DEFAULT_TIMEOUT.total_seconds(),
    ):
        if not isinstance(model, nn.Module):
            raise SpecError(f"Monitor(model=...): expected an nn.Module, got {type(model).__name__}")
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
        self.sync_every = sync_every
        self.group = group
        self.timeout = datetime.timedelta(seconds=float(timeout))
        self.model = model
        self.mode = mode
        self.defaults = defaults
        self.modules = modules
        self.backward = backward or grad_norm is not None
        self.grad_norm = grad_norm
        self.replay = replay
        if leaf_checks is None:
            leaf_checks = "on_violation" if replay and modules is None and not self.backward else "every_call"
        elif leaf_checks not in LEAF_CHECKS:
            raise SpecError(
                f"Monitor(leaf_checks={leaf_checks!r}): expected one of {', '.join(map(repr, LEAF_CHECKS))}")
        elif leaf_checks == "on_violation" and not replay:
            raise SpecError("Monitor(leaf_checks='on_violation', replay=False): leaves are checked when a failing "
                            "call is replayed; pass replay=True, or leaf_checks='every_call'")
        elif leaf_checks == "on_violation" and modules is not None:
            raise SpecError("Monitor(leaf_checks='on_violation', modules=...): the model's outputs stand in for "
                            "the leaves only when every leaf has default contracts; pass leaf_checks='every_call'")
        self.leaf_checks = leaf_checks
        self.elide = replay if elide is None else bool(elide)
        self.max_violations = max_violations
        self._handles: list[Any] = []
        self._leaf_mods: dict[nn.Module, str] = {}  # on_violation: leaves hooked only while a call is re-run
        self._token = None
        self._checker_cm = None
        self._entered = False
        self._reset_state()

    # ------------------------------------------------------------------ setup
    def _reset_state(self) -> None:
        self.buffer = FlagBuffer()
        self.flow = Dataflow()
        self._grad_seq = 0  # execution order of gradient checks (backward and step phases)
        self._step = 0
        self._call = -1
        self._seq = 0
        self._calls_total = 0
        self._checks = 0
        self._violations: list[RuntimeViolation] = []
        self._remote: list[RuntimeViolation] = []  # other ranks' records, from exchanges
        self._shared = 0  # local records already sent in an exchange
        self._world_size: int | None = None
        self._producers: dict[int, tuple[weakref.ref, str, bool]] = {}
        # default output checks waiting for the next monitored call: id -> (tensor, event)
        self._pending: dict[int, tuple[torch.Tensor, tuple]] = {}
        # modules whose output a propagating consumer took last time: their
        # check waits for that consumer; every other check runs at once, while
        # the tensor is still in cache
        self._coverable: set[str] = set()
        self._edges_now: set = set()
        self._graph_edges: set[tuple[str, str]] = set()  # every call's edges, kept for the report's graph
        self._violated_calls: set[tuple[int, int]] = set()  # their dataflow is kept for assign_roots
        self._stack: list[str] = []
        self._slot_index: dict[Slot, int] = {}
        self._slot_meta: list[tuple[Slot, str, str]] = []
        self._slot_flags: torch.Tensor | None = None
        self._inputs: dict[tuple[int, int], tuple] = {}
        self._replaying: dict | None = None
        self._diagnosing: tuple[int, int] | None = None  # the call being re-run with every leaf checked
        self._to_diagnose: set[tuple[int, int]] = set()  # calls that raised or broke a host-side check
        self._diagnosed: set[tuple[int, int]] = set()
        self._first_call: list = []  # on_violation: the leaf hooks of the first call
        self._steady = False  # on_violation, between failures: only the model's outputs are checked
        self._lean = False  # ... and nothing else is hooked: the model's hooks take a short path
        self._learned: set[tuple[str, str]] = set()  # on_violation: the first call's edges, between leaves too
        self._paths: dict[nn.Module, str] = {}
        self._default_paths: set[str] = set()
        self._guarded: dict[str, Any] = {}
        self._slots: dict[tuple, Slot] = {}
        self._notes: list[str] = []

    def _wants_defaults(self, path: str, mod: nn.Module) -> bool:
        if not self.defaults:
            return False
        if self.modules is None:
            return len(list(mod.children())) == 0 or mod is self.model
        if callable(self.modules):
            return bool(self.modules(path, mod))
        return path in set(self.modules)

    def __enter__(self) -> "Monitor":
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
        for path, mod in self.model.named_modules():
            guard = _guard_of(mod)
            if guard is not None:
                self._guarded[path] = guard
            if guard is not None or self._wants_defaults(path, mod):
                self._paths[mod] = path
                if self._wants_defaults(path, mod):
                    self._default_paths.add(path)
        self._paths.setdefault(self.model, "")
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self._slot_flags = torch.zeros(SLOT_CAPACITY, dtype=torch.bool, device=device)
        if not self._guarded and not self.defaults:
            raise MonitorError(
                f"Monitor: {type(self.model).__name__} has no guarded modules, so there is nothing to check; "
                "guard modules with modpact.guard(...) / @modpact.contract, or pass defaults=True to check every "
                "leaf module with default contracts (finite outputs, stable dtype)"
            )
        if self.defaults and self.leaf_checks == "on_violation":
            self._leaf_mods = {m: p for m, p in self._paths.items()
                               if m is not self.model and p not in self._guarded}
        try:
            for mod in self._paths:
                _CLAIMED[mod] = self
            self._install({m: p for m, p in self._paths.items() if m not in self._leaf_mods}, self._handles)
            self._token = _ACTIVE.set(self)
            if self._guarded:
                self._checker_cm = use_checker(MonitorChecker(self))
                self._checker_cm.__enter__()
        except BaseException:
            self._remove_hooks()
            raise
        self._entered = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._collect(block=True)
            elif self._entered and issubclass(exc_type, Exception):
                try:  # read what the calls left (a forward that raised is re-run) without hiding the error
                    self._collect(block=True)
                except Exception as e:
                    self._notes.append(f"reading the flags after {exc_type.__name__} raised {type(e).__name__}: {e}")
        finally:
            self._remove_hooks()
            if self._checker_cm is not None:
                try:
                    self._checker_cm.__exit__(None, None, None)
                except ValueError:
                    pass
                self._checker_cm = None
            if self._token is not None:
                try:
                    _ACTIVE.reset(self._token)
                except ValueError:  # exited in another context
                    _ACTIVE.set(None)
                self._token = None
            self._entered = False
        if exc_type is None and self.mode == "raise":
            self._raise_if_violations()

    def _install(self, mods: dict[nn.Module, str], handles: list) -> None:
        for mod, path in mods.items():
            # leaves checked by default contracts only need the post hook
            # (inputs are still at hand there); containers, guarded modules
            # and the model itself also need the pre hook
            has_pre = mod is self.model or path in self._guarded or any(True for _ in mod.children())
            if has_pre:
                # prepend: the monitor's pre hook runs before a guard's, so the
                # call is open and the module is on the stack when the guard checks
                handles.append(
                    mod.register_forward_pre_hook(self._make_pre(path, mod), with_kwargs=True, prepend=True)
                )
            # always_call: the model's post hook also sees a forward that raised
            handles.append(mod.register_forward_hook(self._make_post(path, mod, has_pre), with_kwargs=True,
                                                     always_call=mod is self.model))

    @contextlib.contextmanager
    def _leaf_hooks(self):
        """Hook the leaves that on_violation leaves unhooked between failures."""
        handles: list = []
        try:
            self._install(self._leaf_mods, handles)
            yield
        finally:
            for h in handles:
                h.remove()

    def _end_first_call(self) -> None:
        """Unhook the leaves hooked for the first call; keep what it learned."""
        if self._first_call:
            self._learned = set(self._edges_now)
            self._lean = not self._guarded and not self.backward
        for h in self._first_call:
            h.remove()
        self._first_call.clear()

    def _remove_hooks(self) -> None:
        self._end_first_call()
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for mod in list(self._paths):
            if _CLAIMED.get(mod) is self:
                del _CLAIMED[mod]

    @property
    def hooks(self) -> int:
        """Number of hooks currently installed by this monitor."""
        return len(self._handles)

    # ------------------------------------------------------------- recording
    def _slot(self, module: str, kind: str, check: str, tensor: str, **kw: Any) -> Slot:
        key = (module, kind, check, tensor, tuple(sorted(kw.items())))
        s = self._slots.get(key)
        if s is None:
            s = self._slots[key] = Slot(module, kind, check, tensor, **kw)
        return s

    def _new_event(self, slot: Slot, blame: str, reason: str) -> tuple:
        """An event is what the buffer hands back when its check failed:
        (slot, step, call, seq, blame, reason)."""
        self._seq += 1
        self._checks += 1
        return (slot, self._step, self._call, self._seq, blame, reason)

    def _grad_event(self, slot: Slot, step: int, call: int, blame: str, reason: str) -> tuple:
        self._grad_seq += 1
        self._checks += 1
        return (slot, step, call, self._grad_seq, blame, reason)

    def _compiled_flag(self, slot: Slot, bad: torch.Tensor, blame: str, reason: str) -> None:
        """Under torch.compile: OR the verdict into the preallocated per-slot
        flag buffer (the slot index is a trace-time constant)."""
        idx = self._slot_index.get(slot)
        if idx is None:
            idx = len(self._slot_meta)
            if idx >= SLOT_CAPACITY:
                return
            self._slot_index[slot] = idx
            self._slot_meta.append((slot, blame, reason))
        flags = self._slot_flags
        flags[idx] = flags[idx] | bad.to(flags.device)

    def _check_range(self, slot: Slot, t: torch.Tensor, blame: str, reason: str) -> None:
        if _is_compiling():
            if checkable(t):
                self._compiled_flag(slot, range_violated(t, slot.lo, slot.hi, slot.finite), blame, reason)
            return
        if self._replaying is not None:
            if checkable(t):
                self._seq += 1
                self._replay_evidence(slot, t)
            return
        if not self.buffer.add_range(t, self._new_event(slot, blame, reason), slot.lo, slot.hi, slot.finite):
            self._checks -= 1
            self._seq -= 1

    def _check_ok(self, slot: Slot, ok: torch.Tensor | bool, blame: str, reason: str) -> None:
        if _is_compiling():
            if isinstance(ok, torch.Tensor):
                self._compiled_flag(slot, ~ok.reshape(()).to(torch.bool), blame, reason)
            return
        if self._replaying is not None:  # the checker collects condition evidence itself
            self._seq += 1
            return
        self.buffer.add_ok(ok, self._new_event(slot, blame, reason))

    def _host_violation(self, slot: Slot, blame: str, reason: str, message: str, evidence: dict | None = None) -> None:
        """A violation known on the host at once (metadata, a contract that raised)."""
        if self._replaying is not None or _is_compiling():
            self._seq += 1
            return
        self._seq += 1
        self._checks += 1
        self._add_violation(slot, self._step, self._call, self._seq, blame, reason, message, evidence or {})
        if self._leaf_mods and self._diagnosing is None and slot.phase == "forward":
            self._to_diagnose.add((self._step, self._call))

    def _host_ok(self) -> None:
        """A host-side check that passed (counts, keeps seq aligned with replay)."""
        if _is_compiling():
            return
        self._seq += 1
        if self._replaying is None:
            self._checks += 1

    def _add_violation(self, slot, step, call, seq, blame, reason, message="", evidence=None) -> None:
        if len(self._violations) >= self.max_violations:
            if len(self._violations) == self.max_violations:
                self._notes.append(f"stopped recording after {self.max_violations} violations")
            return
        self._violated_calls.add((step, call))
        self._violations.append(
            RuntimeViolation(
                step=step, call=call, seq=seq, module=slot.module, kind=slot.kind, check=slot.check,
                tensor=slot.tensor, blame=blame, blame_reason=reason, declared_at=slot.declared_at,
                message=message, evidence=dict(evidence or {}), rank=_rank(), phase=slot.phase,
            )
        )

    def _replay_evidence(self, slot: Slot, t: torch.Tensor) -> None:
        if slot.lo is None and slot.hi is None:
            ev = V.finite_evidence(t)
        else:
            ev = V.range_evidence(t, slot.lo, slot.hi)
            if slot.finite and t.is_floating_point():
                fin = V.finite_evidence(t)
                if fin.get("failing"):
                    ev = fin
        ev["value"] = summarize(t)
        ev["histogram"] = value_histogram(t, slot.lo, slot.hi)
        self._replaying.setdefault(self._seq, (slot, ev))

    # ----------------------------------------------------------------- hooks
    def _producer_of(self, t: torch.Tensor) -> tuple[str, bool] | None:
        entry = self._producers.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1], entry[2]
        return None

    def _inputs_flow(self, path: str, args: Any, kwargs: Any, propagates: bool = False,
                     held: list | None = None) -> tuple[bool, torch.dtype | None]:
        """Add dataflow edges from the producers of the inputs; return whether
        every input tensor came from a checked producer, and the first floating dtype.

        Inputs whose check is pending: a propagating consumer puts their ids
        in ``held`` (its own output check may cover them); any other consumer
        (``held`` given) runs their check now."""
        edges = self._edges_now
        all_checked = True
        in_dtype = None
        items = _flat_tensors(args)
        if kwargs:
            items = items + _flat_tensors(kwargs)
        producers = self._producers
        pending = self._pending
        for t in items:
            key = id(t)
            entry = producers.get(key)
            if entry is not None and entry[0]() is t:
                if entry[1] != path:
                    edges.add((entry[1], path))
                checked = entry[2]
                if held is not None:
                    if not checked and key in pending:
                        if propagates:
                            held.append(key)
                        else:
                            self._run_check(*pending.pop(key), uncovered=True)
                            producers[key] = (entry[0], entry[1], True)
                            checked = True
                    elif propagates:
                        self._coverable.add(entry[1])
                all_checked = all_checked and checked
            else:
                # computed by code in the enclosing container's forward (e.g.
                # `out + shortcut(x)`): it may depend on anything that container
                # has seen, which the child -> container edges already capture
                all_checked = False
                if self._stack:
                    edges.add((self._stack[-1], path))
            if in_dtype is None and t.is_floating_point():
                in_dtype = t.dtype
        return all_checked, in_dtype

    def _make_pre(self, path: str, mod: nn.Module):
        is_root = mod is self.model
        defaults = path in self._default_paths
        in_slots: dict[str, Slot] = {}

        def pre_hook(module, args, kwargs):
            compiling = _is_compiling()
            if is_root and self._lean and not compiling and self._replaying is None and self._diagnosing is None:
                # on_violation between failures, nothing else hooked: keep the call for a re-run
                self._call += 1
                self._calls_total += 1
                self._seq = 0
                self._keep_call(args, kwargs)
                return None
            if is_root and not compiling:
                self._start_call(args, kwargs)
            if not compiling:
                self._inputs_flow(path, args, kwargs)
            self._stack.append(path)
            # on_violation's steady state checks the model's outputs only: the
            # inputs are checked in the first call and when a call is re-run
            if is_root and defaults and not self._steady:
                for name, t in _flat(args, "inputs"):
                    if t.is_floating_point():
                        slot = in_slots.get(name)
                        if slot is None:
                            slot = in_slots[name] = self._slot(path, "precondition", "finite(input)", name)
                        self._check_range(slot, t, INPUT_DATA, "the model's inputs broke its precondition")
            return None

        return pre_hook

    def _make_post(self, path: str, mod: nn.Module, has_pre: bool):
        is_root = mod is self.model
        defaults = path in self._default_paths
        preserving = isinstance(mod, FINITE_PRESERVING)
        propagates = propagates_non_finite(mod)
        blame_self = path or "<model>"
        out_slots: dict[str, Slot] = {}

        def out_slot(name: str) -> Slot:
            slot = out_slots.get(name)
            if slot is None:
                slot = out_slots[name] = self._slot(path, "postcondition", "finite(output)", name)
            return slot

        def post_hook(module, args, kwargs, output):
            if has_pre and self._stack and self._stack[-1] == path:
                self._stack.pop()
            if is_root and output is None and sys.exc_info()[1] is not None:
                self._raised()  # the forward raised (this hook is always called)
                return None
            compiling = _is_compiling()
            if is_root and self._lean and not compiling and self._replaying is None and self._diagnosing is None:
                self._lean_end(args, output, out_slot)
                return None
            held: list | None = None if has_pre else []
            if compiling:  # traced: no dataflow, flags go to the per-slot buffer
                if defaults:
                    for name, t in _flat(output, "output"):
                        if t.is_floating_point():
                            self._check_range(out_slot(name), t, blame_self, "its inputs were finite")
                return None
            if has_pre:
                in_checked, in_dtype = False, None
                if defaults:
                    for t in _flat_tensors(args):
                        if t.is_floating_point():
                            in_dtype = t.dtype
                            break
            else:
                in_checked, in_dtype = self._inputs_flow(path, args, kwargs, propagates, held)
            producers = self._producers
            replaying = self._replaying is not None
            pending = self._pending
            defer = self.elide and not replaying and path in self._coverable
            new: dict = {}  # this call's pending checks (its outputs; pending tensors passed through)
            made_check = False  # this call checks its own output (now or pending)
            outputs = ((("output", output),) if type(output) is _Tensor else _flat(output, "output"))
            for name, t in outputs:
                key = id(t)
                entry = producers.get(key)
                passed_through = entry is not None and entry[0]() is t
                checked = passed_through and entry[2]
                if passed_through and key in pending:
                    new[key] = pending.pop(key)
                if defaults and t.is_floating_point():
                    if not passed_through and not (preserving and in_checked):
                        slot = out_slot(name)
                        if replaying:
                            self._check_range(slot, t, blame_self, "its inputs were finite")
                            checked = True
                        elif checkable(t):  # _check_range's eager path, inlined: this runs for every leaf
                            made_check = True
                            self._seq += 1
                            event = (slot, self._step, self._call, self._seq, blame_self, "its inputs were finite")
                            if defer:  # wait for the consumer: its check may cover this one
                                new[key] = (t, event)
                            else:
                                self._checks += 1
                                self.buffer.add_range(t, event)
                                checked = True
                    elif preserving and in_checked:
                        checked = True
                    if in_dtype is not None:
                        if t.dtype != in_dtype:
                            self._dtype_changed(path, name, t, in_dtype)
                        else:  # _host_ok, inlined
                            self._seq += 1
                            if not replaying:
                                self._checks += 1
                producers[key] = (weakref.ref(t), path, checked)
                if self.backward and t.requires_grad and not replaying:
                    self._watch_grad(path, t)
            if pending:
                # held inputs are covered by this call's own output check;
                # everything else that waited runs now
                covered = held and made_check
                for key, item in pending.items():
                    if not (covered and key in held):
                        self._run_check(*item, uncovered=True)
                pending.clear()
            if new:
                pending.update(new)
            if is_root:
                self._end_call()
            return None

        return post_hook

    def _dtype_changed(self, path: str, name: str, t: torch.Tensor, in_dtype: torch.dtype) -> None:
        self._host_violation(
            self._slot(path, "postcondition", "dtype stable", name), path or "<model>", "its preconditions held",
            f"output dtype {t.dtype} differs from input dtype {in_dtype}",
            {"expected": str(in_dtype).replace("torch.", ""), "actual": describe(t)},
        )

    # on_violation between failures, with no guarded module and no gradient
    # checks: the model's pre hook only keeps the call for a re-run, and its
    # post hook checks the outputs (no dataflow: a re-run records the edges)
    def _lean_end(self, args, output, out_slot: Callable[[str], Slot]) -> None:
        in_dtype = None
        for t in _flat_tensors(args):
            if t.is_floating_point():
                in_dtype = t.dtype
                break
        outputs = ((("output", output),) if type(output) is _Tensor else _flat(output, "output"))
        for name, t in outputs:
            if t.is_floating_point():
                self._seq += 1
                self._checks += 1
                event = (out_slot(name), self._step, self._call, self._seq, "<model>", "its inputs were finite")
                if not self.buffer.add_range(t, event):
                    self._checks -= 1
                if in_dtype is not None:
                    if t.dtype != in_dtype:
                        self._dtype_changed("", name, t, in_dtype)
                    else:
                        self._seq += 1
                        self._checks += 1
        if self.buffer.size > FLUSH_AT:
            self._collect(block=False)

    def _watch_grad(self, path: str, t: torch.Tensor) -> None:
        slot = self._slot(path, "gradient", "finite(grad)", "grad(output)", phase="backward")
        step, call = self._step, self._call

        def on_grad(g: torch.Tensor) -> None:
            # the consumers ran after this hook was set: read them now, in backward.
            # Edges into path's own children come from code inside its forward,
            # not from its output, so they are not consumers.
            edges = self.flow.edges.get((step, call), ())
            consumers = sorted({b for (a, b) in edges if a == path and not b.startswith(path + ".")})
            blame = ", ".join(consumers) if consumers else "the loss (computed outside the model)"
            reason = f"their backward produced a non-finite gradient for {path or '<model>'}'s output"
            self.buffer.add_range(g, self._grad_event(slot, step, call, blame, reason))

        t.register_hook(on_grad)

    # ------------------------------------------------------------ call/step
    def _start_call(self, args, kwargs) -> None:
        if self._replaying is not None or self._diagnosing is not None:
            if self._diagnosing is not None:  # a re-run: its checks and edges replace the call's own
                self._step, self._call = self._diagnosing
                self._edges_now = self.flow.edges[self._diagnosing]
                self._edges_now.clear()
            else:  # a replay for evidence: its edges are the call's, already recorded
                self._edges_now = set()
            self._seq = 0
            self._steady = False
            self._stack.clear()
            self._producers.clear()
            for t in _flat_tensors((args, kwargs)):
                self._producers[id(t)] = (weakref.ref(t), INPUT_DATA, "" in self._default_paths)
            return
        self._flush_pending()  # left by a forward that raised
        self._call += 1
        self._calls_total += 1
        if self._leaf_mods and self._calls_total == 1:
            # on_violation checks every leaf in the first call (and learns the
            # module graph); hooks added here already run in this call
            self._install(self._leaf_mods, self._first_call)
        self._steady = bool(self._leaf_mods) and not self._first_call
        self._seq = 0
        self._stack.clear()
        self._producers.clear()
        if self.replay:
            self._keep_call(args, kwargs)
        self._edges_now = self.flow.edges[(self._step, self._call)]
        checked = "" in self._default_paths and not self._steady
        items = _flat_tensors(args)
        if kwargs:
            items = items + _flat_tensors(kwargs)
        for t in items:
            self._producers[id(t)] = (weakref.ref(t), INPUT_DATA, checked)

    def _keep_call(self, args, kwargs) -> None:
        """Keep the call's inputs and RNG state for a replay or re-run."""
        cuda_rng = torch.cuda.get_rng_state_all() if _CUDA and torch.cuda.is_initialized() else None
        self._inputs[(self._step, self._call)] = (args, dict(kwargs), torch.get_rng_state(), cuda_rng)

    def _run_check(self, t: torch.Tensor, event: tuple, uncovered: bool = False) -> None:
        """Record a default output check whose event was made (and its seq
        taken) when the tensor was produced. ``uncovered``: it waited for a
        consumer that did not cover it, so its module's next checks run at once."""
        self._checks += 1
        self.buffer.add_range(t, event)
        if uncovered:
            self._coverable.discard(event[0].module)

    def _flush_pending(self) -> None:
        """Run the output checks still waiting for a consumer."""
        if self._pending:
            for item in self._pending.values():
                self._run_check(*item, uncovered=True)
            self._pending.clear()

    def _end_call(self) -> None:
        """End of a root forward: checks stay pending until step()/report();
        past FLUSH_AT pending checks they are flushed and read (nothing waits)."""
        if self._first_call and self._diagnosing is None and self._replaying is None:
            self._end_first_call()
        self._flush_pending()
        if self._replaying is None and self._diagnosing is None and self.buffer.size > FLUSH_AT:
            self._collect(block=False)

    def _raised(self) -> None:
        """The model's forward raised: run the checks it left; on_violation
        re-runs the call with every leaf checked at the next read."""
        self._stack.clear()
        if self._replaying is None and self._diagnosing is None and not _is_compiling():
            self._end_first_call()
            self._flush_pending()
            if self._leaf_mods:
                self._to_diagnose.add((self._step, self._call))

    def _check_params(self) -> None:
        """Gradient contracts on parameters, one foreach reduction per step."""
        lo, hi = self.grad_norm if self.grad_norm else (None, None)
        check = f"grad_norm in [{lo}, {hi}]" if self.grad_norm else "finite(grad)"
        for mod, path in self._paths.items():
            grads = [(n, p.grad) for n, p in mod.named_parameters(recurse=False) if p.grad is not None]
            if not grads:
                continue
            norms = torch._foreach_norm([g for _, g in grads])
            for (name, _), norm in zip(grads, norms):
                slot = self._slot(path, "gradient", check, f"{name}.grad", lo=lo, hi=hi, phase="step")
                event = self._grad_event(slot, self._step, self._call, path or "<model>",
                                         "its parameter gradient left the bound")
                self.buffer.add_range(norm, event, lo, hi, True)

    def step(self) -> None:
        """Mark a step boundary: flush this step's checks, read those that have
        arrived (on CPU: all), and in mode="raise" raise on a violation."""
        if self.backward:
            self._check_params()
        self._collect(block=False)
        if self.sync_every and (self._step + 1) % self.sync_every == 0 and D.active(self.group):
            self._exchange()
        self._step += 1
        self._call = -1
        self._producers.clear()
        # the calls of the step that leaves the window now: their edges stay
        # in the report's graph (and in the flow, for calls with violations)
        old = self._step - 3
        for key, edges in self.flow.edges.items():
            if key[0] == old:
                self._graph_edges.update(edges)
        self.flow.forget_before(self._step - 2, keep=self._violated_calls)
        inputs = self._inputs
        if inputs and next(iter(inputs))[0] < self._step - 2:  # kept in call order
            for key in [k for k in inputs if k[0] < self._step - 2]:
                del inputs[key]
        if self._diagnosed:
            self._diagnosed = {k for k in self._diagnosed if k[0] >= self._step - 2}
        if self.mode == "raise":
            self._raise_if_violations()

    def _exchange(self) -> None:
        """One all_reduce of per-rank violation counts; records are gathered
        only when some rank has new ones."""
        new = self._violations[self._shared:]
        counts = D.exchange_counts(len(new), self.group, self.timeout)
        self._world_size = len(counts)
        if any(counts):
            me = torch.distributed.get_rank(self.group)
            for r, records in enumerate(D.gather(new if counts[me] else [], self.group)):
                if r != me:
                    self._remote.extend(records)
        self._shared = len(self._violations)

    def _flush_compiled(self) -> None:
        """Turn the per-slot flags written by compiled code into events."""
        n = len(self._slot_meta)
        if not n or self._slot_flags is None:
            return
        events = [(slot, self._step, -1, idx, blame, reason) for idx, (slot, blame, reason) in enumerate(self._slot_meta)]
        held = ~self._slot_flags[:n]
        self._slot_flags[:n].zero_()
        self.buffer.push(held, events)

    def _collect(self, block: bool) -> None:
        buf = self.buffer
        if not (buf.size or buf.pending or buf.has_ready or self._pending or self._slot_meta or self._to_diagnose):
            return  # nothing recorded, nothing in flight (CPU between failures: sums were read at once)
        self._flush_pending()
        self._flush_compiled()
        self.buffer.flush()
        bad = self.buffer.poll(block=block)
        evidence_by_call: dict = {}
        if self._leaf_mods and (bad or self._to_diagnose):
            bad = self._diagnose(bad, evidence_by_call)
        if not bad:
            return
        # checks that arrived clean are dropped; violated ones become records
        bad.sort(key=_event_order)
        for key in sorted({(step, call) for (_, step, call, *_rest) in bad}):
            if key not in evidence_by_call and self.replay and key[1] >= 0 and key in self._inputs:
                evidence_by_call[key] = self._replay_call(key)
        for slot, step, call, seq, blame, reason in self._elided_roots(bad, evidence_by_call):
            ev = {}
            rep = evidence_by_call.get((step, call))
            if rep is not None and slot.phase == "forward":
                found = rep.get(seq)
                if found is not None and found[0] == slot:
                    ev = found[1]
                else:
                    ev = {"replay": "not reproduced (weights or inputs changed since the step)"}
            self._add_violation(slot, step, call, seq, blame, reason, "", ev)

    def _diagnose(self, bad: list, evidence_by_call: dict) -> list:
        """on_violation: re-run every call that broke a forward check or
        raised, with every leaf hooked. The re-run's violations replace the
        call's run-time forward events (it checks everything those checked,
        and every leaf), and its replay gives their evidence. A call the
        re-run does not reproduce keeps its own events."""
        keys = {(step, call) for (slot, step, call, *_rest) in bad if slot.phase == "forward"} | self._to_diagnose
        self._to_diagnose = set()
        if any(call < 0 for _, call in keys):
            note = ("a check in code compiled by torch.compile failed: compiled calls cannot be re-run, so "
                    "leaf_checks='on_violation' reports the model's output, not the leaf that produced the value; "
                    "use leaf_checks='every_call' to check every leaf in compiled code")
            if note not in self._notes:
                self._notes.append(note)
        # the first call checked every leaf already, but its evidence replay
        # needs the leaves hooked too: it is re-run like the others
        keys = sorted(k for k in keys if k[1] >= 0 and k in self._inputs)
        if not keys:
            return bad
        with self._leaf_hooks():
            for key in keys:
                if key in self._diagnosed:  # flags that arrived late for a call already re-run
                    bad = [e for e in bad if (e[1], e[2]) != key or e[0].phase != "forward"]
                    continue
                found = self._rerun(key)
                if found is None:
                    evidence_by_call[key] = {}  # not reproduced: the events keep a note saying so
                    continue
                self._diagnosed.add(key)
                bad = [e for e in bad if (e[1], e[2]) != key or e[0].phase != "forward"] + found
                if found:
                    evidence_by_call[key] = self._replay_call(key)
        return bad

    def _rerun(self, key: tuple[int, int]) -> list | None:
        """Run call ``key`` again with every leaf checked and read its flags at
        once. Returns the failed checks' events (host-side violations are
        recorded directly), or None when the re-run found no violation."""
        saved = (self.buffer, self._step, self._call, self._seq, self._checks, self.elide, self._edges_now,
                 set(self._coverable), self._violations)
        # the re-run records this call's host-side violations again
        def redone(v: RuntimeViolation) -> bool:
            return (v.step, v.call) == key and v.phase == "forward"
        shared = self._shared
        self._shared -= sum(map(redone, self._violations[:shared]))  # keep the exchange's index on the same records
        self._violations = [v for v in self._violations if not redone(v)]
        kept = len(self._violations)
        self.buffer = FlagBuffer()
        self.elide = False
        self._diagnosing = key
        try:
            self._run_again(key)
            self._flush_pending()
            self.buffer.flush()
            found = self.buffer.poll(block=True)
        finally:
            self._diagnosing = None
            self._stack.clear()
            self._producers.clear()
            self._pending.clear()
            (self.buffer, self._step, self._call, self._seq, self._checks, self.elide, self._edges_now,
             self._coverable, old) = saved
        if not found and len(self._violations) == kept:
            self._violations, self._shared = old, shared
            return None
        return found

    def _elided_roots(self, bad: list, evidence_by_call: dict) -> list:
        """The flagged events, plus the default output checks that the replay
        found failing before the first flagged check of their call: checks
        that were elided at run time because a downstream check covered them
        (that downstream module's violation follows from them)."""
        first: dict[tuple[int, int], int] = {}
        for slot, step, call, seq, *_ in bad:
            if slot.phase == "forward":
                first.setdefault((step, call), seq)
        found: list = []
        if not self.elide:
            return bad
        for key, rep in evidence_by_call.items():
            for seq, (slot, ev) in rep.items():
                if (seq < first.get(key, 0) and slot.check == "finite(output)" and slot.kind == "postcondition"
                        and ev.get("failing")):
                    ev.setdefault("found", "by the replay: the run-time check was elided, since the check "
                                           "of the module that consumed this output covers it")
                    found.append((slot, key[0], key[1], seq, slot.module or "<model>", "its inputs were finite"))
        return sorted(bad + found, key=_event_order) if found else bad

    def _replay_call(self, key: tuple[int, int]) -> dict:
        """Replay one root call for evidence: every check computes its
        evidence at once, keyed by its seq (the hooks are the run's)."""
        self._replaying = {}
        saved_seq, saved_edges = self._seq, self._edges_now
        try:
            # a re-run (on_violation) already noted the call's exception
            self._run_again(key, note=key not in self._diagnosed)
            return self._replaying
        finally:
            self._replaying = None
            self._seq, self._edges_now = saved_seq, saved_edges

    def _run_again(self, key: tuple[int, int], note: bool = True) -> None:
        """Run one root call again from its kept inputs, synchronously (no
        grad; the RNG state of the call; RNG and buffers restored after)."""
        args, kwargs, rng, cuda_rng = self._inputs[key]
        saved_rng = torch.get_rng_state()
        saved_cuda_rng = torch.cuda.get_rng_state_all() if cuda_rng is not None else None
        saved_buffers = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        try:
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            with torch.no_grad():
                try:
                    self.model(*args, **kwargs)
                except Exception as e:  # a run that fails still leaves the flags' facts
                    if note:
                        self._notes.append(f"replay of step {key[0]} call {key[1]} raised {type(e).__name__}: {e}")
        finally:
            torch.set_rng_state(saved_rng)
            if saved_cuda_rng is not None:
                torch.cuda.set_rng_state_all(saved_cuda_rng)
            with torch.no_grad():
                for n, b in self.model.named_buffers():
                    if n in saved_buffers:
                        b.copy_(saved_buffers[n])

    # ---------------------------------------------------------------- report
    def report(self) -> DiagnosisReport:
        """Read every outstanding flag (waits for in-flight copies) and return
        the diagnosis: root causes, consequences, per-module counts."""
        self._collect(block=True)
        merged = D.merge_ranks(self._violations + self._remote)
        flow = self.flow
        if self._learned:  # on_violation: calls not re-run here know the leaves' edges from the first call
            flow = Dataflow()
            for v in merged:
                key = (v.step, v.call)
                flow.edges[key] = self.flow.edges.get(key, set()) | self._learned
        ordered = assign_roots(merged, flow)
        records = []
        for v in ordered:
            hist = v.evidence.get("histogram")
            evidence = {k: x for k, x in v.evidence.items() if k != "histogram"}
            records.append(ViolationRecord(
                step=v.step, call=v.call, seq=v.seq, phase=v.phase, module=v.module, kind=v.kind, check=v.check,
                tensor=v.tensor, blame=v.blame, blame_reason=v.blame_reason, declared_at=v.declared_at,
                message=v.message, evidence=_jsonable(evidence), rank=v.rank, ranks=list(v.ranks), root=v.root,
                caused_by=v.caused_by, histogram=Histogram(**hist) if isinstance(hist, dict) else None,
            ))
        return DiagnosisReport(
            model=type(self.model).__name__,
            steps=self._step + (1 if self._call >= 0 else 0),
            calls=self._calls_total,
            checks=self._checks,
            modules_monitored=sorted(p or "<model>" for p in self._paths.values()),
            world_size=self._world_size,
            violations=records,
            notes=list(self._notes),
            module_types={p or "<model>": type(m).__name__ for m, p in self._paths.items()},
            edges=self._report_edges(),
            contracts=self._contracts(),
        )

    def _report_edges(self) -> list[tuple[str, str]]:
        edges = set(self._graph_edges)
        for e in self.flow.edges.values():
            edges.update(e)
        return sorted({(a or "<model>", b or "<model>") for a, b in edges if a != b})

    def _contracts(self) -> list:
        """Each monitored module's contracts as written, and the defaults added."""
        out = []
        for mod, path in self._paths.items():
            defaults = []
            if path in self._default_paths:
                if mod is self.model:
                    defaults.append("finite(input)")
                defaults += ["finite(output)", "dtype stable"]
            if self.backward:
                defaults.append("finite(grad)")
                if self.grad_norm:
                    lo, hi = self.grad_norm
                    defaults.append(f"grad_norm in [{lo}, {hi}]")
            guard = self._guarded.get(path)
            if guard is None and not defaults:
                continue
            out.append(module_contracts(path, mod, guard, defaults))
        return out

    @property
    def violations(self) -> list[RuntimeViolation]:
        return list(self._violations)

    def _raise_if_violations(self) -> None:
        if not self._violations and not self._remote:
            return
        rep = self.report()
        root = rep.root_cause
        assert root is not None
        err = MonitorViolation(
            rep.headline(),
            module=root.where,
            blame=root.blame,
            blame_reason=root.blame_reason,
            contract=root.check,
            evidence={k: v for k, v in root.evidence.items()},
            declared_at=root.declared_at,
        )
        err.report = rep
        self._violations.clear()
        self._remote.clear()
        self._shared = 0
        raise err


_PHASE_ORDER = {"forward": 0, "backward": 1, "step": 2}


def _event_order(event: tuple) -> tuple:
    slot, step, call, seq = event[:4]
    return (step, _PHASE_ORDER[slot.phase], call, seq)


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            out[k] = str(v)
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (tuple, list)):
            out[k] = [x if isinstance(x, (str, int, float, bool)) else str(x) for x in v]
        else:
            out[k] = str(v)
    return out
