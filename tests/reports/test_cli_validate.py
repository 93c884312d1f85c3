"""``modpact validate PATH[:OBJECT]``: validate() on every guarded module with
an interface; exit 0 when no counterexample is found, 1 when one is; the
result as a diagnosis report (text, --json, --junit, --html)."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

import pytest
from test_cli import run_cli

from modpact.cli import main
from modpact.runtime import DiagnosisReport

MODELS = textwrap.dedent("""
    import torch
    from torch import nn

    import modpact as mp


    def build(head_bound=0.01):  # the bias alone breaks it: found on any seed
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        enc = mp.Interface("enc", inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1))},
                           outputs={"h": mp.TensorSpec("batch 8", finite=True)})
        head = mp.Interface("head", inputs={"x": mp.TensorSpec("batch 8", dtype="float32", range=(0, 1))},
                            outputs={"y": mp.TensorSpec("batch 2", finite=True)})
        mp.guard(model[0], interface=enc, ensures=[mp.in_range("result", -5, 5)], name="0")
        mp.guard(model[2], interface=head, ensures=[mp.in_range("result", -head_bound, head_bound)], name="2")
        return model


    def loose():
        return build(head_bound=100.0)


    def unguarded():
        return nn.Linear(2, 2)


    def no_interface():
        return mp.guard(nn.Linear(2, 2), ensures=[mp.finite("result")])
""")


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "val_models.py"
    path.write_text(MODELS)
    return path


def test_a_counterexample_fails_with_exit_1_and_every_output(models, tmp_path):
    xml, js, html = tmp_path / "v.xml", tmp_path / "v.json", tmp_path / "v.html"
    out = run_cli(
        "validate",
        f"{models}:build",
        "--max-examples",
        "40",
        "--seed",
        "1",
        "--junit",
        str(xml),
        "--json",
        str(js),
        "--html",
        str(html),
        columns=200,
    )
    assert out.returncode == 1, out.stderr
    assert "validate 0: passed" in out.stdout and "validate 2: FAILED" in out.stdout
    assert "counterexample: 2: postcondition in_range(result, -0.01, 0.01) (Linear, validation)" in out.stdout
    assert "blaming 2 (its preconditions held)" in out.stdout
    report = DiagnosisReport.load(js)
    assert report.source == "validation" and not report.ok
    assert [(v.where, v.check) for v in report.violations] == [("2", "in_range(result, -0.01, 0.01)")]
    assert report.violations[0].evidence["seed"].startswith("1 ")
    assert report.headline().startswith("FAILED: validation found 1 counterexample(s) in 2 module(s)")
    cases = {(c.get("classname"), c.get("name")): c for c in ET.parse(xml).getroot().iter("testcase")}
    assert cases[("modpact.Sequential.2", "in_range(result, -0.01, 0.01)")].find("failure") is not None
    assert len(cases[("modpact.Sequential.0", "interface enc")]) == 0
    assert len(cases[("modpact.Sequential.0", "in_range(result, -5, 5)")]) == 0
    assert "Counterexample: <code>2</code>" in html.read_text()


def test_no_counterexample_exits_0(models, capsys):
    assert main(["validate", f"{models}:loose", "--max-examples", "20", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "OK: validation found no counterexample in 2 module(s)" in " ".join(out.split())


@pytest.mark.parametrize(
    "obj, message",
    [
        (
            "unguarded",
            "{target}: Linear has no guarded modules, so there is nothing to validate; guard modules with "
            "modpact.guard(module, interface=...)",
        ),
        (
            "no_interface",
            "{target}: none of the 1 guarded module(s) could be validated: <model>: no interface to "
            "generate inputs from",
        ),
    ],
)
def test_nothing_to_validate_exits_2(models, obj, message, capsys):
    target = f"{models}:{obj}"
    assert main(["validate", target]) == 2
    assert capsys.readouterr().err == f"modpact validate: error: {message.format(target=target)}\n"
