"""Recording: where every check of a monitored run goes.

``Recorder`` owns what checks leave behind: the slots (one per module,
check and tensor), the device flag buffer of the current call, the per-slot
flags that code compiled by torch.compile writes, the violation records and
the count of checks. Each check is recorded against the ``CallState`` of
the call it belongs to, and the call's phase decides how:

* a normal call: value checks become events in the flag buffer (no host
  read); metadata checks and contracts that raised become records at once;
* a replay (``Phase.REPLAY``): every check computes its evidence now,
  keyed by its ``seq``;
* code traced by torch.compile: the verdict is ORed into a preallocated
  per-slot flag (the slot index is a trace-time constant).

``Recording`` is the small public seam through which the contracts'
checker (``runtime/checker.py``) writes while a Monitor runs, instead of
reaching into the Monitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from modpact.interfaces import values as V
from modpact.interfaces.summary import summarize
from modpact.runtime._buffer import FlagBuffer, checkable, range_violated
from modpact.runtime.histogram import value_histogram
from modpact.runtime.records import Histogram, ViolationRecord, jsonable_evidence
from modpact.runtime.state import CallKey, CallState, Phase, Slot

if TYPE_CHECKING:
    from modpact.contracts import Guard

__all__ = ["Recorder", "Recording", "SLOT_CAPACITY"]

_is_compiling = torch.compiler.is_compiling
SLOT_CAPACITY = 4096  # per-slot flags for compiled code


def _rank() -> int | None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return None


class Recorder:
    """Slots, flags, records and counts of one Monitor (see the module docstring)."""

    def __init__(self, max_violations: int) -> None:
        self.max_violations = max_violations
        self.buffer = FlagBuffer()  # the flags of normal calls
        self.slots: dict[tuple, Slot] = {}
        self.records: list[ViolationRecord] = []
        self.sent = 0  # records already sent to the other ranks (torch.distributed)
        self.notes: list[str] = []
        self.checks = 0
        self.grad_seq = 0  # execution order of gradient checks (backward and step phases)
        self.violated_calls: set[CallKey] = set()  # their dataflow is kept for root assignment
        self.host_failed: set[CallKey] = set()  # calls whose forward broke a host-side check
        # torch.compile: verdicts ORed into one flag per slot
        self.slot_flags: torch.Tensor | None = None
        self.slot_index: dict[Slot, int] = {}
        self.slot_meta: list[tuple[Slot, str, str]] = []

    def allocate(self, device: torch.device) -> None:
        """The per-slot flags that compiled code writes, on the model's device."""
        self.slot_flags = torch.zeros(SLOT_CAPACITY, dtype=torch.bool, device=device)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- slots -------------------------------------------------------------
    def slot(self, module: str, kind: str, check: str, tensor: str, **kw: Any) -> Slot:
        key = (module, kind, check, tensor, tuple(sorted(kw.items())))
        s = self.slots.get(key)
        if s is None:
            s = self.slots[key] = Slot(module, kind, check, tensor, **kw)
        return s

    # -- checks --------------------------------------------------------------
    def event(self, state: CallState, slot: Slot, blame: str, reason: str) -> tuple:
        """A new pending check of ``state``'s call (takes the next seq)."""
        state.seq += 1
        if state.counted:
            self.checks += 1
        return (slot, state.step, state.call, state.seq, blame, reason)

    def grad_event(self, slot: Slot, step: int, call: int, blame: str, reason: str) -> tuple:
        self.grad_seq += 1
        self.checks += 1
        return (slot, step, call, self.grad_seq, blame, reason)

    def range(self, state: CallState, slot: Slot, t: torch.Tensor, blame: str, reason: str) -> None:
        """``t`` must lie in the slot's bounds (and be finite)."""
        if _is_compiling():
            if checkable(t):
                self._compiled_flag(slot, range_violated(t, slot.lo, slot.hi, slot.finite), blame, reason)
            return
        if not checkable(t):
            return
        if state.phase is Phase.REPLAY:
            state.seq += 1
            self._replay_evidence(state, slot, t)
            return
        state.buffer.add_range(t, self.event(state, slot, blame, reason), slot.lo, slot.hi, slot.finite)

    def ok(self, state: CallState, slot: Slot, ok: torch.Tensor | bool, blame: str, reason: str) -> None:
        """A condition's own verdict (a 0-dim bool tensor, or a bool)."""
        if _is_compiling():
            if isinstance(ok, torch.Tensor):
                self._compiled_flag(slot, ~ok.reshape(()).to(torch.bool), blame, reason)
            return
        if state.phase is Phase.REPLAY:  # the checker collects condition evidence itself
            state.seq += 1
            return
        state.buffer.add_ok(ok, self.event(state, slot, blame, reason))

    def host_violation(self, state: CallState, slot: Slot, blame: str, reason: str, message: str,
                       evidence: dict | None = None) -> None:
        """A violation known on the host at once (metadata, a contract that raised)."""
        state.seq += 1
        if state.phase is Phase.REPLAY or _is_compiling():
            return
        if state.counted:
            self.checks += 1
        record = self.record(slot, state.step, state.call, state.seq, blame, reason, message, evidence or {})
        if state.found is not None:
            state.found.append(record)
        else:
            self.add(record)
        if slot.phase == "forward":
            state.host_failed = True
            if state.counted:
                self.host_failed.add(state.key)

    def host_ok(self, state: CallState) -> None:
        """A host-side check that passed (counted; keeps seq aligned with a replay)."""
        if _is_compiling():
            return
        state.seq += 1
        if state.counted:
            self.checks += 1

    def _compiled_flag(self, slot: Slot, bad: torch.Tensor, blame: str, reason: str) -> None:
        idx = self.slot_index.get(slot)
        if idx is None:
            idx = len(self.slot_meta)
            if idx >= SLOT_CAPACITY:
                return
            self.slot_index[slot] = idx
            self.slot_meta.append((slot, blame, reason))
        flags = self.slot_flags
        assert flags is not None
        flags[idx] = flags[idx] | bad.to(flags.device)

    def flush_compiled(self, step: int) -> None:
        """Turn the per-slot flags written by compiled code into events of the buffer."""
        n = len(self.slot_meta)
        if not n or self.slot_flags is None:
            return
        events = [(slot, step, -1, idx, blame, reason) for idx, (slot, blame, reason) in enumerate(self.slot_meta)]
        held = ~self.slot_flags[:n]
        self.slot_flags[:n].zero_()
        self.buffer.push(held, events)

    def _replay_evidence(self, state: CallState, slot: Slot, t: torch.Tensor) -> None:
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
        self.evidence(state, slot, ev)

    @staticmethod
    def evidence(state: CallState, slot: Slot, ev: dict) -> None:
        """REPLAY: the evidence of the check numbered ``state.seq``."""
        assert state.evidence is not None
        state.evidence.setdefault(state.seq, (slot, ev))

    # -- records ---------------------------------------------------------------
    @staticmethod
    def record(slot: Slot, step: int, call: int, seq: int, blame: str, reason: str, message: str = "",
               evidence: dict | None = None) -> ViolationRecord:
        """The one violation model (evidence made JSON-able, the histogram apart)."""
        ev = dict(evidence or {})
        hist = ev.pop("histogram", None)
        return ViolationRecord(
            step=step, call=call, seq=seq, phase=slot.phase, module=slot.module, kind=slot.kind,
            check=slot.check, tensor=slot.tensor, blame=blame, blame_reason=reason,
            declared_at=slot.declared_at, message=message, evidence=jsonable_evidence(ev), rank=_rank(),
            histogram=Histogram(**hist) if isinstance(hist, dict) else None,
        )

    def add(self, record: ViolationRecord) -> None:
        """Keep a record (up to ``max_violations``)."""
        if len(self.records) >= self.max_violations:
            if len(self.records) == self.max_violations:
                self.notes.append(f"stopped recording after {self.max_violations} violations")
            return
        self.violated_calls.add((record.step, record.call))
        self.records.append(record)


    def replace_forward(self, key: CallKey, found: list[ViolationRecord]) -> None:
        """A re-run of call ``key`` checked everything the call checked: its
        host-side forward violations replace the call's own."""
        def redone(v: ViolationRecord) -> bool:
            return (v.step, v.call) == key and v.phase == "forward"

        self.sent -= sum(map(redone, self.records[:self.sent]))  # the exchange's index stays on the same records
        self.records = [v for v in self.records if not redone(v)]
        for record in found:
            self.add(record)


