"""JUnit XML for CI systems: one test case per contract (module x contract),
a failure for each violated one (an error when the contract itself raised),
its message collapsed with counts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from modpact.runtime.records import ViolationGroup
from modpact.runtime.render.common import Facts, clean, evidence_lines, facts

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["render_junit"]

_NOT_XML = re.compile("[\ufffe\uffff]")  # not characters in XML 1.0 (the controls are common.clean's)


def _clean(text: str) -> str:
    """Control characters (which XML 1.0 cannot hold, and which CI pages would
    show raw) and the two non-characters written as ``\\u001f``."""
    text = clean(text)
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _NOT_XML.search(text) else text


def _details(report: DiagnosisReport, f: Facts, g: ViolationGroup) -> str:
    v = g.first
    lines = [
        f"{g.count} violation(s) of {g.contract} at {g.module} in step(s) {g.steps}; {g.roots} root(s)",
        f"first: {v.kind} {v.check} on {v.tensor} (step {v.step}, {v.phase})",
        v.blame_sentence(),
    ]
    located = v.located_text()
    if located:
        lines.append(located)
    if v.declared_at:
        lines.append(f"declared at {v.declared_at}")
    lines += [f"{k}: {x}" for k, x in evidence_lines(v)]
    if not v.root and v.caused_by is not None and 0 <= v.caused_by < len(report.violations):
        r = report.violations[v.caused_by]
        lines.append(f"consequence of the root cause at {r.where}: {r.kind} {r.check} (step {r.step})")
    if f.hint:
        lines.append(f"repair hint: {f.hint}")
    return "\n".join(lines)


def render_junit(report: DiagnosisReport) -> str:
    f = facts(report)
    groups = {(g.module, g.contract): g for g in f.groups}
    cases: dict[tuple[str, str], None] = {}  # an ordered set
    for mc in report.contracts:
        cases.update(dict.fromkeys((mc.module, name) for name in mc.names()))
    cases.update(dict.fromkeys(groups))
    if not cases:  # a report without contract records: the run itself is the test
        cases = {("<model>", "monitored run"): None}
    failures = sum(1 for k in cases if k in groups and groups[k].first.kind != "contract-error")
    errors = sum(1 for k in cases if k in groups and groups[k].first.kind == "contract-error")
    name = _clean(f"modpact.{report.model or 'model'}")
    suites = ET.Element("testsuites", name="modpact", tests=str(len(cases)), failures=str(failures), errors=str(errors))
    suite = ET.SubElement(
        suites, "testsuite", name=name, tests=str(len(cases)), failures=str(failures), errors=str(errors), skipped="0"
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("steps", report.steps),
        ("calls", report.calls),
        ("checks", report.checks),
        ("violations", len(report.violations)),
        ("format_version", report.format_version),
    ):
        ET.SubElement(props, "property", name=k, value=str(v))
    for module, contract in cases:
        case = ET.SubElement(suite, "testcase", classname=_clean(f"{name}.{module}"), name=_clean(contract))
        g = groups.get((module, contract))
        if g is None:
            continue
        tag = "error" if g.first.kind == "contract-error" else "failure"
        head = f"{g.count} violation(s): {g.first.kind} {g.first.check} at {module}; {g.first.blame_sentence()}"
        el = ET.SubElement(case, tag, message=_clean(head), type=_clean(g.first.kind))
        el.text = _clean(_details(report, f, g))
    if report.notes:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(report.notes))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
