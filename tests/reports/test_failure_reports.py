"""Failures of validate() and check_composition() render like monitor reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

import modpact as mp


class NanAbove(nn.Module):
    def forward(self, x):
        return torch.where(x > 5, torch.full_like(x, float("nan")), torch.tanh(x))


ACT = mp.Interface(
    "act",
    inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-10, 10))},
    outputs={"y": mp.TensorSpec("batch 4", finite=True)},
)


def test_a_validate_failure_becomes_a_report(tmp_path):
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(mp.guard(NanAbove(), interface=ACT, name="act"), max_examples=100, seed=0)
    report = mp.DiagnosisReport.from_failure(e.value)
    assert report.source == "validation" and not report.ok
    root = report.root_cause
    assert root.where == "act" and root.blame == "act"
    assert root.evidence["seed"].startswith("0 ")
    assert root.histogram is not None  # of the shrunk generated input
    text = report.render_text()
    assert "counterexample: act:" in text and "blaming act (its inputs and preconditions held)" in text
    assert mp.DiagnosisReport.from_json(report.to_json()) == report
    html = report.to_html(tmp_path / "r.html")
    assert "Counterexample" in html and "<svg" in html
    cases = list(ET.fromstring(report.to_junit()).iter("testcase"))
    assert any(c.find("failure") is not None for c in cases)


def test_a_composition_failure_blames_the_wiring():
    enc = mp.guard(
        nn.Linear(4, 4),
        interface=mp.Interface(
            "enc",
            inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1))},
            outputs={"h": mp.TensorSpec("batch 4", dtype="float32", finite=True)},
        ),
        name="enc",
    )
    head = mp.guard(
        nn.Linear(4, 2),
        interface=mp.Interface(
            "head",
            inputs={"h": mp.TensorSpec("batch 4", dtype="float32", range=(0, None))},
            outputs={"y": mp.TensorSpec("batch 2")},
        ),
        name="head",
    )
    torch.manual_seed(0)
    with pytest.raises(mp.ValidationFailure) as e:
        mp.check_composition(enc, head, max_examples=50, seed=0)
    report = mp.DiagnosisReport.from_failure(e.value)
    assert report.root_cause.blame == "the wiring enc -> head"
    assert "blaming the wiring enc -> head" in report.render_text()


def test_from_failure_names_a_wrong_argument():
    with pytest.raises(TypeError, match="expected a ValidationFailure, got ValueError"):
        mp.DiagnosisReport.from_failure(ValueError("x"))
