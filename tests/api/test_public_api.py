"""The public API: every export imports and is documented; importing modpact
stays free of Hypothesis; the CLI answers."""

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


def test_cli_demo_blames_the_injected_module():
    out = subprocess.run([sys.executable, "-m", "modpact", "demo"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "root cause: hidden: postcondition in_range(result, -1000.0, 1000.0)" in out.stdout
    assert "blaming hidden (its preconditions held)" in out.stdout


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "modpact", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"modpact {modpact.__version__}"
