"""1,000 violations collapse by (module, contract) with counts in every renderer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest


@pytest.fixture(scope="module")
def big(big_report):
    assert len(big_report.violations) == 1000
    return big_report


def test_groups(big):
    groups = big.groups()
    assert [(g.module, g.contract, g.count, g.roots) for g in groups] == [
        ("body.0", "finite(output)", 250, 250),
        ("body.2", "finite(output)", 250, 0),
        ("body.4", "finite(output)", 250, 0),
        ("head", "finite(output)", 250, 0),
    ]
    assert groups[0].steps == "0-249"


def test_text_stays_short(big):
    text = big.render_text()
    assert len(text.splitlines()) < 40, text
    assert text.count("root cause: body.0") == 1
    assert "x250 in steps 0-249" in text
    assert "head  finite(output) x250" in text
    assert "(the same root cause in 250 calls)" in text.splitlines()[0]


def test_html_stays_small(big):
    page = big.to_html()
    assert len(page) < 60_000
    assert page.count('<tr class="group">') == 4
    assert '<td class="num">250</td>' in page


def test_junit_has_one_case_per_contract_with_counts(big):
    root = ET.fromstring(big.to_junit())
    cases = root.find("testsuite").findall("testcase")
    assert len(cases) == sum(len(mc.names()) for mc in big.contracts)
    failures = [c.find("failure") for c in cases if c.find("failure") is not None]
    assert len(failures) == 4
    assert all(f.get("message").startswith("250 violation(s)") for f in failures)


def test_many_distinct_root_causes_are_cut_with_a_count(big):
    # the same report with 60 more distinct (module, contract) roots (61 with
    # body.0's): the text and the page show 10 in full and count the rest
    rep = big.model_copy(deep=True)
    for i, v in enumerate(rep.violations[:60]):
        v.module, v.root, v.caused_by = f"m{i}", True, None
    text = rep.render_text()
    assert text.count("\nroot cause: ") == 10
    assert "... and 51 more root cause(s) at" in text
    assert "+51 more root causes" in rep.to_html()
    assert text.splitlines()[0].endswith("(+60 independent root cause(s))")
