"""Recording: where every check of a monitored run goes.

``Recorder`` owns what checks leave behind: the slots (one per module,
check and tensor), the device flag buffer of the current call, the per-slot
flags that code compiled by torch.compile writes, the violation records and
the count of checks. Each check is recorded against the ``CallState`` of
the call it belongs to, and the call's phase decides how:

* a normal call: value checks become events in the flag buffer (no host
  read); metadata checks and contracts that raised become records at once;
* the re-run of a failing call (``Phase.DIAGNOSE``): every check is
  evaluated now, and a failed one becomes a record with its evidence; a
  non-finite value is traced back to where it began (``provenance.py``),
  and the record says only what the re-run checked;
* code traced by torch.compile: the verdict is ORed into a preallocated
  flag per check site (the index is a trace-time constant).

``Recording`` is the small public seam through which the contracts'
checker (``runtime/checker.py``) writes while a Monitor runs, instead of
reaching into the Monitor.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from modpact.runtime._buffer import FlagBuffer, checkable, range_violated
from modpact.runtime.blame import LOCATED_RERUN, LOCATED_RUN, blame_in_rerun, origin_evidence, range_evidence
from modpact.runtime.records import Histogram, ViolationRecord, jsonable_evidence
from modpact.runtime.state import CallKey, CallState, Phase, Slot

if TYPE_CHECKING:
    from modpact.contracts import Guard

__all__ = ["Lane", "Recorder", "Recording", "SLOT_CAPACITY", "quiet"]

_is_compiling = torch.compiler.is_compiling
SLOT_CAPACITY = 4096  # per-slot flags for compiled code


def _has_values(t: torch.Tensor) -> bool:
    """A tensor with numbers a check can read (complex, sparse and nested included)."""
    return t.dtype != torch.bool and not t.is_meta and t.numel() > 0


def quiet(state: CallState) -> Any:
    """While a call is re-run, the Monitor's own tensor work stays out of its provenance."""
    return state.tracer.paused() if state.tracer is not None else contextlib.nullcontext()


def _rank() -> int | None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return None


class Lane:
    """One thread's share of a Monitor: the flag buffer its checks write to,
    its count of checks, the call it runs (``state``), the state its lean
    calls reuse, the state its next root call must take (``forced``: the
    re-run of a kept call), and ``busy``, held from the start to the end of
    each root call it runs (so that no other thread reads its buffer while
    it writes, and no call runs while a kept one is re-run)."""

    __slots__ = ("buffer", "checks", "state", "lean", "forced", "busy", "thread")

    def __init__(self) -> None:
        self.buffer = FlagBuffer()
        self.checks = 0
        self.state: Any = None
        self.lean: Any = None
        self.forced: Any = None
        self.busy = threading.RLock()
        self.thread = threading.current_thread().name


