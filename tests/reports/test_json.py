"""JSON: a real report loads back equal, histograms and contracts included;
older files without the added fields load; bad files name what is wrong."""

from __future__ import annotations

import json

import pytest
from conftest import FAULTY

from modpact.errors import FormatVersionError, SpecError
from modpact.runtime import DiagnosisReport


def test_round_trip_keeps_everything(faulty_report, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(faulty_report.to_json())
    again = DiagnosisReport.load(path)
    assert again == faulty_report
    assert again.root_cause.module == FAULTY
    assert again.render_text() == faulty_report.render_text()
    assert again.to_html() == faulty_report.to_html()
    assert again.to_junit() == faulty_report.to_junit()


def test_the_root_carries_a_histogram_of_the_offending_tensor(faulty_report):
    root = faulty_report.root_cause
    h = root.histogram
    assert h is not None
    # the conv output is 16x16x8x8; every element is counted once: finite bins + NaN
    assert h.total == 16 * 16 * 8 * 8
    assert h.nan == root.evidence["failing"] > 0
    assert h.lo == pytest.approx(root.evidence["min"]) and h.hi == pytest.approx(root.evidence["max"])
    assert h.bound_lo == -1e4 and h.bound_hi == 1e4


def test_edges_types_and_contracts_as_written(faulty_report):
    assert ("the input data", "stem.0") in faulty_report.edges
    assert ("layer1.conv2", "layer1.bn2") in faulty_report.edges
    assert faulty_report.module_types[FAULTY] == "Conv2d"
    by_module = {mc.module: mc for mc in faulty_report.contracts}
    stem = by_module["stem.0"]
    assert stem.interface["name"] == "digits-image"
    assert stem.interface["inputs"]["input"]["range"] == [0, 1]
    conv = by_module[FAULTY]
    assert [c.text for c in conv.ensures] == ["in_range(result, -10000.0, 10000.0)", "not_dead"]
    assert conv.ensures[0].declared_at.startswith("tests/reports/conftest.py:")
    assert conv.defaults == ["finite(output)", "dtype stable"]
    assert by_module["<model>"].defaults == ["finite(input)", "finite(output)", "dtype stable"]


def test_a_report_without_the_added_fields_still_loads(faulty_report):
    data = json.loads(faulty_report.to_json())
    for key in ("module_types", "edges", "contracts"):
        del data[key]
    for v in data["violations"]:
        del v["histogram"]
    old = DiagnosisReport.from_json(json.dumps(data))
    assert old.root_cause.module == FAULTY
    assert old.contracts == [] and old.edges == []
    assert "root cause: layer1.conv2" in old.render_text()
    assert "Module graph" in old.to_html()
    assert "<testcase" in old.to_junit()


@pytest.mark.parametrize(
    "text, error, message",
    [
        (
            '{"format_version": 2}',
            FormatVersionError,
            "report format_version 2 is not supported; this modpact reads version 1",
        ),
        ('{"steps": 1}', FormatVersionError, "report format_version None is not supported"),
        (
            '{"format_version": 1, "steps": "many"}',
            SpecError,
            "invalid report field(s): steps: Input should be a valid integer",
        ),
        (
            '{"format_version": 1, "violations": [{"step": 0}]}',
            SpecError,
            "invalid report field(s): violations[0].call: Field required",
        ),
        (
            '{"format_version": 1, "contracts": [{"module": "a", "requires": [{"why": "x"}]}]}',
            SpecError,
            "contracts[0].requires[0].text: Field required",
        ),
        ('{"format_version": 1,\n "steps": }', SpecError, "report is not valid JSON: Expecting value at line 2 column"),
        ("[1, 2]", SpecError, "report: expected a JSON object, got list"),
    ],
    ids=["version", "no-version", "field-type", "nested-field", "contracts-field", "bad-json", "not-object"],
)
def test_bad_files_name_what_is_wrong(text, error, message):
    with pytest.raises(error) as info:
        DiagnosisReport.from_json(text)
    assert message in str(info.value)
