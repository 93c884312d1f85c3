"""The command line: ``modpact report`` / ``inspect`` / ``validate`` through
``python -m modpact`` (subprocess) and, for the table of bad inputs, through
``modpact.cli.main`` in-process (same code, no interpreter start per case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import FAULTY

from modpact.cli import main

MODEL_FILE = textwrap.dedent("""
    import torch
    from torch import nn

    import modpact as mp

    TINY = mp.Interface("tiny-head", inputs={"x": mp.TensorSpec("b 8", dtype="float32")},
                        outputs={"y": mp.TensorSpec("b 2", finite=True)})


    def build_model():
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        mp.guard(model[0], ensures=[mp.finite("result")], name="0")
        mp.guard(model[2], interface=TINY, name="2")
        return model


    not_a_model = 3


    def returns_int():
        return 1


    def raises():
        raise RuntimeError("boom")
""")

GUARD_LINE = next(i for i, line in enumerate(MODEL_FILE.splitlines(), 1) if 'mp.finite("result")' in line)


def run_cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}  # rich reads the terminal width from COLUMNS
    return subprocess.run(
        [sys.executable, "-m", "modpact", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def report_file(faulty_report, tmp_path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(faulty_report.to_json())
    return path


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "tiny_model.py"
    path.write_text(MODEL_FILE)
    return path


def test_report_renders_text_html_and_junit(report_file, faulty_report, tmp_path):
    html, junit = tmp_path / "out.html", tmp_path / "out.xml"
    out = run_cli("report", str(report_file), "--html", str(html), "--junit", str(junit))
    assert out.returncode == 0, out.stderr
    assert " ".join(out.stdout.split()).startswith(faulty_report.headline())
    assert f"root cause: {FAULTY}" in out.stdout
    assert html.read_text() == faulty_report.to_html()
    assert len(ET.parse(junit).getroot().find("testsuite").findall("testcase")) > 40
    strict = run_cli("report", str(report_file), "--strict", "--quiet")
    assert strict.returncode == 1 and strict.stdout == "" and strict.stderr == ""


def test_report_strict_on_a_clean_report_exits_0(clean_report, tmp_path, capsys):
    path = tmp_path / "clean.json"
    path.write_text(clean_report.to_json())
    assert main(["report", str(path), "--strict"]) == 0
    assert "OK: no contract violations" in capsys.readouterr().out


def test_inspect_prints_the_tree_and_exports_json(model_file, tmp_path):
    export = tmp_path / "contracts.json"
    out = run_cli("inspect", f"{model_file}:build_model", "--json", str(export), columns=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"Sequential ({model_file}:build_model): 2 guarded module(s) of 4"
    assert lines[1] == "0 (Linear)" and lines[2] == f"└── ensures finite(result)  ({model_file}:{GUARD_LINE})"
    assert "\n2 (Linear)\n└── interface tiny-head\n" in out.stdout
    assert "interface tiny-head" in out.stdout
    assert 'input x: "b 8", dtype=float32' in out.stdout and 'output y: "b 2", finite' in out.stdout
    assert "ensures finite(result)" in out.stdout
    doc = json.loads(export.read_text())
    assert doc["kind"] == "ModelContracts" and doc["model"] == "Sequential" and doc["object"] == "build_model"
    assert [m["module"] for m in doc["modules"]] == ["0", "2"]
    assert doc["modules"][1]["interface"]["name"] == "tiny-head"
    assert doc["modules"][0]["ensures"][0]["text"] == "finite(result)"


def test_inspect_a_module_path_and_the_default_object(model_file, capsys):
    assert main(["inspect", "modpact.demo:build"]) == 0
    assert "ModularModel (modpact.demo:build): 3 guarded module(s) of" in capsys.readouterr().out
    assert main(["inspect", str(model_file)]) == 0  # build_model is found by name
    assert "2 guarded module(s)" in capsys.readouterr().out


def test_usage_errors_exit_2():
    out = run_cli("report")
    assert out.returncode == 2 and "error: the following arguments are required: FILE.json" in out.stderr


BAD_REPORTS = [
    ("missing", None, "no such file: {path}"),
    (
        "version",
        '{"format_version": 7}',
        "{path}: report format_version 7 is not supported; this modpact reads version 1",
    ),
    (
        "field",
        '{"format_version": 1, "violations": [{"step": "x"}]}',
        "{path}: invalid report field(s): violations[0].step: Input should be a valid integer",
    ),
    (
        "json",
        '{"format_version": 1,',
        "{path}: report is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 22",
    ),
]


@pytest.mark.parametrize("name, content, message", BAD_REPORTS, ids=[b[0] for b in BAD_REPORTS])
def test_bad_report_files(name, content, message, tmp_path, capsys):
    path = tmp_path / f"{name}.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modpact report: error: {message.format(path=path)}") and err.count("\n") == 1


def test_unwritable_output(report_file, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "dir" / "out.html"
    assert main(["report", str(report_file), "--quiet", "--html", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modpact report: error: cannot write the HTML report to {target}: ")


BAD_TARGETS = [
    ("missing-file", "{dir}/nope.py", "no such file: {dir}/nope.py"),
    ("missing-module", "no_such_module_xyz", "no such file or module: no_such_module_xyz"),
    ("missing-object", "{file}:nope", "{file} has no object 'nope' (candidates: build_model, returns_int, raises)"),
    (
        "not-a-name",
        "{file}:1abc",
        "'{file}:1abc': '1abc' after the ':' is not an object name (expected e.g. "
        "model or build_model or a dotted name like zoo.MLP)",
    ),
    (
        "not-a-module",
        "{file}:not_a_model",
        "{file}:not_a_model is a int, expected an nn.Module or a function returning one",
    ),
    ("returns-int", "{file}:returns_int", "{file}:returns_int: returns_int() returned int, expected an nn.Module"),
    ("raises", "{file}:raises", "{file}:raises: calling raises() raised RuntimeError: boom"),
    ("import-fails", "{dir}/broken.py", "importing {dir}/broken.py raised ZeroDivisionError: division by zero"),
]


@pytest.mark.parametrize("name, target, message", BAD_TARGETS, ids=[b[0] for b in BAD_TARGETS])
@pytest.mark.parametrize("command", ["inspect", "validate"])
def test_bad_targets(command, name, target, message, model_file, capsys):
    (model_file.parent / "broken.py").write_text("x = 1 / 0\n")
    fill = {"dir": model_file.parent, "file": model_file}
    assert main([command, target.format(**fill)]) == 2
    assert capsys.readouterr().err == f"modpact {command}: error: {message.format(**fill)}\n"


def test_inspect_finds_contract_decorated_classes(tmp_path, capsys):
    path = tmp_path / "deco.py"
    path.write_text(
        textwrap.dedent("""
        from torch import nn
        import modpact as mp

        @mp.contract(interface=mp.Interface("blk", inputs={"x": mp.TensorSpec("b 4")},
                                            outputs={"y": mp.TensorSpec("b 4", finite=True)}))
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(4, 4)

            def forward(self, x):
                return self.lin(x)

        model = nn.Sequential(Block(), nn.ReLU(), Block())
    """)
    )
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Sequential ({path}): 2 guarded module(s) of 6"
    assert out.count("interface blk") == 2 and "\n2 (Block)\n" in out


def test_demo_checks_its_output_folder_before_any_work(tmp_path, monkeypatch, capsys):
    import modpact.demo as demo

    monkeypatch.setattr(demo, "load", lambda *a, **k: pytest.fail("the demo started work before checking --out"))
    missing = tmp_path / "missing" / "dir"
    assert main(["demo", "--out", str(missing)]) == 2
    message = f"no such directory: {missing} (--out names the folder for the report files)"
    assert capsys.readouterr().err == f"modpact demo: error: {message}\n"
    (tmp_path / "file").write_text("")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_bad_mode_in_the_environment_stops_demo_inspect_and_validate_up_front(model_file):
    env = {**os.environ, "MODPACT_CONTRACTS": "junk"}
    message = (
        "MODPACT_CONTRACTS='junk' is not a mode; expected one of raise, warn, record, off (or 0/false to switch off)"
    )
    for args in (["demo"], ["inspect", str(model_file)], ["validate", str(model_file)]):
        out = subprocess.run(
            [sys.executable, "-m", "modpact", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 2 and out.stdout == "", args
        assert out.stderr == f"modpact {args[0]}: error: {message}\n"