class Recorder:
    """Slots, flags, records and counts of one Monitor (see the module docstring).

    Each thread that runs the model gets a ``Lane`` of its own; what lanes
    share (records, counts, notes) changes under ``lock``."""

    def __init__(self, max_violations: int) -> None:
        self.max_violations = max_violations
        self.lock = threading.Lock()
        self.lanes: list[Lane] = []
        self._local = threading.local()
        self.slots: dict[tuple, Slot] = {}
        self.records: list[ViolationRecord] = []
        self.counts: dict[tuple[str, str, str], int] = {}  # every violation, kept or not: (where, kind, check)
        self.sent = 0  # records already sent to the other ranks (torch.distributed)
        self.notes: list[str] = []
        self.grad_seq = 0  # execution order of gradient checks (backward and step phases)
        self.violated_calls: set[CallKey] = set()  # their dataflow is kept for root assignment
        self.host_failed: set[CallKey] = set()  # calls whose forward broke a host-side check
        # torch.compile: verdicts ORed into one flag per slot
        self.slot_flags: torch.Tensor | None = None
        self.slot_index: dict[tuple[Slot, int], int] = {}  # (slot, its call within the trace) -> flag index
        self.slot_meta: list[tuple[Slot, str, str]] = []
        self._calls_in_trace: dict[Slot, int] = {}

    def lane(self) -> Lane:
        """The calling thread's lane (made on its first use)."""
        try:
            return self._local.lane
        except AttributeError:
            lane = self._local.lane = Lane()
            with self.lock:
                self.lanes.append(lane)
            return lane

    @property
    def buffer(self) -> FlagBuffer:
        """The calling thread's flag buffer."""
        return self.lane().buffer

    @property
    def checks(self) -> int:
        """Checks run so far, in every thread."""
        return sum(lane.checks for lane in self.lanes)

    @property
    def total(self) -> int:
        """Violations found so far, kept as records or not."""
        return sum(self.counts.values())

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
            state.lane.checks += 1
        return (slot, state.step, state.call, state.seq, blame, reason)

    def grad_event(self, lane: Lane, slot: Slot, step: int, call: int, blame: str, reason: str) -> tuple:
        with self.lock:
            self.grad_seq += 1
            seq = self.grad_seq
        lane.checks += 1
        return (slot, step, call, seq, blame, reason)

    def range(self, state: CallState, slot: Slot, t: torch.Tensor, blame: str, reason: str) -> None:
        """``t`` must lie in the slot's bounds (and be finite)."""
        if _is_compiling():
            if checkable(t):
                self._compiled_flag(slot, range_violated(t, slot.lo, slot.hi, slot.finite), blame, reason)
            return
        if state.phase is Phase.DIAGNOSE:
            if not _has_values(t):
                return
            state.seq += 1
            with quiet(state):
                ev = range_evidence(slot, t)
                if ev.get("failing"):
                    self._found(state, slot, blame, reason, ev, t)
            return
        if not checkable(t) and not (t.is_complex() or t.is_nested or t.layout is not torch.strided):
            return
        state.buffer.add_range(t, self.event(state, slot, blame, reason), slot.lo, slot.hi, slot.finite)

    def within(
        self, state: CallState, slot: Slot, t: torch.Tensor, lo: float, hi: float, blame: str, reason: str
    ) -> None:
        """A condition given as a range check (``Condition.device_range``):
        every element of ``t`` in ``[lo, hi]``, NaN failing; one reduction
        into the flag buffer, as a range-style interface check."""
        if _is_compiling():
            self._compiled_flag(slot, range_violated(t, lo, hi, False), blame, reason)
            return
        if state.phase is Phase.DIAGNOSE:  # the checker evaluates conditions in full here; kept for other callers
            state.seq += 1
            if bool(range_violated(t, lo, hi, False)):
                self._found(state, slot, blame, reason, {})
            return
        state.buffer.add_range(t, self.event(state, slot, blame, reason), lo, hi, False)

    def ok(self, state: CallState, slot: Slot, ok: torch.Tensor | bool, blame: str, reason: str) -> None:
        """A condition's own verdict (a 0-dim bool tensor, or a bool)."""
        if _is_compiling():
            if isinstance(ok, torch.Tensor):
                self._compiled_flag(slot, ~ok.reshape(()).to(torch.bool), blame, reason)
            return
        if state.phase is Phase.DIAGNOSE:
            state.seq += 1
            if not bool(ok):
                self._found(state, slot, blame, reason, {})
            return
        state.buffer.add_ok(ok, self.event(state, slot, blame, reason))

    def host_violation(
        self, state: CallState, slot: Slot, blame: str, reason: str, message: str, evidence: dict | None = None
    ) -> None:
        """A violation known on the host at once (metadata, a contract that
        raised, a condition evaluated now)."""
        if _is_compiling():
            return
        state.seq += 1
        if state.counted:
            state.lane.checks += 1
        if state.phase is Phase.DIAGNOSE:
            with quiet(state):
                self._found(state, slot, blame, reason, evidence or {}, message=message)
            return
        self.add(self.record(slot, state.step, state.call, state.seq, blame, reason, message, evidence or {}))
        if slot.phase == "forward":
            state.host_failed = True
            if state.counted:
                self.host_failed.add(state.key)

    def _found(
        self,
        state: CallState,
        slot: Slot,
        blame: str,
        reason: str,
        ev: dict,
        t: torch.Tensor | None = None,
        message: str = "",
    ) -> None:
        """A violation the re-run found: where a non-finite value began
        decides whom it blames (``blame_in_rerun``)."""
        assert state.found is not None
        origin = state.tracer.origin_of(t) if state.tracer is not None and t is not None else None
        if t is not None and slot.finite and ev.get("nan", 0) + ev.get("inf", 0) > 0:
            blame, reason, cause = blame_in_rerun(slot, origin, blame, reason)
            if cause is not None and origin is not None and origin.record is None:
                origin.record = self.record(
                    cause[0],
                    state.step,
                    state.call,
                    origin.seq,
                    cause[1],
                    cause[2],
                    "",
                    origin_evidence(origin),
                    LOCATED_RERUN,
                    origin.id,
                )
                state.found.append(origin.record)
            if origin is not None:
                ev = {**ev, "began": origin.describe()}
        record = self.record(
            slot,
            state.step,
            state.call,
            state.seq,
            blame,
            reason,
            message,
            ev,
            LOCATED_RERUN,
            origin.id if origin is not None else None,
        )
        if origin is not None and origin.record is None and origin.blamed == slot.module:
            origin.record = record  # the value began in the module this check is on: it stands for the origin
        state.found.append(record)

    def host_ok(self, state: CallState) -> None:
        """A host-side check that passed (counted; keeps seq aligned with a replay)."""
        if _is_compiling():
            return
        state.seq += 1
        if state.counted:
            state.lane.checks += 1

    def trace_start(self) -> None:
        """torch.compile begins tracing the model's forward: count each
        module's calls afresh, so a module called twice gets two flags."""
        self._calls_in_trace = {}

    def _compiled_flag(self, slot: Slot, bad: torch.Tensor, blame: str, reason: str) -> None:
        """OR a verdict into the flag of this check site. Each call of a module
        within the traced forward is its own site (a ReLU reused in a block is
        told apart), allocated in trace order, so the first flag set is the
        first check in execution order."""
        n = self._calls_in_trace.get(slot, 0) + 1
        self._calls_in_trace[slot] = n
        site = (slot, n)
        idx = self.slot_index.get(site)
        if idx is None:
            idx = len(self.slot_meta)
            if idx >= SLOT_CAPACITY:
                return
            self.slot_index[site] = idx
            shown = (
                slot
                if n == 1
                else self.slot(
                    slot.module,
                    slot.kind,
                    slot.check,
                    f"{slot.tensor} (call {n})",
                    lo=slot.lo,
                    hi=slot.hi,
                    finite=slot.finite,
                    declared_at=slot.declared_at,
                    phase=slot.phase,
                )
            )
            self.slot_meta.append((shown, blame, reason))
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
        self.lane().buffer.push(held, events)

    # -- records ---------------------------------------------------------------
    @staticmethod
    def record(
        slot: Slot,
        step: int,
        call: int,
        seq: int,
        blame: str,
        reason: str,
        message: str = "",
        evidence: dict | None = None,
        located_by: str = LOCATED_RUN,
        origin: int | None = None,
    ) -> ViolationRecord:
        """The one violation model (evidence made JSON-able, the histogram apart)."""
        ev = dict(evidence or {})
        hist = ev.pop("histogram", None)
        return ViolationRecord(
            step=step,
            call=call,
            seq=seq,
            phase=slot.phase,
            module=slot.module,
            kind=slot.kind,
            check=slot.check,
            tensor=slot.tensor,
            blame=blame,
            blame_reason=reason,
            declared_at=slot.declared_at,
            message=message,
            evidence=jsonable_evidence(ev),
            rank=_rank(),
            histogram=Histogram(**hist) if isinstance(hist, dict) else None,
            located_by=located_by,
            origin=origin,
        )

    def add(self, record: ViolationRecord) -> None:
        """Count a violation, and keep its record up to ``max_violations``:
        past the cap it is still counted per module and contract."""
        key = (record.where, record.kind, record.check)
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if len(self.records) >= self.max_violations:
                self.note(
                    f"records were kept for the first {self.max_violations} violations "
                    "(max_violations); every later one is counted, not kept"
                )
                return
            self.violated_calls.add((record.step, record.call))
            self.records.append(record)

    def replace_forward(self, key: CallKey, found: list[ViolationRecord]) -> None:
        """A re-run of call ``key`` checked everything the call checked: its
        host-side forward violations replace the call's own."""

        def redone(v: ViolationRecord) -> bool:
            return (v.step, v.call) == key and v.phase == "forward"

        with self.lock:
            self.sent -= sum(map(redone, self.records[: self.sent]))  # the exchange's index stays on the same records
            for v in self.records:
                if redone(v):
                    where = (v.where, v.kind, v.check)
                    self.counts[where] -= 1
            self.records = [v for v in self.records if not redone(v)]
        for record in found:
            self.add(record)


