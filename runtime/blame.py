"""Whom a violation blames and why, saying only what was checked.

Blame follows docs/contracts.md (Findler-Felleisen). What this module adds
is the wording of the reasons, so that each states a fact the run checked,
and how the root cause was located:

* ``LOCATED_RERUN``: the failing call ran again, unchanged (same parameters,
  buffers, inputs, modes and RNG state), with every check evaluated at once;
  a non-finite value is traced back to the operation where it began
  (``provenance.py``), so the blame lands on that operation's module even
  when the value was first *seen* in a later module;
* ``LOCATED_RUN``: the run's own checks (device flags, host-side checks):
  the first failed check in execution order, nothing more;
* ``NOT_LOCATED``: a check of the model's outputs failed and the call could
  not be run again as it was (the report says why): which module made the
  value is not known.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modpact.interfaces import values as V
from modpact.interfaces.summary import describe, summarize
from modpact.runtime.histogram import value_histogram
from modpact.runtime.provenance import Origin
from modpact.runtime.records import INPUT_DATA
from modpact.runtime.state import Slot

__all__ = [
    "LOCATED_RERUN",
    "LOCATED_RUN",
    "NOT_LOCATED",
    "RERUN_NOTE",
    "range_evidence",
    "blame_in_rerun",
    "origin_evidence",
    "origin_reason",
    "exception_blame",
]

LOCATED_RERUN = "re-run"
LOCATED_RUN = "run"
NOT_LOCATED = "not located"
RERUN_NOTE = "checked in a re-run of the call"


def range_evidence(slot: Slot, t: torch.Tensor) -> dict[str, Any]:
    """Evidence of a range or finite check on ``t`` (synchronous): which
    elements fail, their values, and for a failure a summary and histogram.
    Sparse and nested tensors give the evidence of their stored values."""
    shown = t
    t, _ = V.stored_values(t)
    if slot.lo is None and slot.hi is None:
        ev = V.finite_evidence(t)
    else:
        ev = V.range_evidence(t, slot.lo, slot.hi)
        if slot.finite and t.is_floating_point():
            fin = V.finite_evidence(t)
            if fin.get("failing"):
                ev = fin
    if ev.get("failing"):
        ev["value"] = summarize(shown)
        ev["histogram"] = value_histogram(t, slot.lo, slot.hi)
    return ev


def origin_reason(origin: Origin) -> str:
    """Why the module where a non-finite value began is blamed (checked facts only)."""
    at = f"{origin.op}" + (f" ({origin.site})" if origin.site else "")
    if origin.kind == "parameter":
        used = at if origin.owner == origin.module else f"{at} in {origin.module or '<model>'}"
        return f"its parameter {origin.name} holds {origin.operand}; {used} used it ({RERUN_NOTE})"
    if origin.kind == "computed":
        return f"{at} in its forward computed {origin.result} from finite operands ({RERUN_NOTE})"
    if origin.kind == "operand":
        return (
            f"{at} in its forward used {origin.operand}, a tensor that is not a parameter, buffer or input "
            f"of the model and that no traced operation produced ({RERUN_NOTE})"
        )
    return f"the model input {origin.name} holds {origin.operand} ({RERUN_NOTE})"


def origin_evidence(origin: Origin) -> dict[str, Any]:
    ev: dict[str, Any] = {"operation": origin.op, "in": f"{origin.module or '<model>'} ({origin.module_type})"}
    if origin.site:
        ev["at"] = origin.site
    if origin.operand:
        ev["operand"] = (
            f"{origin.owner or '<model>'}.{origin.name} = " if origin.kind == "parameter" else ""
        ) + origin.operand
    ev["result"] = origin.result
    return ev


def blame_in_rerun(
    slot: Slot, origin: Origin | None, blame: str, reason: str
) -> tuple[str, str, tuple[Slot, str, str] | None]:
    """Whom a non-finite value that a check found in the re-run blames.

    Returns (blame, reason, cause): ``cause`` is the (slot, blame, reason)
    of a record to make for the value's origin when it lies outside the
    checked module (this check then follows from it)."""
    if slot.check == "finite(input)" and slot.kind == "precondition" and not slot.module:
        return INPUT_DATA, f"the model's input {slot.tensor} held non-finite values ({RERUN_NOTE})", None
    if origin is None:
        return (
            blame,
            (
                f"{slot.tensor} held non-finite values that no traced operation produced ({RERUN_NOTE}); "
                "where they began is not known"
            ),
            None,
        )
    if origin.kind == "input":
        return INPUT_DATA, f"the value began in the model input {origin.name}: {origin.describe()} ({RERUN_NOTE})", None
    party = origin.blamed or "<model>"
    why = origin_reason(origin)
    if origin.blamed == slot.module and slot.kind == "postcondition":
        return party, why, None
    cause = Slot(origin.blamed, "postcondition", "finite(forward)", f"{origin.op} result", declared_at=None)
    return (
        party,
        f"{slot.tensor} held non-finite values that began in {origin.describe()} ({RERUN_NOTE})",
        (cause, party, why),
    )


def _input_of(t: torch.Tensor, inputs: list[tuple[str, torch.Tensor]]) -> str | None:
    """The model input ``t`` is, or is a view of (models reshape their
    inputs, ``input_ids.view(-1, n)``, before they use them)."""
    base = t._base if t._base is not None else t
    for name, x in inputs:
        if x is t or x is base or (x._base is not None and x._base is base):
            return name
    return None


def exception_blame(
    exc: BaseException, modules: dict[int, tuple[str, nn.Module]], inputs: list[tuple[str, torch.Tensor]]
) -> tuple[str, str, str, dict[str, Any]]:
    """A forward that raised: the innermost module of the model on the
    traceback, and whom to blame: the input data when the error shows bad
    input that came from the model's inputs (ids out of an Embedding's
    range), else that module. Returns (module path, blame, reason, evidence)."""
    path, mod, frame = "", None, None
    tb = exc.__traceback__
    while tb is not None:
        this = tb.tb_frame.f_locals.get("self")
        if this is not None and id(this) in modules:
            path, mod = modules[id(this)]
            frame = tb.tb_frame
        tb = tb.tb_next
    error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    ev: dict[str, Any] = {"error": error}
    where = path or "<model>"
    if isinstance(mod, nn.Embedding) and frame is not None:
        ids = frame.f_locals.get("input")
        if isinstance(ids, torch.Tensor) and ids.numel() and not ids.is_floating_point():
            lo, hi = int(ids.min()), int(ids.max())
            n = mod.num_embeddings
            ev["ids"] = f"{describe(ids)} min={lo} max={hi}; valid ids are 0..{n - 1}"
            if lo < 0 or hi >= n:
                name = _input_of(ids, inputs)
                if name is not None:
                    return (
                        path,
                        INPUT_DATA,
                        (
                            f"the model input {name} holds ids from {lo} to {hi}, "
                            f"outside {where}'s 0..{n - 1} (checked when it raised)"
                        ),
                        ev,
                    )
                return (
                    path,
                    f"the caller of {where}",
                    (
                        f"its input ids run from {lo} to {hi}, outside 0..{n - 1} (checked when it raised); they are "
                        "not a model input, so the code that made them is not known"
                    ),
                    ev,
                )
    return path, where, f"its forward raised {error}", ev
