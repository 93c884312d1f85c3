"""Report files that are broken or hostile: each is refused at load with the
library's own error, naming the file and the field (``modpact report`` exits
2 with one line, never a traceback), or loads and renders in every renderer.
Strings from a report never reach a terminal, a page or a CI log as control
characters. (tests/fuzz/ tries random and mutated files; these are the cases
found by hand, each of which crashed before.)"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from modpact.cli import main
from modpact.errors import LoadError, SpecError
from modpact.runtime import DiagnosisReport
from modpact.runtime.records import ConditionRecord, ModuleContracts, ViolationRecord


def record(**kw) -> dict:
    v = dict(
        step=0,
        call=0,
        seq=0,
        module="enc.0",
        kind="postcondition",
        check="finite(output)",
        tensor="output",
        blame="enc.0",
        blame_reason="its preconditions held",
    )
    return {**v, **kw}


def doc(**kw) -> str:
    return json.dumps({"format_version": 1, "model": "M", "steps": 1, **kw})


def deep(n: int) -> str:
    return "[" * n + "]" * n


REFUSED = [
    ("digits", '{"format_version": 1, "steps": ' + "9" * 5000 + "}", "a number has more digits than Python converts"),
    ("nesting", '{"format_version": 1, "notes": ' + deep(100_000) + "}", "report: nested more than 64 levels deep"),
    (
        "deep-evidence",
        doc(violations=[record()]).replace('"blame_reason"', '"evidence": {"x": ' + deep(200) + '}, "blame_reason"'),
        "violations[0].evidence.x[0][0][0]",
    ),
    ("huge-int", doc(violations=[record(step=2**70)]), "violations[0].step: integer 1180591620717411303424 does not"),
    (
        "interface",
        doc(contracts=[{"module": "enc.0", "interface": {"inputs": 3}}]),
        "invalid report field(s): contracts[0].interface: Interface.from_dict: format_version None",
    ),
    (
        "interface-dims",
        doc(
            contracts=[
                {
                    "module": "enc.0",
                    "interface": {
                        "format_version": "1",
                        "kind": "Interface",
                        "name": "i",
                        "inputs": {"x": {"shape": "batch -5"}},
                        "outputs": {},
                    },
                }
            ]
        ),
        "contracts[0].interface: Interface.from_dict: inputs.x: TensorSpec(shape='batch -5'): dim '-5' is negative",
    ),
    (
        "caused-by",
        doc(violations=[record(), record(root=False, caused_by=7)]),
        "violations[1].caused_by: 7 is not the index of a violation (the report has 2)",
    ),
    (
        "negative-count",
        doc(violations=[record(histogram={"lo": 0, "hi": 1, "counts": [3, -100]})]),
        "violations[0].histogram.counts: a count below 0",
    ),
    (
        "infinite-bin",
        doc(violations=[record(histogram={"lo": 0, "hi": 1e999, "counts": [3]})]),
        "violations[0].histogram.hi: inf is not finite",
    ),
    ("surrogate", doc(model="\ud800"), "model: a string holds a lone surrogate"),
]


@pytest.mark.parametrize("name, text, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_at_load_with_the_field_named(name, text, message, tmp_path, capsys):
    path = tmp_path / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        DiagnosisReport.load(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"modpact report: error: {info.value}\n"


def test_a_file_that_is_not_utf8_or_not_a_file(tmp_path, capsys):
    path = tmp_path / "binary.json"
    path.write_bytes(b'{"model": "\xff"}')
    with pytest.raises(LoadError, match=r"binary.json: not UTF-8 text \(byte 0xff at offset 11\)"):
        DiagnosisReport.load(path)
    with pytest.raises(LoadError, match="is a directory"):
        DiagnosisReport.load(tmp_path)
    with pytest.raises(LoadError, match="no such file"):
        DiagnosisReport.load(tmp_path / "missing.json")
    assert main(["report", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_command_line_prints_no_traceback(tmp_path):
    """The console script itself, in a process of its own: exit 2, one line."""
    path = tmp_path / "deep.json"
    path.write_text('{"format_version": 1, "notes": ' + deep(100_000) + "}")
    out = subprocess.run(
        [sys.executable, "-m", "modpact", "report", str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"modpact report: error: {path}: report: nested more than 64 levels deep\n"


# -- files that load, and render --------------------------------------------------------------------------


def renders_everywhere(report: DiagnosisReport) -> str:
    text = report.render_text()
    assert text.splitlines()[0] == report.headline()
    assert report.headline() in report.to_html()
    ET.fromstring(report.to_junit())
    return text


def test_violations_with_no_root_marked_render_and_say_so(tmp_path, capsys):
    report = DiagnosisReport.from_json(doc(violations=[record(root=False), record(root=False, module="head")]))
    assert report.headline() == "FAILED: 2 violation(s); none is marked as a root cause"
    renders_everywhere(report)
    path = tmp_path / "no-root.json"
    path.write_text(report.to_json())
    assert main(["report", str(path), "--strict"]) == 1
    assert capsys.readouterr().out.startswith("FAILED: 2 violation(s); none is marked as a root cause\n")


def test_a_module_path_of_5000_segments(tmp_path):
    path = "." * 5000
    report = DiagnosisReport.from_json(
        doc(
            violations=[record(), record(module=path, root=False, caused_by=0)],
            modules_monitored=["enc.0", path],
            edges=[["enc.0", path]],
        )
    )
    text = renders_everywhere(report)
    # the consequence tree shows 16 levels at most; the rest of the path stays one node
    assert "consequences (1)" in text and "." * 4980 in text


# -- control characters from a report: shown as escapes by every renderer and by the command line -----------

PAYLOAD = "\x1b]0;pwned\x07\x1b[2J\x1b[1;31m\rOK\x9b2J\u202eevil"
SHOWN = "\\u001b]0;pwned\\u0007\\u001b[2J\\u001b[1;31m\\u000dOK\\u009b2J\\u202eevil"


@pytest.fixture
def hostile() -> DiagnosisReport:
    return DiagnosisReport(
        model=PAYLOAD,
        steps=1,
        violations=[
            ViolationRecord(**record(module=PAYLOAD, check=PAYLOAD, message=PAYLOAD, evidence={PAYLOAD: PAYLOAD})),
            ViolationRecord(**record(module=f"{PAYLOAD}.x", root=False, caused_by=0)),
        ],
        modules_monitored=[PAYLOAD],
        edges=[(PAYLOAD, f"{PAYLOAD}.x")],
        notes=[PAYLOAD],
        contracts=[ModuleContracts(module=PAYLOAD, type=PAYLOAD, ensures=[ConditionRecord(text=PAYLOAD)])],
    )


def _no_raw_controls(out: str) -> None:
    for ch in ("\x1b]", "\x07", "\x1b[2J", "\r", "\x9b", "\u202e"):
        assert ch not in out, repr(ch)


def test_terminal_shows_control_characters_as_escapes(hostile):
    plain = hostile.render_text()
    _no_raw_controls(plain)
    assert "\x1b" not in plain and f"root cause: {SHOWN}" in plain
    buf = io.StringIO()
    hostile.print(Console(file=buf, force_terminal=True, color_system="standard", width=200))
    _no_raw_controls(buf.getvalue())  # rich's own colours only
    assert SHOWN in buf.getvalue()


def test_html_shows_control_characters_as_escapes(hostile):
    page = hostile.to_html()
    _no_raw_controls(page)
    assert "\x1b" not in page and SHOWN.replace("\\u001b[1;31m", "") in page.replace("\\u001b[1;31m", "")


def test_junit_shows_control_characters_as_escapes(hostile):
    xml = hostile.to_junit()
    _no_raw_controls(xml)
    ET.fromstring(xml)
    assert SHOWN in xml


def test_command_line_messages_show_control_characters_as_escapes(hostile, tmp_path, capsys):
    path = tmp_path / "hostile.json"
    path.write_text(hostile.to_json())
    assert main(["report", str(path)]) == 0
    out, err = capsys.readouterr()
    _no_raw_controls(out)
    assert SHOWN in out and err == ""
    assert main(["report", str(tmp_path / f"{PAYLOAD}.json")]) == 2  # the name is the user's too
    err = capsys.readouterr().err
    _no_raw_controls(err)
    assert err.startswith(f"modpact report: error: no such file: {tmp_path}/{SHOWN}.json")
    with pytest.raises(SystemExit):
        main(["report", str(path), PAYLOAD])  # argparse's own message
    err = capsys.readouterr().err
    _no_raw_controls(err)
    assert f"unrecognized arguments: {SHOWN}" in err
