"""Root cause: which violations start a fault and which follow from one.

Blame follows docs/contracts.md (Findler-Felleisen): a failed precondition or
input check blames the producer of the input (the upstream module, or the
input data at the model boundary); a failed postcondition or output check
blames the module; a condition that raised blames the contract.

Root cause within one forward call: violations are ordered by execution
order (``seq``). The earliest violation is a root cause; a later violation is
a *consequence* of an earlier root when its module is reachable from the
root's module in the call's dataflow graph (producer -> consumer edges, and
child -> enclosing container); otherwise it starts a root of its own.
Gradient violations in a step whose forward already failed are consequences
of the forward's first root. Checks that ran inside ``torch.compile`` (call
-1) carry no dataflow: their later violations are linked to the step's first
one by execution order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from modpact.runtime.records import INPUT_DATA, ViolationRecord

__all__ = ["RuntimeViolation", "Dataflow", "assign_roots", "INPUT_DATA"]


# one violation model from the hook to the report: the Monitor records
# ViolationRecords directly (the old name stays an alias)
RuntimeViolation = ViolationRecord


class Dataflow:
    """Per-call producer -> consumer edges between monitored modules."""

    def __init__(self) -> None:
        self.edges: dict[tuple[int, int], set[tuple[str, str]]] = defaultdict(set)

    def add(self, step: int, call: int, producer: str, consumer: str) -> None:
        if producer != consumer:
            self.edges[(step, call)].add((producer, consumer))

    def downstream(self, step: int, call: int, start: str) -> set[str]:
        succ: dict[str, set[str]] = defaultdict(set)
        for a, b in self.edges.get((step, call), ()):
            succ[a].add(b)
        seen, todo = {start}, [start]
        while todo:
            node = todo.pop()
            nxt = set(succ.get(node, ()))
            # a module's output also flows out through every enclosing container
            nxt.update(_ancestors(node))
            for n in nxt - seen:
                seen.add(n)
                todo.append(n)
        return seen

    def forget_before(self, step: int, keep: set[tuple[int, int]] | frozenset = frozenset()) -> None:
        """Drop the edges of calls before ``step``, except the calls in ``keep``
        (those with violations: root assignment needs their dataflow)."""
        for key in [k for k in self.edges if k[0] < step and k not in keep]:
            del self.edges[key]


def _ancestors(path: str) -> list[str]:
    if not path:
        return []
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]


def assign_roots(violations: list[ViolationRecord], flow: Dataflow) -> list[ViolationRecord]:
    """Sort by execution order and mark consequences; returns the sorted list.

    Within a call, a violation follows from an earlier root when the re-run
    traced its non-finite value to the same origin (``origin``), or else when
    its module is reachable from the root's in the call's dataflow. A root
    whose evidence says it ``follows`` an earlier failed call (a parameter an
    optimizer step changed after that failure) follows from that call's root."""
    ordered = sorted(violations, key=ViolationRecord.sort_key)
    roots_by_call: dict[tuple[int, int], list[tuple[int, set[str]]]] = defaultdict(list)
    by_origin: dict[tuple[int, int, int], int] = {}
    first_forward_root: dict[int, int] = {}
    for i, v in enumerate(ordered):
        v.root, v.caused_by = True, None
        if v.phase != "forward":
            if v.step in first_forward_root:
                v.root, v.caused_by = False, first_forward_root[v.step]
            continue
        key = (v.step, v.call)
        if v.call == -1 and roots_by_call[key]:
            # checked inside torch.compile: no dataflow was recorded, so later
            # violations of the step are linked to its first by execution order
            _follows(ordered, v, roots_by_call[key][0][0])
            continue
        same = by_origin.get((*key, v.origin)) if v.origin is not None else None
        if same is not None:
            _follows(ordered, v, same)
            continue
        for root_index, reach in roots_by_call[key]:
            if v.module in reach or _blamed_module(v) in reach:
                _follows(ordered, v, root_index)
                break
        if v.root:
            earlier = v.evidence.get("follows")
            if isinstance(earlier, list) and len(earlier) == 2 and roots_by_call.get((earlier[0], earlier[1])):
                _follows(ordered, v, roots_by_call[(earlier[0], earlier[1])][0][0])
        if v.root:
            start = _blamed_module(v) or v.module
            reach = flow.downstream(v.step, v.call, start) | {v.module}
            if v.blame == INPUT_DATA:  # bad input data reaches every module that reads it
                reach |= flow.downstream(v.step, v.call, INPUT_DATA)
            roots_by_call[key].append((i, reach))
            first_forward_root.setdefault(v.step, i)
        if v.origin is not None:
            by_origin.setdefault((*key, v.origin), i if v.root else v.caused_by)  # type: ignore[arg-type]
    return ordered


def _follows(ordered: list[ViolationRecord], v: ViolationRecord, root_index: int) -> None:
    """Mark ``v`` a consequence of ``ordered[root_index]``; a postcondition
    that said its preconditions held says otherwise when they did not."""
    v.root, v.caused_by = False, root_index
    root = ordered[root_index]
    if (
        v.kind == "postcondition"
        and v.blame_reason == "its preconditions held"
        and root.module == v.module
        and (root.kind == "precondition" or (root.kind == "interface" and root.tensor.startswith("inputs")))
    ):
        v.blame_reason = "its preconditions did not hold in this call (see the root cause)"


def _blamed_module(v: ViolationRecord) -> str:
    """The module a violation blames, if it blames a module."""
    if v.kind in ("precondition",) or (v.kind == "interface" and v.tensor.startswith("inputs")):
        return v.blame if v.blame not in (INPUT_DATA,) and not v.blame.startswith("the ") else v.module
    return v.module


def counts_by_module(violations: Iterable[ViolationRecord]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in violations:
        out[v.where] += 1
    return dict(out)
