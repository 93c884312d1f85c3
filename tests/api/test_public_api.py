"""The public API: every export imports and is documented; importing modpact
stays free of Hypothesis; the CLI answers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import modpact

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md")) + (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", modpact.__all__)
def test_export_is_importable_and_documented(name):
    assert hasattr(modpact, name), name
    if name != "__version__":
        assert name in DOCS, f"modpact.{name} is exported but not mentioned in README.md or docs/"


def test_import_does_not_import_hypothesis():
    code = "import sys, modpact; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_demo_finds_blames_repairs_and_validates(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "modpact", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "OK: no contract violations in 5 step(s)" in text  # the clean run, before the fault
    assert "root cause: hidden.2: postcondition finite(output) on output" in text
    assert "blaming hidden.2 (its parameter weight holds f32[32,64] nan=" in text
    assert "located by a re-run of the call" in text
    assert "the monitor blamed 'hidden': the injected module" in text
    assert "repair of 'hidden' (retrain): accuracy 10.00% -> " in text
    assert "substitutable: yes" in text
    assert "validate(hidden) against 'hidden':" in text
    assert "8. port the repaired 'hidden' to ONNX with its interface, check it, prove it substitutable" in text
    assert "the graph matches interface 'hidden'" in text
    assert "onnxruntime hidden can replace hidden (elementwise, tolerance 1e-05)" in text
    assert text.rstrip().endswith("demo finished: fault found, blamed, repaired and validated, and the module ported")
    assert modpact.load_onnx(tmp_path / "hidden.onnx").interface.name == "hidden"
    assert modpact.load_exported(tmp_path / "hidden.pt2").interface.name == "hidden"
    report = modpact.DiagnosisReport.from_json((tmp_path / "modpact-report.json").read_text())
    assert report.root_cause.module == "hidden.2"
    html = (tmp_path / "modpact-report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "hidden.2" in html


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "modpact", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"modpact {modpact.__version__}"
