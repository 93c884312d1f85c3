"""Any report (generated: odd module names, markup-like and XML-hostile text)
loads back equal from JSON and renders to balanced HTML, parseable JUnit XML
with one case per contract, and text whose first line is the headline."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from test_html import parse

from modpact.runtime.render.common import clean
from modpact.runtime.report import ConditionRecord, DiagnosisReport, Histogram, ModuleContracts, ViolationRecord

names = st.text(min_size=1, max_size=12)
texts = st.text(max_size=30)  # includes "<", "&", "]]>", control characters, "[bold]"
modules = st.sampled_from(["", "enc", "enc.0", "enc.1", "head", "a<b>&c", "x\x01y"])
hist = st.builds(
    lambda lo, w, counts, nan: Histogram(lo=lo, hi=lo + w, counts=counts, nan=nan),
    st.floats(-1e6, 1e6),
    st.floats(0, 1e6),
    st.lists(st.integers(0, 1000), max_size=24),
    st.integers(0, 50),
)
records = st.builds(
    ViolationRecord,
    step=st.integers(0, 5),
    call=st.integers(-1, 2),
    seq=st.integers(0, 100),
    phase=st.sampled_from(["forward", "backward", "step"]),
    module=modules,
    kind=st.sampled_from(["precondition", "postcondition", "interface", "contract-error", "gradient"]),
    check=texts,
    tensor=texts,
    blame=texts,
    blame_reason=texts,
    message=texts,
    evidence=st.dictionaries(  # integers of up to 64 bits: the loader rejects larger ones (docs/reports.md)
        names, st.one_of(texts, st.integers(-(2**64) + 1, 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False))
    ),
    histogram=st.one_of(st.none(), hist),
    root=st.booleans(),
)
contracts = st.builds(
    ModuleContracts,
    module=modules,
    type=texts,
    ensures=st.lists(st.builds(ConditionRecord, text=texts, declared_at=st.one_of(st.none(), texts)), max_size=3),
    defaults=st.lists(texts, max_size=2),
)


@st.composite
def reports(draw):
    violations = draw(st.lists(records, max_size=12))
    roots = [i for i, v in enumerate(violations) if v.root]
    for i, v in enumerate(violations):  # a consequence points at an earlier root, like assign_roots does
        earlier = [r for r in roots if r < i]
        if not v.root:
            v.caused_by = draw(st.sampled_from(earlier)) if earlier else None
            v.root = not earlier
    return DiagnosisReport(
        model=draw(texts),
        steps=draw(st.integers(0, 9)),
        calls=draw(st.integers(0, 9)),
        checks=draw(st.integers(0, 99)),
        modules_monitored=draw(st.lists(modules, unique=True, max_size=5)),
        violations=violations,
        notes=draw(st.lists(texts, max_size=2)),
        edges=draw(st.lists(st.tuples(modules, modules), max_size=6)),
        contracts=draw(st.lists(contracts, max_size=3)),
    )


def _visible(text: str) -> str:
    """Printable characters only: lines may wrap."""
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())


@settings(max_examples=60)
@given(reports())
def test_every_renderer_handles_any_report(report):
    assert DiagnosisReport.from_json(report.to_json()) == report
    text = report.render_text()
    assert _visible(text).startswith(_visible(clean(report.headline())))  # control characters shown as \u001f
    assert clean(text) == text  # nothing left that a terminal would act on
    page = report.to_html()
    parse(page)
    assert "<script" not in page
    root = ET.fromstring(report.to_junit())
    cases = root.find("testsuite").findall("testcase")
    keys = {(c.get("classname"), c.get("name")) for c in cases}
    assert len(keys) == len(cases)  # one case per (module, contract)
    n_bad = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    assert n_bad == len({(g.module, g.contract) for g in report.groups()})