class Recording:
    """The seam a contracts checker writes through while a Monitor runs.

    ``path_of(guard)`` is the monitored path of the guarded module now
    running (None: the guard is not this Monitor's module, or it runs
    outside the model's forward); ``producer_of(t)`` who produced an input
    tensor in this call (a module path or ``INPUT_DATA``); ``replaying``
    whether checks compute their evidence now (then ``evidence`` takes it);
    otherwise ``range``, ``ok``, ``violation`` and ``passed`` record a check.
    """

    def __init__(self, recorder: Recorder, current: Any, guarded: dict[str, Any]) -> None:
        self._recorder = recorder
        self._current = current  # () -> the CallState of the call now running
        self._guarded = guarded

    def path_of(self, guard: Guard) -> str | None:
        stack = self._current().stack
        if stack and self._guarded.get(stack[-1]) is guard:
            return stack[-1]
        return None

    def producer_of(self, t: torch.Tensor) -> str | None:
        found = self._current().producer_of(t)
        return None if found is None else found[0]

    def slot(self, module: str, kind: str, check: str, tensor: str, **kw: Any) -> Slot:
        return self._recorder.slot(module, kind, check, tensor, **kw)

    @property
    def replaying(self) -> bool:
        return self._current().phase is Phase.REPLAY

    def evidence(self, slot: Slot, ev: dict) -> None:
        state = self._current()
        state.seq += 1
        self._recorder.evidence(state, slot, ev)

    def range(self, slot: Slot, t: torch.Tensor, blame: str, reason: str) -> None:
        self._recorder.range(self._current(), slot, t, blame, reason)

    def ok(self, slot: Slot, ok: torch.Tensor | bool, blame: str, reason: str) -> None:
        self._recorder.ok(self._current(), slot, ok, blame, reason)

    def violation(self, slot: Slot, blame: str, reason: str, message: str, evidence: dict | None = None) -> None:
        self._recorder.host_violation(self._current(), slot, blame, reason, message, evidence)

    def passed(self) -> None:
        self._recorder.host_ok(self._current())
