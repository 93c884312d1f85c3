"""Reading a saved report (``DiagnosisReport.from_json`` / ``load``): what
is accepted and what is rejected, with the field named.

A report file may be broken or hostile. In order: the text must be JSON
(``SpecError`` with the line and column), nested at most 64 levels, with
integers that fit in 64 bits (``interfaces.jsonread``); an object of format
version 1 (``FormatVersionError``); every field of the schema's type
(pydantic; ``SpecError`` naming up to five fields); and consistent where the
renderers rely on it (``check_report``): ``caused_by`` is the index of a
violation, histogram counts are not negative and its bounds finite, a
contract's ``interface`` is an interface document. A report that loads renders, in every renderer.
Nothing in the file is executed.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from modpact.errors import FormatVersionError, SpecError
from modpact.interfaces.interface import Interface
from modpact.interfaces.jsonread import parse_json, read_text

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["REPORT_FORMAT_VERSION", "report_document", "check_report", "report_text"]

REPORT_FORMAT_VERSION = 1


def report_document(text: Any) -> dict[str, Any]:
    """The parsed report document, its version checked (not yet its fields)."""
    data = parse_json(text, "report", invalid="report is not valid JSON")
    if not isinstance(data, dict):
        raise SpecError(f"report: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if type(version) is not int or version != REPORT_FORMAT_VERSION:
        shown = repr(version) if isinstance(version, (int, float, str, bool)) or version is None else type(version)
        raise FormatVersionError(
            f"report format_version {shown} is not supported; this modpact reads version {REPORT_FORMAT_VERSION}"
        )
    return data


def check_report(report: DiagnosisReport) -> None:
    """What the schema cannot say: ``SpecError`` naming the first field that
    a renderer could not show truthfully."""
    n = len(report.violations)
    for i, v in enumerate(report.violations):
        if v.caused_by is not None and not 0 <= v.caused_by < n:
            raise SpecError(
                f"invalid report field(s): violations[{i}].caused_by: {v.caused_by} is not the index of a "
                f"violation (the report has {n})"
            )
        h = v.histogram
        if h is not None:
            for name in ("lo", "hi", "bound_lo", "bound_hi"):
                x = getattr(h, name)
                if x is not None and not math.isfinite(x):  # JSON cannot hold it: saved, it would not load
                    raise SpecError(f"invalid report field(s): violations[{i}].histogram.{name}: {x} is not finite")
            for name in ("nan", "posinf", "neginf"):
                if getattr(h, name) < 0:
                    raise SpecError(f"invalid report field(s): violations[{i}].histogram.{name}: a count below 0")
            if any(c < 0 for c in h.counts):
                raise SpecError(f"invalid report field(s): violations[{i}].histogram.counts: a count below 0")
    checked: set[str] = set()  # modules of one kind share their interface: each distinct one is built once
    for i, mc in enumerate(report.contracts):
        if mc.interface is None:
            continue
        key = json.dumps(mc.interface, sort_keys=True, default=repr)
        if key in checked:
            continue
        try:
            Interface.from_dict(mc.interface)
        except SpecError as e:
            raise SpecError(f"invalid report field(s): contracts[{i}].interface: {e}") from None
        checked.add(key)


def report_text(path: Any) -> str:
    """The text of a report file (``LoadError`` when it cannot be read)."""
    return read_text(path, "report")
