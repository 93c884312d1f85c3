"""The records of a run, as data (pydantic): one violation model from the
hook that finds a violation to the report that shows it.

``ViolationRecord`` is what the Monitor records when a check fails, what
ranks exchange under torch.distributed, what root-cause assignment marks,
and what the report holds and renders. ``ModuleContracts`` and
``ConditionRecord`` describe the contracts as written; ``Histogram`` the
values of an offending tensor; ``ViolationGroup`` the collapsed view.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "INPUT_DATA",
    "ViolationRecord",
    "Histogram",
    "ConditionRecord",
    "ModuleContracts",
    "ViolationGroup",
    "jsonable_evidence",
    "PHASE_ORDER",
]

INPUT_DATA = "the input data"  # the party blamed for the model's own inputs

PHASE_ORDER = {"forward": 0, "backward": 1, "step": 2}  # within a step; validation records come last


class Histogram(BaseModel):
    """Value histogram of an offending tensor, taken on the replay path only.

    ``counts`` are equal-width bins over the finite values in [``lo``, ``hi``];
    ``nan``/``posinf``/``neginf`` count the non-finite ones; ``bound_lo`` /
    ``bound_hi`` are the contract's range (None: unbounded)."""

    lo: float
    hi: float
    counts: list[int]
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    bound_lo: float | None = None
    bound_hi: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts) + self.nan + self.posinf + self.neginf


class ConditionRecord(BaseModel):
    """One condition as written: its text, where it was declared, and why."""

    text: str
    declared_at: str | None = None
    why: str | None = None


class ModuleContracts(BaseModel):
    """The contracts of one module as written: its interface (the JSON form of
    ``Interface.to_dict()``), its pre- and postconditions, and the default
    contracts the Monitor added."""

    module: str
    type: str = ""
    interface: dict[str, Any] | None = None
    requires: list[ConditionRecord] = Field(default_factory=list)
    ensures: list[ConditionRecord] = Field(default_factory=list)
    defaults: list[str] = Field(default_factory=list)

    @property
    def interface_contract(self) -> str | None:
        if self.interface is None:
            return None
        return f"interface {self.interface.get('name', '')}".rstrip()

    def names(self) -> list[str]:
        """Every contract of the module, by the name reports and JUnit use."""
        out = [c for c in (self.interface_contract,) if c is not None]  # None without an interface
        out += [c.text for c in self.requires] + [c.text for c in self.ensures] + list(self.defaults)
        return list(dict.fromkeys(out))


class ViolationRecord(BaseModel):
    """One violation: where (step, call, seq, phase, module), what (kind,
    check, tensor), whom it blames and why, and the evidence."""

    step: int
    call: int  # index of the root forward call within the step (-1: compiled code, backward/step checks)
    seq: int  # execution order within the call
    phase: str = "forward"  # forward | backward | step | validation
    module: str  # module path ("" is the model itself)
    kind: str  # precondition | postcondition | interface | contract-error | gradient | validation
    check: str  # the condition, as written ("finite(output)", "in_range(probs, 0, 1)")
    tensor: str  # which value ("output", "inputs.x", "grad(output)", "weight.grad")
    blame: str
    blame_reason: str
    declared_at: str | None = None
    message: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    rank: int | None = None
    ranks: list[int] = Field(default_factory=list)  # every rank it occurred on (distributed runs)
    root: bool = True
    caused_by: int | None = None  # index (in the report's list) of the root this follows from
    histogram: Histogram | None = None
    # how it was located: "run" (the run's own checks), "re-run" (a re-run of
    # the call, unchanged since), "not located" (a model-level check failed
    # and the call could not be re-run as it was)
    located_by: str | None = None
    origin: int | None = None  # re-run: which non-finite value's origin it shows (one per call)

    @property
    def where(self) -> str:
        return self.module or "<model>"

    def sort_key(self) -> tuple:
        return (self.step, PHASE_ORDER.get(self.phase, 3), self.call, self.seq, self.rank or 0)

    @property
    def rank_text(self) -> str:
        """', rank 1' / ', ranks 0, 1' / '' (for headings)."""
        if len(self.ranks) > 1:
            return f", ranks {', '.join(map(str, self.ranks))}"
        return f", rank {self.rank}" if self.rank is not None else ""

    def blame_sentence(self) -> str:
        return f"blaming {self.blame} ({self.blame_reason})"

    def located_text(self) -> str | None:
        """How the violation was located, in words (None for old reports)."""
        return _LOCATED.get(self.located_by or "")


_LOCATED = {
    "re-run": "located by a re-run of the call, unchanged since it ran, with every check evaluated at once",
    "run": "located by the run's own checks: the first failed check in execution order",
    "not located": "not located: only the model's output was checked, and the call could not be re-run as it was",
}


class ViolationGroup(BaseModel):
    """Violations of one contract at one module (the collapsed view)."""

    module: str
    contract: str
    first: ViolationRecord
    first_index: int
    count: int = 0
    roots: int = 0
    first_step: int = 0
    last_step: int = 0
    blamed: list[str] = Field(default_factory=list)

    def add(self, v: ViolationRecord) -> None:
        if self.count == 0:
            self.first_step = self.last_step = v.step
        self.count += 1
        self.roots += int(v.root)
        self.first_step = min(self.first_step, v.step)
        self.last_step = max(self.last_step, v.step)
        if v.blame not in self.blamed:
            self.blamed.append(v.blame)

    @property
    def steps(self) -> str:
        return str(self.first_step) if self.first_step == self.last_step else f"{self.first_step}-{self.last_step}"


def jsonable_evidence(d: dict) -> dict:
    """Evidence with JSON values only: non-finite floats and other objects as strings."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = str(v)
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (tuple, list)):
            out[k] = [x if isinstance(x, (str, int, float, bool)) else str(x) for x in v]
        else:
            out[k] = str(v)
    return out
