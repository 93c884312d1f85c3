"""The one errors module of modpact.

Every exception modpact raises derives from :class:`ModpactError` and also from
the builtin that matches it, so ``except ValueError`` keeps working for a bad
spec and ``except AssertionError`` for a broken contract.

Violations carry structured fields (module path, blamed party, contract,
expected/actual, evidence, dim bindings) as attributes; ``str(exc)`` renders
them in the fixed message shape of docs/contracts.md:

    headline
      condition: <source or name>
      <name> was <summary>            (one line per value used)
      dims: batch=8 (bound by inputs.x[0])
      blaming <party> (assuming the contract is correct)
      declared at <file:line>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ModpactError",
    "SpecError",
    "CompatibilityError",
    "ContractViolation",
    "PreconditionViolation",
    "PostconditionViolation",
    "InterfaceViolation",
    "ContractError",
    "FormatVersionError",
    "Problem",
    "MonitorError",
    "LoadError",
    "ValidationFailure",
    "PortError",
    "ExtraMissing",
]


class ModpactError(Exception):
    """Root of every exception modpact raises."""


class SpecError(ModpactError, ValueError):
    """A spec, interface, label space or contract was malformed when it was built."""


class FormatVersionError(SpecError):
    """A serialized object carries a format version this modpact cannot read."""


class CompatibilityError(ModpactError, TypeError):
    """Two interfaces cannot be wired together; ``reasons`` lists every reason."""

    def __init__(self, message: str, reasons: Sequence[str] = ()):
        self.reasons = list(reasons)
        full = message
        if self.reasons:
            full += "\n" + "\n".join(f"  - {r}" for r in self.reasons)
        super().__init__(full)


class PortError(CompatibilityError):
    """A ported artifact (an exported program, an ONNX graph, a checkpoint)
    contradicts the interface it was meant to carry; ``reasons`` lists every
    contradiction found."""


class ExtraMissing(ModpactError, ImportError):
    """An optional dependency is not installed; the message names the extra
    to install (``pip install "modpact[export]"``)."""


@dataclass(frozen=True)
class Problem:
    """One reason a check failed: which tensor, which field, expected vs actual."""

    tensor: str  # e.g. "inputs.x" / "outputs.logits"
    field: str  # "shape", "dtype", "device", "range", "finite", ...
    expected: str
    actual: str
    detail: str = ""

    def __str__(self) -> str:
        s = f"{self.tensor}: {self.field} expected {self.expected}, got {self.actual}"
        return f"{s} ({self.detail})" if self.detail else s


class ContractViolation(ModpactError, AssertionError):
    """A contract did not hold. Structured fields are attributes.

    kind: "precondition" | "postcondition" | "interface" | "contract-error"
    blame: the party blamed, e.g. "encoder.blocks.3.mlp" or "the input data"
    """

    kind = "violation"

    def __init__(
        self,
        headline: str,
        *,
        module: str | None = None,
        blame: str | None = None,
        blame_reason: str | None = None,
        contract: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        values: Mapping[str, str] | None = None,
        evidence: Mapping[str, Any] | None = None,
        bindings: Mapping[str, Any] | None = None,
        declared_at: str | None = None,
        problems: Sequence[Problem] = (),
        side: str | None = None,
    ):
        self.headline = headline
        self.module = module
        self.blame = blame
        self.blame_reason = blame_reason
        self.contract = contract
        self.expected = expected
        self.actual = actual
        self.values = dict(values or {})
        self.evidence = dict(evidence or {})
        self.bindings = dict(bindings or {})
        self.declared_at = declared_at
        self.problems = list(problems)
        self.side = side
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.headline]
        if self.contract:
            lines.append(f"  condition: {self.contract}")
        for p in self.problems:
            lines.append(f"  {p}")
        if self.expected is not None or self.actual is not None:
            lines.append(f"  expected {self.expected}, got {self.actual}")
        for name, summary in self.values.items():
            lines.append(f"  {name} was {summary}")
        for key, val in self.evidence.items():
            lines.append(f"  {key}: {val}")
        if self.bindings:
            lines.append("  dims: " + ", ".join(_fmt_binding(k, v) for k, v in self.bindings.items()))
        if self.blame:
            reason = f" ({self.blame_reason})" if self.blame_reason else " (assuming the contract is correct)"
            lines.append(f"  blaming {self.blame}{reason}")
        if self.declared_at:
            lines.append(f"  declared at {self.declared_at}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Structured fields as plain JSON-able data (for reports)."""
        return {
            "kind": self.kind,
            "headline": self.headline,
            "module": self.module,
            "blame": self.blame,
            "blame_reason": self.blame_reason,
            "contract": self.contract,
            "expected": self.expected,
            "actual": self.actual,
            "values": dict(self.values),
            "evidence": {k: _jsonable(v) for k, v in self.evidence.items()},
            "bindings": {k: _jsonable(v) for k, v in self.bindings.items()},
            "declared_at": self.declared_at,
            "problems": [p.__dict__ for p in self.problems],
            "side": self.side,
        }

    def __reduce__(self):  # keep structured fields through pickling (multiprocess)
        return (_rebuild, (type(self), self.headline, self.to_dict()))


def _rebuild(cls, headline, d):
    d = dict(d)
    for k in ("kind", "headline"):
        d.pop(k, None)
    d["problems"] = [Problem(**p) for p in d.get("problems", [])]
    return cls(headline, **d)


def _fmt_binding(name: str, value: Any) -> str:
    # value may be an int/tuple, or (value, where) as produced by interfaces.Bindings
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return f"{name}={value[0]} (bound by {value[1]})"
    return f"{name}={value}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


class PreconditionViolation(ContractViolation):
    """A precondition failed: the caller / producer of the inputs is blamed."""

    kind = "precondition"


class PostconditionViolation(ContractViolation):
    """A postcondition failed while the preconditions held: the module is blamed."""

    kind = "postcondition"


class InterfaceViolation(ContractViolation):
    """A tensor did not match its interface spec (shape, dtype, device, domain).

    ``side`` is "input" (blame the producer/caller) or "output" (blame the module).
    """

    kind = "interface"


class ContractError(ContractViolation):
    """The condition itself raised, or returned something that is not a boolean:
    the contract is blamed, not the module or its caller."""

    kind = "contract-error"
    original: BaseException  # the exception the condition raised, where it raised one


class MonitorError(ModpactError, RuntimeError):
    """The runtime monitor was misused (nested on the same modules, nothing to
    monitor) or a step could not be checked."""


class LoadError(ModpactError, LookupError):
    """A file, module or object named on the command line (``PATH[:OBJECT]``)
    could not be found or loaded."""


class ValidationFailure(ContractViolation):
    """Property-based validation (``validate``, ``check_substitutable``,
    ``check_composition``) found a counterexample. The fields are those of the
    violation it found; ``values`` also summarize the shrunk generated inputs,
    ``evidence`` carries the seed and how to reproduce; ``violation`` is the
    underlying ContractViolation (None for a disagreement), ``result`` the
    run's figures."""

    kind = "validation"
    # set by modpact.validation when it raises the failure
    violation: ContractViolation | None
    result: Any
    inputs: dict[str, Any]
