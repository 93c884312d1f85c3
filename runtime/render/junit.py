"""JUnit XML for CI systems: one test case per contract (module x contract),
a failure for each violated one (an error when the contract itself raised),
its message collapsed with counts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from modpact.runtime.records import ViolationGroup
from modpact.runtime.render.common import evidence_lines

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["render_junit"]

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    """XML 1.0 cannot hold control characters: write them as ``\\u001f``."""
    return _INVALID_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _details(report: DiagnosisReport, g: ViolationGroup) -> str:
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
    hint = report.repair_hint()
    if hint:
        lines.append(f"repair hint: {hint}")
    return "\n".join(lines)


def render_junit(report: DiagnosisReport) -> str:
    groups = {(g.module, g.contract): g for g in report.groups()}
    cases: list[tuple[str, str]] = []
    for mc in report.contracts:
        cases += [(mc.module, name) for name in mc.names()]
    cases += [k for k in groups if k not in set(cases)]
    cases = list(dict.fromkeys(cases))
    if not cases:  # a report without contract records: the run itself is the test
        cases = [("<model>", "monitored run")]
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
        el = ET.SubElement(case, tag, message=_clean(head), type=g.first.kind)
        el.text = _clean(_details(report, g))
    if report.notes:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(report.notes))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
