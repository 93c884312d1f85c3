"""Hypothesis stays optional: with it blocked, `import modpact` and the pytest
plugin still import, and validation fails with the install command."""

import subprocess
import sys

BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _Block())
"""

CODE = (
    BLOCK
    + """
import torch
from torch import nn
import modpact as mp
import modpact.pytest_plugin
assert "hypothesis" not in sys.modules
iface = mp.Interface("act", inputs={"x": mp.TensorSpec("batch 4")}, outputs={"y": mp.TensorSpec("batch 4")})
for call in (lambda: mp.validate(nn.Tanh(), iface),
             lambda: mp.strategies.tensors(mp.TensorSpec("batch 4")),
             lambda: iface.strategy(),
             lambda: mp.check_substitutable(nn.Tanh(), nn.Tanh(), iface),
             lambda: mp.given(iface)(lambda x: None)):
    try:
        call()
    except ImportError as e:
        assert isinstance(e, mp.ModpactError)
        print("ERR", e)
    else:
        raise SystemExit("no error without hypothesis")
"""
)


def test_import_and_plugin_work_without_hypothesis_and_validation_names_the_install_command():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ERR")]
    assert len(lines) == 5
    assert lines[0] == (
        'ERR modpact.validate needs Hypothesis, which is not installed; run: pip install "modpact[hypothesis]"'
    )
    assert all('pip install "modpact[hypothesis]"' in ln for ln in lines)


def test_pytest_runs_with_the_plugin_when_hypothesis_is_missing(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    code = (
        BLOCK
        + "import pytest; raise SystemExit(pytest.main("
        + f"['-q', '-p', 'no:cacheprovider', '-p', 'no:hypothesispytest', {str(tmp_path / 'test_plain.py')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
