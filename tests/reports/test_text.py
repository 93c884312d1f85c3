"""The terminal renderer (rich): verdict, root cause with blame, consequence
tree by module hierarchy, evidence, counts, repair hint."""

from __future__ import annotations

import io
import re

from conftest import FAULTY
from rich.console import Console

from modpact.runtime.render.text import sparkline
from modpact.runtime.report import Histogram

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_faulty_report_text_names_root_blame_evidence_and_hint(faulty_report):
    text = faulty_report.render_text()
    lines = text.splitlines()
    assert lines[0] == faulty_report.headline()
    assert lines[0].startswith(
        "FAILED: 44 violation(s); root cause: postcondition in_range(result, -10000.0, 10000.0)"
        " at layer1.conv2 in step 0 (the same root cause in 2 calls)"
    )
    assert (
        f"root cause: {FAULTY}: postcondition in_range(result, -10000.0, 10000.0) on result (Conv2d, step 0, "
        "forward)  x2 in steps 0-1" in text
    )
    assert f"blaming {FAULTY} (its preconditions held)" in text
    assert "first_value: nan" in text
    assert "repair hint: replace or retrain layer1.conv2 against its interface and contracts" in text
    assert re.search(r"values: \[-?[\d.e+-]+ \.\. [\d.e+-]+\] \|[ ▁▂▃▄▅▆▇█]+\| nan=\d+", text)
    assert not ANSI.search(text)


def test_consequences_form_a_tree_following_the_module_hierarchy(faulty_report):
    text = faulty_report.render_text()
    block = text[text.index("consequences (") : text.index("repair hint")]
    lines = block.splitlines()
    # layer2 is a node; its children (conv1, shortcut -> 0, 1) sit one level deeper
    depth = {}
    for line in lines[1:]:
        m = re.match(r"^([│ ├└─]*)(\S+)", line)
        if m:
            depth.setdefault(m.group(2), len(m.group(1)))
    assert depth["layer2"] < depth["conv1"] < depth["0"], block
    assert depth["layer1"] == depth["layer2"] == depth["fc"], block
    assert "fc  in_range(result, -10000.0, 10000.0) x2, not_dead x2, finite(output) x2" in block


def test_per_module_and_contract_counts_table(faulty_report):
    text = faulty_report.render_text()
    assert "violations per module: " in text
    for g in faulty_report.groups():
        row = [ln for ln in text.splitlines() if ln.startswith(f"│ {g.module} ") and f" {g.contract} " in ln]
        assert row, f"no table row for {g.module} {g.contract}"
        assert f"│ {g.count:>5} │" in row[0]


def test_color_output_has_ansi_codes_and_str_has_none(faulty_report):
    assert ANSI.search(faulty_report.render_text(color=True))
    assert ANSI.sub("", faulty_report.render_text(color=True)).splitlines()[0] == faulty_report.headline()
    assert str(faulty_report) == faulty_report.render_text()


def test_print_goes_to_the_given_console(faulty_report):
    buf = io.StringIO()
    faulty_report.print(Console(file=buf, width=80, no_color=True))
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80  # a terminal's width wraps
    assert " ".join(out.split()).startswith(faulty_report.headline())


def test_clean_report_text(clean_report):
    text = clean_report.render_text()
    assert text.splitlines()[0] == "OK: no contract violations in 2 step(s), 2 call(s), 86 checks"
    assert "root cause" not in text and "repair hint" not in text


def test_input_data_is_blamed_and_the_hint_says_so(input_blame_report):
    text = input_blame_report.render_text()
    assert "blaming the input data (the model's inputs broke the precondition)" in text
    assert "repair hint: check the data fed to stem.0" in text


def test_contract_error_hint_points_at_the_contract(contract_error_report):
    root = contract_error_report.root_cause
    assert root.kind == "contract-error" and root.blame == "the contract broken"
    text = contract_error_report.render_text()
    assert "repair hint: fix the contract broken (declared at tests/reports/conftest.py:" in text
    assert "AttributeError" in text


def test_user_text_is_not_taken_as_rich_markup(faulty_report):
    rep = faulty_report.model_copy(deep=True)
    rep.violations[0].evidence["note"] = "[bold red]not markup[/bold red] [link=x]y[/link]"
    assert "[bold red]not markup[/bold red] [link=x]y[/link]" in rep.render_text()


def test_sparkline():
    h = Histogram(lo=0.0, hi=1.0, counts=[0, 1, 8], nan=3)
    assert sparkline(h) == "[0 .. 1] | ▁█| nan=3"
    assert sparkline(Histogram(lo=0.0, hi=0.0, counts=[], posinf=2)) == "no finite values posinf=2"
