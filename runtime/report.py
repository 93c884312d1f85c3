"""DiagnosisReport: what a monitored run found, as data (pydantic) and text.

The records it holds are defined in ``modpact.runtime.records`` (re-exported
here); the renderers in ``modpact.runtime.render`` read a report and know
nothing of this module.

Field names are stable: the JSON form is the report's schema
(``DiagnosisReport.model_json_schema()``) and loads back with
``DiagnosisReport.from_json``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from modpact.errors import SpecError
from modpact.interfaces.serialize import validation_problems
from modpact.runtime.loading import REPORT_FORMAT_VERSION, check_report, report_document, report_text
from modpact.runtime.records import (
    INPUT_DATA,
    ConditionRecord,
    Histogram,
    ModuleContracts,
    ViolationGroup,
    ViolationRecord,
)
from modpact.runtime.render.html import render_html
from modpact.runtime.render.junit import render_junit
from modpact.runtime.render.text import print_report, render_text
from modpact.runtime.validation_report import ValidationOutcome, failure_outcome, validation_fields

__all__ = [
    "DiagnosisReport",
    "ViolationRecord",
    "Histogram",
    "ConditionRecord",
    "ModuleContracts",
    "ViolationGroup",
    "REPORT_FORMAT_VERSION",
    "INPUT_DATA",
]


class DiagnosisReport(BaseModel):
    format_version: int = REPORT_FORMAT_VERSION
    source: str = "monitor"  # "monitor" (a monitored run) or "validation" (modpact validate)
    model: str = ""
    steps: int = 0
    calls: int = 0
    checks: int = 0
    modules_monitored: list[str] = Field(default_factory=list)
    world_size: int | None = None
    violations: list[ViolationRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # added within format version 1 (optional: older files load without them)
    module_types: dict[str, str] = Field(default_factory=dict)
    edges: list[tuple[str, str]] = Field(default_factory=list)
    contracts: list[ModuleContracts] = Field(default_factory=list)
    # every violation found, kept as a record or not (past the Monitor's
    # max_violations they are counted only), by "module: kind check"; empty:
    # every violation is in ``violations``
    totals: dict[str, int] = Field(default_factory=dict)

    # -- queries ------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.violations and not self.total

    @property
    def total(self) -> int:
        """Violations found, records kept or not."""
        return max(sum(self.totals.values()), len(self.violations))

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
        """Violations per module path (every one found, records kept or not)."""
        if self.totals:
            out: Counter[str] = Counter()
            for key, n in self.totals.items():
                out[key.split(": ", 1)[0]] += n
            return dict(out)
        return dict(Counter(v.where for v in self.violations))

    def rank_scope(self, v: ViolationRecord) -> str | None:
        """In a distributed run: on which ranks ``v`` happened and what that points to."""
        if not self.world_size or self.world_size < 2 or not v.ranks:
            return None
        where = ", ".join(map(str, v.ranks))
        if len(v.ranks) == self.world_size:
            return f"on all {self.world_size} ranks: points to the module, not to one rank's data"
        return f"on rank {where} only (of {self.world_size}): points to the data fed to rank {where}"

    def contract_of(self, v: ViolationRecord, names: dict[str, str] | None = None) -> str:
        """The contract a violation broke, by name: an interface check counts
        for the module's interface, every other check for itself. ``names``:
        ``interface_contracts()``, computed once for many calls."""
        if v.kind == "interface":
            names = self.interface_contracts() if names is None else names
            return names.get(v.where, v.check)
        return v.check

    def interface_contracts(self) -> dict[str, str]:
        """Module path -> the name of its interface contract (the first
        module entry with an interface)."""
        names: dict[str, str] = {}
        for mc in self.contracts:
            if mc.interface is not None and mc.module not in names:
                names[mc.module] = mc.interface_contract  # type: ignore[assignment]
        return names

    def groups(self) -> list[ViolationGroup]:
        """Violations collapsed by (module, contract), in order of first occurrence."""
        # tallied in plain lists, then each group built once (``ViolationGroup.add`` per violation, through
        # pydantic's attribute setting, cost more than the rest of a render of 10,000 violations)
        tally: dict[tuple[str, str], list] = {}
        names = self.interface_contracts()
        for i, v in enumerate(self.violations):
            key = (v.where, self.contract_of(v, names))
            t = tally.get(key)
            if t is None:
                t = tally[key] = [i, v, 0, 0, v.step, v.step, {}]
            t[2] += 1
            t[3] += bool(v.root)
            t[4] = min(t[4], v.step)
            t[5] = max(t[5], v.step)
            t[6][v.blame] = None  # an ordered set
        return [
            ViolationGroup.model_construct(
                module=key[0],
                contract=key[1],
                first=first,
                first_index=i,
                count=count,
                roots=roots,
                first_step=lo,
                last_step=hi,
                blamed=list(blamed),
            )
            for key, (i, first, count, roots, lo, hi, blamed) in tally.items()
        ]

    def repair_hint(self) -> str | None:
        root = self.root_cause
        if root is None:
            return None
        scope = self.rank_scope(root)
        if scope is not None and len(root.ranks) < (self.world_size or 0) and root.kind != "contract-error":
            return f"check the data fed to {root.where} on rank {', '.join(map(str, root.ranks))}"
        if root.kind == "contract-error":
            return f"fix the contract {root.check} (declared at {root.declared_at or 'unknown'})"
        if root.blame.startswith("the generated inputs"):
            return (
                f"a generated input that {root.where}'s interface and preconditions allow broke it: fix "
                f"{root.where}, or state the restriction in its interface or requires"
            )
        if root.blame == "the input data" or root.blame.startswith("the caller"):
            return f"check the data fed to {root.where}"
        return f"replace or retrain {root.blame} against its interface and contracts"

    # -- serialisation --------------------------------------------------------
    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_failure(cls, failure: Any) -> DiagnosisReport:
        """The report of a ``validate()``, ``check_substitutable()`` or
        ``check_composition()`` failure (a ``ValidationFailure``): the
        counterexample as its one violation, ready for ``print``, ``to_html``,
        ``to_junit`` and ``to_json``."""
        outcome = failure_outcome(failure)
        return cls.from_validation(outcome.module, [outcome])

    @classmethod
    def from_validation(cls, model: str, outcomes: list[ValidationOutcome]) -> DiagnosisReport:
        """The report of ``validate()`` runs over a model's modules (``modpact
        validate``): one violation per counterexample, passing modules as notes."""
        return cls(**validation_fields(model, outcomes))

    @classmethod
    def from_json(cls, text: str) -> DiagnosisReport:
        """Load a report saved with ``to_json``. Raises ``FormatVersionError``
        for another format version and ``SpecError`` naming the line (bad JSON)
        or the field (e.g. ``violations[0].step``) that is wrong; what is
        accepted and rejected is in ``modpact.runtime.loading``."""
        data = report_document(text)
        try:
            report = cls.model_validate(data)
        except ValidationError as e:
            raise SpecError(f"invalid report field(s): {validation_problems(e)}") from None
        check_report(report)
        return report

    @classmethod
    def load(cls, path: Any) -> DiagnosisReport:
        """``from_json`` of a file: ``LoadError`` when it cannot be read,
        ``SpecError`` naming the file and the problem when it is not a valid report."""
        text = report_text(path)
        try:
            return cls.from_json(text)
        except SpecError as e:  # FormatVersionError stays one
            raise type(e)(f"{path}: {e}") from None

    # -- renderers (modpact.runtime.render) --------------------------------------
    def render_text(self, *, color: bool = False, width: int = 120) -> str:
        """The terminal form as a string (rich; ANSI colours if ``color``)."""
        return render_text(self, color=color, width=width)

    def print(self, console: Any = None) -> None:
        """Print the terminal form with rich (to ``console`` or stdout)."""
        print_report(self, console)

    def to_html(self, path: Any = None) -> str:
        """A self-contained HTML page (inline CSS and SVG); written to ``path`` if given."""
        return _written(render_html(self), path)

    def to_junit(self, path: Any = None) -> str:
        """JUnit XML, one test case per contract; written to ``path`` if given."""
        return _written(render_junit(self), path)

    # -- text -----------------------------------------------------------------
    def headline(self) -> str:
        if self.ok:
            if self.source == "validation":
                return (
                    f"OK: validation found no counterexample in {len(self.modules_monitored)} module(s), "
                    f"{self.checks} generated example(s)"
                )
            return f"OK: no contract violations in {self.steps} step(s), {self.calls} call(s), {self.checks} checks"
        root = self.root_cause
        count = f"{self.total} violation(s)"
        if self.total > len(self.violations):
            count += f", {len(self.violations)} kept as records (the rest counted only)"
        if root is None:
            return f"FAILED: {count}; none is marked as a root cause"
        # roots collapse by (module, contract): the same fault in every step is one cause
        names = self.interface_contracts()
        causes = {(v.where, self.contract_of(v, names)) for v in self.roots}
        if len(causes) > 1:
            extra = f" (+{len(causes) - 1} independent root cause(s))"
        elif len(self.roots) > 1:
            extra = f" (the same root cause in {len(self.roots)} calls)"
        else:
            extra = ""
        if self.source == "validation":
            return (
                f"FAILED: validation found {len(self.violations)} counterexample(s) in "
                f"{len(self.modules_monitored)} module(s); first: {root.kind} {root.check} at {root.where}"
            )
        return f"FAILED: {count}; root cause: {root.kind} {root.check} at {root.where} in step {root.step}{extra}"

    def __str__(self) -> str:
        return self.render_text(color=False)


def _written(text: str, path: Any) -> str:
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
