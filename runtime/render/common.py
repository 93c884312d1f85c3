"""What every renderer shows, computed once: root groups, consequence trees
following the module hierarchy, evidence lines."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modpact.runtime.records import ViolationRecord

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = [
    "RootGroup",
    "TreeNode",
    "root_groups",
    "consequence_tree",
    "evidence_lines",
    "fmt_value",
    "natural_key",
    "spec_text",
    "MAX_ROOT_GROUPS",
    "MAX_ROWS",
]

MAX_ROOT_GROUPS = 10  # distinct root causes shown in full
MAX_ROWS = 60  # rows of a collapsed table before "+N more"


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


def root_groups(report: DiagnosisReport) -> list[RootGroup]:
    """Roots collapsed by (module, contract), first occurrence first."""
    index = {id(v): i for i, v in enumerate(report.violations)}
    groups: dict[tuple[str, str], RootGroup] = {}
    for v in report.roots:
        contract = report.contract_of(v)
        g = groups.get((v.where, contract))
        if g is None:
            g = groups[(v.where, contract)] = RootGroup(first=v, contract=contract)
        g.count += 1
        g.steps.append(v.step)
    owner: dict[int, RootGroup] = {}
    for v in report.roots:
        owner[index[id(v)]] = groups[(v.where, report.contract_of(v))]
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


def consequence_tree(report: DiagnosisReport, violations: list[ViolationRecord]) -> TreeNode:
    """Consequences arranged by module path: ``layer1.conv2`` sits under ``layer1``."""
    top = TreeNode(name="", path="")
    for v in violations:
        node = top
        if v.module:
            parts = v.module.split(".")
            for i, part in enumerate(parts):
                path = ".".join(parts[: i + 1])
                node = node.children.setdefault(part, TreeNode(name=part, path=path))
        else:
            node = node.children.setdefault("<model>", TreeNode(name="<model>", path="<model>"))
        node.checks[report.contract_of(v)] += 1
    return top


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
