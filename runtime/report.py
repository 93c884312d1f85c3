"""DiagnosisReport: what a monitored run found, as data (pydantic) and text.

Field names are stable: the JSON form is the report's schema
(``DiagnosisReport.model_json_schema()``) and loads back with
``DiagnosisReport.from_json``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

from pydantic import BaseModel, Field

from modpact.interfaces.errors import FormatVersionError

__all__ = ["DiagnosisReport", "ViolationRecord", "REPORT_FORMAT_VERSION"]

REPORT_FORMAT_VERSION = 1


class ViolationRecord(BaseModel):
    step: int
    call: int
    seq: int
    phase: str
    module: str
    kind: str
    check: str
    tensor: str
    blame: str
    blame_reason: str
    declared_at: Optional[str] = None
    message: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    rank: Optional[int] = None
    ranks: list[int] = Field(default_factory=list)
    root: bool = True
    caused_by: Optional[int] = None

    @property
    def where(self) -> str:
        return self.module or "<model>"

    def blame_sentence(self) -> str:
        return f"blaming {self.blame} ({self.blame_reason})"


class DiagnosisReport(BaseModel):
    format_version: int = REPORT_FORMAT_VERSION
    model: str = ""
    steps: int = 0
    calls: int = 0
    checks: int = 0
    modules_monitored: list[str] = Field(default_factory=list)
    world_size: Optional[int] = None
    violations: list[ViolationRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    # -- queries ------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def roots(self) -> list[ViolationRecord]:
        return [v for v in self.violations if v.root]

    @property
    def root_cause(self) -> ViolationRecord | None:
        """The earliest root (execution order), or None for a clean run."""
        roots = self.roots
        return roots[0] if roots else None

    def consequences(self, root: ViolationRecord | None = None) -> list[ViolationRecord]:
        root = root or self.root_cause
        if root is None:
            return []
        index = self.violations.index(root)
        return [v for v in self.violations if v.caused_by == index]

    def counts(self) -> dict[str, int]:
        """Violations per module path."""
        return dict(Counter(v.where for v in self.violations))

    def rank_scope(self, v: ViolationRecord) -> str | None:
        """In a distributed run: on which ranks ``v`` happened and what that points to."""
        if not self.world_size or self.world_size < 2 or not v.ranks:
            return None
        where = ", ".join(map(str, v.ranks))
        if len(v.ranks) == self.world_size:
            return f"on all {self.world_size} ranks: points to the module, not to one rank's data"
        return f"on rank {where} only (of {self.world_size}): points to the data fed to rank {where}"

    def repair_hint(self) -> str | None:
        root = self.root_cause
        if root is None:
            return None
        scope = self.rank_scope(root)
        if scope is not None and len(root.ranks) < (self.world_size or 0) and root.kind != "contract-error":
            return f"check the data fed to {root.where} on rank {', '.join(map(str, root.ranks))}"
        if root.kind == "contract-error":
            return f"fix the contract {root.check} (declared at {root.declared_at or 'unknown'})"
        if root.blame == "the input data" or root.blame.startswith("the caller"):
            return f"check the data fed to {root.where}"
        return f"replace or retrain {root.blame} against its interface and contracts"

    # -- serialisation --------------------------------------------------------
    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "DiagnosisReport":
        import json

        data = json.loads(text)
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != REPORT_FORMAT_VERSION:
            raise FormatVersionError(
                f"report format_version {version!r} is not supported; this modpact reads version {REPORT_FORMAT_VERSION}"
            )
        return cls.model_validate(data)

    # -- text -----------------------------------------------------------------
    def headline(self) -> str:
        if self.ok:
            return f"OK: no contract violations in {self.steps} step(s), {self.calls} call(s), {self.checks} checks"
        root = self.root_cause
        assert root is not None
        n_roots = len(self.roots)
        extra = f" (+{n_roots - 1} independent root(s))" if n_roots > 1 else ""
        return (
            f"FAILED: {len(self.violations)} violation(s); root cause: {root.kind} {root.check} "
            f"at {root.where} in step {root.step}{extra}"
        )

    def __str__(self) -> str:
        lines = [self.headline()]
        for root in self.roots:
            lines.append("")
            lines.append(f"root cause: {root.where}: {root.kind} {root.check} on {root.tensor}"
                         f" (step {root.step}, {root.phase}{_rank(root)})")
            lines.append(f"  {root.blame_sentence()}")
            scope = self.rank_scope(root)
            if scope:
                lines.append(f"  {scope}")
            if root.declared_at:
                lines.append(f"  declared at {root.declared_at}")
            for k, v in root.evidence.items():
                lines.append(f"  {k}: {v}")
            cons = self.consequences(root)
            if cons:
                lines.append(f"  consequences ({len(cons)}):")
                for key, n in Counter((c.where, c.check) for c in cons).items():
                    lines.append(f"    {key[0]}: {key[1]}" + (f" x{n}" if n > 1 else ""))
        hint = self.repair_hint()
        if hint:
            lines.append("")
            lines.append(f"repair hint: {hint}")
        if self.violations:
            lines.append("")
            lines.append("violations per module: " + ", ".join(f"{m}={n}" for m, n in self.counts().items()))
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


def _rank(v: ViolationRecord) -> str:
    if len(v.ranks) > 1:
        return f", ranks {', '.join(map(str, v.ranks))}"
    return f", rank {v.rank}" if v.rank is not None else ""
