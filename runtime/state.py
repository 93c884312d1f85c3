"""What a monitored run holds: the static description of a check, the phase a
call runs in, and the state of one root call.

A ``Slot`` is made once per (module, check, tensor) and reused by every call.
A pending check is an *event* ``(slot, step, call, seq, blame, reason)``: a
plain tuple on the hot path, handed back by the flag buffer when its check
failed (``Event`` names its fields for the code that reads them).

Each root call of the model runs with a ``CallState`` of its own; the re-run
of a failing call gets a fresh one, so nothing is saved and restored field by
field while it runs.
"""

from __future__ import annotations

import enum
import weakref
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from modpact.runtime._buffer import FlagBuffer
from modpact.runtime.records import PHASE_ORDER

__all__ = ["Phase", "Slot", "Event", "CallState", "KeptCall", "CallKey", "event_order"]

CallKey = tuple[int, int]  # (step, call index within the step)


class Phase(enum.Enum):
    """How a root call is checked."""

    EVERY = "every"  # leaf_checks="every_call": every hooked module records flags
    FIRST = "first"  # on_violation's first call: the leaves are hooked for it, the module graph is learned
    STEADY = "steady"  # on_violation between failures: the model's outputs and the guarded modules
    LEAN = "lean"  # STEADY with nothing but the model hooked: the model's hooks take a short path
    DIAGNOSE = "diagnose"  # a failing call run again: every check is evaluated now, with evidence and provenance

    @property
    def again(self) -> bool:
        """A call run again from its kept inputs (not counted, no elision)."""
        return self is Phase.DIAGNOSE


class Slot(NamedTuple):
    """The static part of one check: the same for every call of the module.

    A named tuple, not a frozen dataclass: code traced by torch.compile makes
    and hashes slots, and dynamo in torch 2.11 rebuilds a frozen dataclass
    made in traced code without its fields (``'Slot' object has no attribute
    'module'``) and cannot hash other user classes without a graph break."""

    module: str
    kind: str
    check: str
    tensor: str
    lo: float | None = None
    hi: float | None = None
    finite: bool = True
    declared_at: str | None = None
    phase: str = "forward"


class Event(NamedTuple):
    """A check waiting for its verdict (built as a plain tuple on the hot path)."""

    slot: Slot
    step: int
    call: int
    seq: int
    blame: str
    reason: str


def event_order(event: tuple) -> tuple:
    """Execution order of events: step, then phase, then call, then seq."""
    slot, step, call, seq = event[:4]
    return (step, PHASE_ORDER[slot.phase], call, seq)


@dataclass(slots=True)
class KeptCall:
    """What a re-run needs to run a call again, and what tells whether it
    would still be the same call: the version counters of its input tensors
    when it began; when it ended (if it may be re-run), the autocast regions
    and train/eval modes it ran in and the version counters of the model's
    parameters and buffers."""

    args: tuple
    kwargs: dict
    rng: torch.Tensor
    cuda_rng: list | None
    autocast: tuple[tuple[str, torch.dtype], ...] = ()
    training: tuple[bool, ...] = ()
    inputs: tuple[torch.Tensor, ...] = ()
    input_versions: tuple[int, ...] = ()
    versions: tuple[int, ...] | None = None  # set when the call ends
    changed_own_inputs: bool = False


@dataclass(eq=False, slots=True)
class CallState:
    """One root call of the model while it runs.

    ``seq`` numbers its checks in execution order;
    ``producers`` maps a tensor's id to (weakref, producing module, whether
    its value was checked); ``pending`` holds default output checks waiting
    for their consumer (elision); ``edges`` the producer -> consumer edges
    seen in this call; ``stack`` the monitored modules being run."""

    step: int
    call: int
    phase: Phase
    buffer: FlagBuffer
    edges: set[tuple[str, str]] = field(default_factory=set)
    seq: int = 0
    counted: bool = True  # its checks count in the report's ``checks``
    stack: list[str] = field(default_factory=list)
    producers: dict[int, tuple[weakref.ref, str, bool]] = field(default_factory=dict)
    pending: dict[int, tuple[torch.Tensor, tuple]] = field(default_factory=dict)
    found: list | None = None  # DIAGNOSE: the violations it finds (else they go to the Recorder)
    tracer: Any = None  # DIAGNOSE: the Provenance of non-finite values
    running: list[tuple[str, Any]] = field(default_factory=list)  # DIAGNOSE: every module running, innermost last
    lane: Any = None  # the Lane (thread) it runs in: its checks are counted there
    host_failed: bool = False  # a host-side check (metadata, a contract that raised) failed

    @property
    def key(self) -> CallKey:
        return (self.step, self.call)

    def produced(self, t: torch.Tensor, module: str, checked: bool) -> None:
        self.producers[id(t)] = (weakref.ref(t), module, checked)

    def producer_of(self, t: torch.Tensor) -> tuple[str, bool] | None:
        """(module that produced ``t`` in this call, whether it was checked)."""
        entry = self.producers.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1], entry[2]
        return None
