"""What every renderer shows, computed once per render (``facts``): the
headline, root groups, consequence trees following the module hierarchy,
violations collapsed by (module, contract), the repair hint; and how each
renderer makes strings from a report safe (``clean``).

Rendering stays linear in the report's size: each fact is computed once, in
one pass over the violations, with dicts and sets instead of list searches;
module paths deeper than ``MAX_TREE_DEPTH`` segments keep their tail as one
node, so no renderer recurses with the input.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modpact.runtime.records import ViolationGroup, ViolationRecord

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = [
    "Facts",
    "facts",
    "RootGroup",
    "TreeNode",
    "root_groups",
    "consequence_tree",
    "evidence_lines",
    "fmt_value",
    "natural_key",
    "spec_text",
    "clean",
    "MAX_ROOT_GROUPS",
    "MAX_ROWS",
    "MAX_TREE_DEPTH",
    "MAX_BLAMED",
    "blamed_text",
]

MAX_ROOT_GROUPS = 10  # distinct root causes shown in full
MAX_ROWS = 60  # rows of a collapsed table before "+N more"
MAX_TREE_DEPTH = 16  # segments of a module path shown as tree levels; deeper ones stay one node
MAX_BLAMED = 5  # parties named in one table cell before "+N more"

# Characters that change what a terminal, a browser or a CI page shows instead of being shown: C0 controls
# (ESC starts ANSI sequences: window titles, clearing the screen; CR overwrites a line) except tab and line
# feed, DEL, C1 controls (CSI is \x9b), Unicode line separators, bidirectional overrides and isolates (which
# reorder what is displayed), and lone surrogates (which cannot be written as UTF-8 at all).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean(text: Any) -> str:
    """``str(text)`` with every unsafe character written as its escape
    (``\\u001b``): shown, never acted on. Tab and line feed are kept."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", s) if _UNSAFE.search(s) else s


@dataclass
class RootGroup:
    """Roots of one (module, contract), with every consequence of them."""

    first: ViolationRecord
    contract: str
    count: int = 0
    steps: list[int] = field(default_factory=list)
    consequences: list[ViolationRecord] = field(default_factory=list)

    @property
    def step_range(self) -> str:
        lo, hi = min(self.steps), max(self.steps)
        return str(lo) if lo == hi else f"{lo}-{hi}"


def root_groups(report: DiagnosisReport, names: dict[str, str] | None = None) -> list[RootGroup]:
    """Roots collapsed by (module, contract), first occurrence first."""
    names = report.interface_contracts() if names is None else names
    groups: dict[tuple[str, str], RootGroup] = {}
    owner: dict[int, RootGroup] = {}
    for i, v in enumerate(report.violations):
        if not v.root:
            continue
        key = (v.where, report.contract_of(v, names))
        g = groups.get(key)
        if g is None:
            g = groups[key] = RootGroup(first=v, contract=key[1])
        g.count += 1
        g.steps.append(v.step)
        owner[i] = g
    for v in report.violations:
        if v.caused_by is not None and v.caused_by in owner:
            owner[v.caused_by].consequences.append(v)
    return list(groups.values())


@dataclass
class TreeNode:
    """One segment of a module path, the consequences at exactly that path
    (contract -> count) and its children in order of first occurrence."""

    name: str
    path: str
    checks: Counter = field(default_factory=Counter)
    children: dict[str, TreeNode] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.checks.values()) + sum(c.total for c in self.children.values())


def consequence_tree(
    report: DiagnosisReport, violations: list[ViolationRecord], names: dict[str, str] | None = None
) -> TreeNode:
    """Consequences arranged by module path: ``layer1.conv2`` sits under ``layer1``.
    A path of more than ``MAX_TREE_DEPTH`` segments keeps the rest as its last node."""
    names = report.interface_contracts() if names is None else names
    top = TreeNode(name="", path="")
    for v in violations:
        node = top
        if v.module:
            parts = v.module.split(".")
            if len(parts) > MAX_TREE_DEPTH:
                parts = [*parts[: MAX_TREE_DEPTH - 1], ".".join(parts[MAX_TREE_DEPTH - 1 :])]
            path = ""
            for part in parts:
                path = f"{path}.{part}" if path else part
                child = node.children.get(part)
                if child is None:
                    child = node.children[part] = TreeNode(name=part, path=path)
                node = child
        else:
            node = node.children.setdefault("<model>", TreeNode(name="<model>", path="<model>"))
        node.checks[report.contract_of(v, names)] += 1
    return top


@dataclass
class Facts:
    """What every renderer shows, computed once per render."""

    headline: str
    names: dict[str, str]  # module -> the name of its interface contract
    root_groups: list[RootGroup]
    groups: list[ViolationGroup]
    counts: dict[str, int]
    hint: str | None

    def consequence_tree(self, report: DiagnosisReport, g: RootGroup) -> TreeNode:
        return consequence_tree(report, g.consequences, self.names)


def facts(report: DiagnosisReport) -> Facts:
    names = report.interface_contracts()
    return Facts(
        headline=report.headline(),
        names=names,
        root_groups=root_groups(report, names),
        groups=report.groups(),
        counts=report.counts(),
        hint=report.repair_hint(),
    )


def blamed_text(blamed: list[str]) -> str:
    """The parties a group blames, at most ``MAX_BLAMED`` of them by name."""
    shown = ", ".join(blamed[:MAX_BLAMED])
    return shown + (f", +{len(blamed) - MAX_BLAMED} more" if len(blamed) > MAX_BLAMED else "")


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return (
            "(" + ", ".join(fmt_value(x) for x in v) + ")"
            if len(v) <= 8
            else "(" + ", ".join(fmt_value(x) for x in v[:8]) + ", ...)"
        )
    return str(v)


def evidence_lines(v: ViolationRecord) -> list[tuple[str, str]]:
    """(name, value) pairs of a violation's evidence and message, in a stable order."""
    out = []
    if v.message:
        out.append(("message", v.message))
    for k, x in v.evidence.items():
        out.append((k, fmt_value(x)))
    return out


def natural_key(path: str) -> tuple:
    """``body.2`` before ``body.10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("."))


def spec_text(spec: dict) -> str:
    """A TensorSpec's JSON form (``Interface.to_dict()``) as one line:
    ``"batch 64", dtype=float32, range=(0, 16), finite``."""
    parts = [f'"{spec.get("shape", "")}"']
    for k in ("dtype", "device"):
        if spec.get(k) not in (None, "any"):
            parts.append(f"{k}={spec[k]}")
    if spec.get("range") is not None:
        parts.append(f"range={tuple(spec['range'])}")
    if spec.get("finite"):
        parts.append("finite")
    if spec.get("simplex") is not None:
        parts.append(f"simplex(dim={spec['simplex']})")
    if spec.get("indices") is not None:
        parts.append(f"indices<{spec['indices']}")
    if spec.get("labels"):
        lab = spec["labels"]
        parts.append(f"labels={lab.get('name')}({len(lab.get('labels', []))})")
    return ", ".join(parts)
