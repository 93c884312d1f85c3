"""HTML: one self-contained page (no network, no scripts), the blamed module
highlighted in the graph, consequences marked, histograms as inline SVG,
contracts as written; tags balance."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from conftest import FAULTY

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "embed", "source", "track", "wbr"}
SVG_EMPTY = {"rect", "line", "path", "circle"}


class _Balance(HTMLParser):
    """Every opened element closes, in order (catches unescaped text and typos)."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def parse(page: str) -> _Balance:
    p = _Balance()
    p.feed(page)
    p.close()
    assert not p.errors, p.errors[:5]
    assert not p.stack, p.stack
    return p


def test_page_is_self_contained_and_well_formed(faulty_report, tmp_path):
    path = tmp_path / "report.html"
    page = faulty_report.to_html(path)
    assert path.read_text() == page
    for banned in ("http://", "https://", "<script", "<link", "src=", "@import", "url(http"):
        assert banned not in page, banned
    parse(page)


def test_blamed_module_highlighted_and_consequences_marked(faulty_report):
    tags = parse(faulty_report.to_html()).tags
    nodes = {a["data-module"]: a["class"].split() for t, a in tags if t == "g" and "node" in a.get("class", "")}
    assert nodes[FAULTY] == ["node", "blamed"]
    consequences = {m for m, cls in nodes.items() if "consequence" in cls}
    expected = {v.where for v in faulty_report.violations if not v.root}
    assert consequences == expected - {FAULTY}
    assert "stem.0" in nodes and "consequence" not in nodes["stem.0"] and "blamed" not in nodes["stem.0"]
    # module table: the blamed row
    rows = {a["data-module"]: a.get("class", "") for t, a in tags if t == "tr" and "data-module" in a}
    assert rows[FAULTY] == "blamed" and rows["fc"] == "consequence" and rows["stem.0"] == ""


def test_verdict_root_card_hint_and_histograms(faulty_report):
    page = faulty_report.to_html()
    assert f'<div id="verdict" class="verdict failed">{faulty_report.headline()}</div>' in page
    assert f"blaming {FAULTY} (its preconditions held)" in page
    assert "Repair hint:</b> replace or retrain layer1.conv2" in page
    svgs = re.findall(r'<svg class="histogram".*?</svg>', page, flags=re.S)
    assert svgs, "no histogram"
    root_svg = svgs[0]
    assert '<rect class="bar nonfinite"' in root_svg and f"NaN: {faulty_report.root_cause.histogram.nan}" in root_svg
    n_bars = len(re.findall(r'<rect class="bar"', root_svg))
    assert 0 < n_bars <= 24


def test_contracts_as_written_with_the_violated_ones_marked(faulty_report):
    page = faulty_report.to_html()
    section = page[page.index("<h2>Contracts as written</h2>") :]
    assert "input: &quot;b 1 8 8&quot;, dtype=float32, range=(0, 1)" in section
    row = re.search(
        r'<tr class="violated"><td>ensures</td><td class="cname mono">in_range\(result, -10000.0, '
        r'10000.0\)</td><td class="mono dim">tests/reports/conftest.py:\d+</td>',
        section,
    )
    assert row, "the violated postcondition of layer1.conv2 is not marked"
    assert '<tr class=""><td>interface input</td>' in section  # stem.0's interface held


def test_clean_report_page(clean_report):
    page = clean_report.to_html()
    parse(page)
    assert '<div id="verdict" class="verdict ok">OK: no contract violations' in page
    assert 'class="node blamed"' not in page and "Root cause" not in page


def test_input_data_is_the_blamed_node(input_blame_report):
    tags = parse(input_blame_report.to_html()).tags
    blamed = [a["data-module"] for t, a in tags if t == "g" and "blamed" in a.get("class", "")]
    assert blamed == ["the input data"]