class Recording:
    """The seam a contracts checker writes through while a Monitor runs.

    ``entered(guard)`` gives the monitored path of the guarded module now
    running (None: the guard is not this Monitor's module, or it runs
    outside the model's forward) and the context that keeps the checker's
    own tensor work out of a re-run's provenance (None when no re-run is
    tracing); ``producer_of(t)`` who produced an input
    tensor in this call (a module path or ``INPUT_DATA``); ``sync`` whether
    checks are evaluated now (the re-run of a failing call: the checker then
    reports each outcome with ``violation`` or ``passed``, with its evidence);
    otherwise ``range``, ``within`` and ``ok`` record device verdicts, and
    ``violation`` and ``passed`` host-side ones.
    """

    def __init__(self, recorder: Recorder, current: Callable[[], CallState], guarded: dict[str, Any]) -> None:
        self._recorder = recorder
        self._current = current  # () -> the state the calling thread's checks record into
        self._guarded = guarded

    def entered(self, guard: Guard) -> tuple[str | None, Any]:
        """``path_of(guard)``, and the ``quiet()`` context to check in: None
        when nothing needs quieting (no re-run is tracing values), so that
        the common call costs one lookup of the current call."""
        state = self._current()
        stack = state.stack
        path = stack[-1] if stack and self._guarded.get(stack[-1]) is guard else None
        return path, (None if state.tracer is None else state.tracer.paused())

    def producer_of(self, t: torch.Tensor) -> str | None:
        found = self._current().producer_of(t)
        return None if found is None else found[0]

    def slot(self, module: str, kind: str, check: str, tensor: str, **kw: Any) -> Slot:
        return self._recorder.slot(module, kind, check, tensor, **kw)

    @property
    def sync(self) -> bool:
        return self._current().phase is Phase.DIAGNOSE

    def range(self, slot: Slot, t: torch.Tensor, blame: str, reason: str) -> None:
        self._recorder.range(self._current(), slot, t, blame, reason)

    def ok(self, slot: Slot, ok: torch.Tensor | bool, blame: str, reason: str) -> None:
        self._recorder.ok(self._current(), slot, ok, blame, reason)

    def within(self, slot: Slot, t: torch.Tensor, lo: float, hi: float, blame: str, reason: str) -> None:
        self._recorder.within(self._current(), slot, t, lo, hi, blame, reason)

    def violation(self, slot: Slot, blame: str, reason: str, message: str, evidence: dict | None = None) -> None:
        self._recorder.host_violation(self._current(), slot, blame, reason, message, evidence)

    def passed(self) -> None:
        self._recorder.host_ok(self._current())
