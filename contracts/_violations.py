"""Building violations with blame (Findler & Felleisen), and reporting them per mode."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from modpact.errors import (
    ContractError,
    ContractViolation,
    InterfaceViolation,
    PostconditionViolation,
    PreconditionViolation,
    Problem,
)
from modpact.interfaces.summary import describe, summarize

from ._boundary import Boundary
from ._modes import _GLOBAL_MODE, ContractWarning, _record
from .condition import Condition

_PKG = os.path.dirname(os.path.abspath(__file__))
_TORCH_NN = os.sep + os.path.join("torch", "nn") + os.sep


def caller_party(guard: Boundary, reads: Sequence[str] = ()) -> str:
    """Who is blamed for a bad input: the producer hint, else the caller."""
    p = guard.producer
    if isinstance(p, str):
        return p
    if p:
        for n in reads:
            if n in p:
                return p[n]
        if "*" in p:
            return p["*"]
    return f"the caller of {guard.name}"


def _bindings(b: Any) -> dict[str, Any]:
    if b is None:
        return {}
    if hasattr(b, "as_dict"):
        return b.as_dict()
    return dict(b)


def _headline(guard: Boundary, what: str, cond: Condition) -> str:
    return f"{guard.name}: {what} failed: {cond.why}" if cond.why else f"{guard.name}: {what} failed"


def _values(cond: Condition, env: Mapping[str, Any]) -> dict[str, str]:
    try:
        return cond.values(env)
    except Exception:  # summaries are best effort
        return {}


def condition_violation(
    guard: Boundary, cond: Condition, env: Mapping[str, Any], bindings: Any, *, post: bool, pre_failed: bool = False
) -> ContractViolation:
    try:
        outcome = cond.check(env)
        values, evidence = outcome.values, outcome.evidence
        expected, actual = outcome.expected, outcome.actual
    except Exception as e:  # the evidence pass itself broke: still report the failure
        values, evidence = _values(cond, env), {"evidence_error": f"{type(e).__name__}: {e}"}
        expected = actual = None
    evidence = _compact(evidence, values)
    common: dict[str, Any] = dict(
        module=guard.name,
        contract=cond.text,
        values=values,
        evidence=evidence,
        bindings=_bindings(bindings),
        declared_at=cond.declared_at,
        expected=expected,
        actual=actual,
    )
    if not post:
        return PreconditionViolation(
            _headline(guard, "precondition", cond), blame=caller_party(guard, cond.reads), **common
        )
    if pre_failed:
        return PostconditionViolation(
            _headline(guard, "postcondition", cond),
            blame=caller_party(guard),
            blame_reason="its preconditions failed first",
            **common,
        )
    return PostconditionViolation(
        _headline(guard, "postcondition", cond), blame=guard.name, blame_reason="its preconditions held", **common
    )


_SUMMARY_KEYS = {"min": "min=", "max": "max=", "nan": "nan=", "inf": "inf="}


def _compact(evidence: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """Drop evidence a value summary already shows (min/max, nan/inf counts)."""
    if not evidence or len(values) != 1:
        return evidence
    shown = next(iter(values.values()))
    out = {}
    for k, v in evidence.items():
        if k in _SUMMARY_KEYS and (_SUMMARY_KEYS[k] in shown or v == 0 or v != v or k in ("min", "max")):
            continue
        out[k] = v
    return out


def contract_error(
    guard: Boundary, cond: Condition, env: Mapping[str, Any], error: BaseException, *, post: bool
) -> ContractError:
    what = "postcondition" if post else "precondition"
    reason = cond.why or cond.text
    if isinstance(error, TypeError) and str(error).startswith("returned "):
        actual = str(error)[len("returned ") :]
    else:
        actual = f"raised {type(error).__name__}: {error}"
    err = ContractError(
        f"{guard.name}: {what} could not be evaluated: {reason}",
        module=guard.name,
        blame="the contract",
        blame_reason="not the module or its caller",
        contract=cond.text,
        expected="a boolean",
        actual=actual,
        values=_values(cond, env),
        declared_at=cond.declared_at,
    )
    err.original = error
    return err


_META_FIELDS = frozenset({"shape", "dtype", "device", "type", "labels", "missing", "unexpected", "count"})


def interface_violation(
    guard: Boundary,
    problems: Sequence[Problem],
    bindings: Any,
    *,
    side: str,
    pre_failed: bool = False,
    values: Mapping[str, Any] | None = None,
) -> InterfaceViolation:
    iface = guard.interface
    iname = getattr(iface, "name", None)
    label = f" {iname!r}" if iname else ""
    if side == "input":
        # the argument a problem is about: inputs.hx[0] and inputs.batch.ids are about hx and batch
        args = [p.tensor.split(".", 1)[-1].partition("[")[0].partition(".")[0] for p in problems]
        blame, reason = caller_party(guard, args), None
        headline = f"{guard.name}: input does not match interface{label}"
    elif pre_failed:
        blame, reason = caller_party(guard), "its inputs or preconditions failed first"
        headline = f"{guard.name}: output does not match interface{label}"
    else:
        blame, reason = guard.name, "its inputs and preconditions held"
        headline = f"{guard.name}: output does not match interface{label}"
    slow = any(p.field not in _META_FIELDS for p in problems)
    prefix = "inputs" if side == "input" else "outputs"
    shown = {f"{prefix}.{k}": (summarize(v) if slow else describe(v)) for k, v in (values or {}).items()}
    return InterfaceViolation(
        headline,
        module=guard.name,
        blame=blame,
        blame_reason=reason,
        problems=problems,
        values=shown,
        bindings=_bindings(bindings),
        side=side,
        declared_at=getattr(guard, "declared_at", None),
    )


_WARNED: dict = {}  # warn mode's own registry of shown warnings (Python's grows by one per distinct message)
_WARNED_MAX = 1024


def report(guard: Boundary, violation: ContractViolation) -> None:
    """Raise, warn or record ``violation`` according to the guard's mode."""
    __tracebackhide__ = True
    mode = guard.mode or _GLOBAL_MODE[0]
    if mode == "raise":
        raise violation from None
    if mode == "warn":
        frame = _user_frame()
        if len(_WARNED) > _WARNED_MAX:  # bounded: a message seen long ago may show again
            _WARNED.clear()
        warnings.warn_explicit(
            str(violation),
            ContractWarning,
            frame.f_code.co_filename,
            frame.f_lineno,
            module=frame.f_globals.get("__name__", "<unknown>"),
            registry=_WARNED,
            module_globals=frame.f_globals,
        )
    elif mode == "record":
        _record(violation, guard.violations)


def _user_frame() -> Any:
    """The first frame outside modpact's contracts and torch.nn (where the call came from)."""
    f: FrameType = sys._getframe(2)
    while f.f_back is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_PKG) or _TORCH_NN in fn):
            return f
        f = f.f_back
    return f
