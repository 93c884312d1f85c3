"""The content of a ``DiagnosisReport`` from ``validate()`` runs over a
model's guarded modules (``modpact validate``): one violation per
counterexample found, the passing modules as notes, the contracts as written.
``DiagnosisReport.from_validation`` and ``from_failure`` build the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modpact.errors import ValidationFailure
from modpact.runtime.histogram import value_histogram
from modpact.runtime.records import Histogram, ModuleContracts, ViolationRecord

__all__ = ["ValidationOutcome", "validation_fields", "failure_outcome"]


@dataclass
class ValidationOutcome:
    """One module's validation: ``result`` (a ValidationResult) when it
    passed, ``failure`` (a ValidationFailure) when it did not, ``skipped`` (the
    reason) when it could not be validated."""

    module: str
    contracts: ModuleContracts
    result: Any = None
    failure: Any = None
    skipped: str | None = None


def _record(i: int, o: ValidationOutcome) -> ViolationRecord:
    f = o.failure
    inner = getattr(f, "violation", None)
    kind = getattr(inner, "kind", None) or "validation"
    evidence: dict[str, Any] = {}
    if f.expected is not None or f.actual is not None:
        evidence["expected"], evidence["actual"] = str(f.expected), str(f.actual)
    evidence.update({f"{k} was": str(v) for k, v in f.values.items()})
    evidence.update(
        {k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in f.evidence.items()}
    )
    hist = None
    inputs = getattr(f, "inputs", None) or {}
    first = next((t for t in inputs.values() if isinstance(t, torch.Tensor) and t.is_floating_point()), None)
    if first is not None:
        h = value_histogram(first)
        hist = Histogram(**h) if h else None
    return ViolationRecord(
        step=0,
        call=i,
        seq=0,
        phase="validation",
        module="" if o.module == "<model>" else o.module,
        kind=kind,
        check=f.contract or kind,
        tensor=getattr(f, "side", None) or "",
        blame=f.blame or "the module",
        blame_reason=f.blame_reason or "a generated input that met the preconditions broke the contract",
        declared_at=f.declared_at,
        message=f.headline,
        evidence=evidence,
        histogram=hist,
    )


def validation_fields(model: str, outcomes: list[ValidationOutcome]) -> dict[str, Any]:
    """The fields of the validation report of ``model``."""
    violations = [_record(i, o) for i, o in enumerate(outcomes) if o.failure is not None]
    notes = []
    for o in outcomes:
        if o.result is not None:
            notes.append(str(o.result).splitlines()[0])
        elif o.skipped is not None:
            notes.append(f"validate({o.module}) skipped: {o.skipped}")
    return dict(
        source="validation",
        model=model,
        steps=0,
        calls=sum(getattr(o.result, "forwards", 0) for o in outcomes),
        checks=sum(getattr(o.result, "examples", 0) for o in outcomes),
        modules_monitored=[o.module for o in outcomes if o.skipped is None],
        violations=violations,
        notes=notes,
        contracts=[o.contracts for o in outcomes],
        module_types={o.module: o.contracts.type for o in outcomes},
    )


def failure_outcome(failure: Any) -> ValidationOutcome:
    """One ``validate`` / ``check_substitutable`` / ``check_composition``
    failure (a ValidationFailure) as the outcome of its module."""
    if not isinstance(failure, ValidationFailure):
        raise TypeError(f"DiagnosisReport.from_failure: expected a ValidationFailure, got {type(failure).__name__}")
    module = failure.module or "<model>"
    return ValidationOutcome(module=module, contracts=ModuleContracts(module=module), failure=failure)
