"""Inferred-contracts files that are broken or hostile: a loaded document
summarises, builds its interfaces and conditions, and saves again; anything
else is a ``SpecError`` naming the field (``LoadError`` for a file that
cannot be read). Dtype names are looked up in a table, never with getattr."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.errors import LoadError, SpecError


def document() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return json.loads(mp.infer_contracts(model, torch.randn(32, 4)).to_json())


def edited(edit) -> dict:
    d = document()
    edit(d)
    return d


def signature(d: dict) -> dict:
    return d["shapes"]["0"][0]


BAD = [
    (
        lambda d: signature(d)["inputs"].update(input=[[-5, 4], "float32"]),
        "shapes['0'][0].inputs.input: dim -5 is negative; fixed dims must be >= 0",
    ),
    (
        lambda d: signature(d)["inputs"].update(input=[[2**62, 2**62], "float32"]),
        "shapes['0'][0].inputs.input: shape [4611686018427387904, 4611686018427387904] has more elements than",
    ),
    (lambda d: signature(d)["inputs"].update(input=[[2, 4], "_dynamo"]), "has unknown dtype '_dynamo'"),
    (lambda d: d["shapes"].update({"0": []}), "shapes['0'] make no interface"),
    (lambda d: d["envelopes"][0].update(lo=[], hi=[]), "envelopes[0].lo is empty"),
    (lambda d: d["envelopes"][0].update(name="__import__('os')"), "envelopes[0].name \"__import__('os')\" is not"),
    (lambda d: d["envelopes"][0].update(rows=-1), "envelopes[0].rows is -1"),
    (lambda d: d.update(margin=float("inf")), "Expected margin to be a number >= 0.0, got inf"),
    (lambda d: d.update(labels={"name": "x", "labels": ["a", "a"], "id": "i"}), "labels: LabelSpace(name='x')"),
    (
        lambda d: d["envelopes"][0].update(lo=[10**30] * 4),
        "envelopes[0].lo[0]: integer 1000000000000000000000000000000",
    ),
]


@pytest.mark.parametrize("edit, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_refused_at_load_naming_the_field(edit, message):
    with pytest.raises(SpecError) as info:
        mp.InferredContracts.from_dict(edited(edit))
    assert message in str(info.value) and str(info.value).startswith("InferredContracts.from_dict: ")


def test_bad_text_and_files(tmp_path):
    for text, message in [
        ('{"margin": ' + "1" * 5000 + "}", "a number has more digits"),
        ("[" * 100_000 + "]" * 100_000, "nested more than 64 levels deep"),
        (b"\xff", "not UTF-8 text"),
        (None, "expected JSON text (str or bytes), got NoneType"),
    ]:
        with pytest.raises(SpecError, match=re.escape(message)):
            mp.InferredContracts.from_json(text)
    with pytest.raises(LoadError, match="no such file"):
        mp.InferredContracts.load(tmp_path / "missing.json")
    path = tmp_path / "ic.json"
    path.write_text(json.dumps(edited(BAD[0][0])))
    with pytest.raises(SpecError, match=f"^{re.escape(str(path))}: InferredContracts.from_dict: shapes"):
        mp.InferredContracts.load(path)
    path.write_text(json.dumps(document()))
    loaded = mp.InferredContracts.load(path)
    assert loaded.summary().startswith("InferredContracts: 3 modules")
