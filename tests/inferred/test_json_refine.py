import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import modpact as mp
from modpact.errors import FormatVersionError, SpecError


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _inferred(clusters=None):
    torch.manual_seed(1)
    model = small_mlp()
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    return model, mp.infer_contracts(model, (x, y), clusters=clusters, batch_size=16)


@pytest.mark.parametrize("clusters", [None, 2])
def test_json_round_trip(clusters):
    model, ic = _inferred(clusters)
    back = mp.InferredContracts.from_json(ic.to_json())
    assert back.to_dict() == ic.to_dict()
    assert back.conditions() == ic.conditions()
    x = torch.randn(9, 4) * 3
    assert torch.equal(back.score(x, model=model), ic.score(x))
    assert back.interface("0") == ic.interface("0")
    back.install(model)
    back.uninstall()


def _doc():
    return json.loads(_inferred()[1].to_json())


def _error(doc):
    with pytest.raises(SpecError) as e:
        mp.InferredContracts.from_dict(doc)
    return str(e.value)


def test_wrong_version_is_a_format_version_error():
    doc = _doc()
    doc["format_version"] = "7"
    with pytest.raises(FormatVersionError, match="format_version '7' is not supported; this modpact reads '1'"):
        mp.InferredContracts.from_dict(doc)


@pytest.mark.parametrize(
    "edit,msg",
    [
        (lambda d: d.update(kind="Interface"), "document kind is 'Interface', expected 'InferredContracts'"),
        (lambda d: d.update(margn=1), "invalid document: margn: Extra inputs are not permitted"),
        (lambda d: d["envelopes"][0].update(side="inside"), "envelopes[0].side: Input should be 'input' or 'output'"),
        (lambda d: d["envelopes"][1].pop("rows"), "envelopes[1].rows: Field required"),
        (
            lambda d: d["envelopes"][0].update(lo=[0.0]),
            "envelopes[0].lo has shape [1] but envelopes[0].hi has shape [4]",
        ),
        (lambda d: d["envelopes"][0].update(lo=[9.0] * 4), "envelopes[0]: lo > hi at index (0,)"),
        (lambda d: d["envelopes"][0].update(hi=["a"] * 4), "envelopes[0].hi is not a (nested) list of numbers"),
        (lambda d: d["envelopes"][0].update(module="head"), "envelopes[0].module 'head' has no entry in shapes"),
        (lambda d: d["label_counts"].append(1), "label_counts has 4 entries for 3 labels"),
    ],
    ids=["kind", "extra", "side", "missing", "shape", "order", "numbers", "module", "labels"],
)
def test_bad_documents_name_the_field(edit, msg):
    doc = _doc()
    edit(doc)
    assert msg in _error(doc)


def test_not_json():
    with pytest.raises(SpecError, match="InferredContracts.from_json: not valid JSON"):
        mp.InferredContracts.from_json("{nope")


def test_refine_widens_only_when_called_and_says_what_changed():
    model, ic = _inferred()
    before = [(e.lo.clone(), e.hi.clone()) for e in ic.envelopes]
    far = torch.randn(8, 4) * 50
    ic.install()
    with pytest.raises(mp.PreconditionViolation, match="blaming the input data"):
        model(far)  # eager checks: the far batch is outside; nothing widens
    with mp.Monitor(model) as mon:
        model(far)
        mon.step()
    assert mon.violations
    for e, (lo, hi) in zip(ic.envelopes, before):
        assert torch.equal(e.lo, lo) and torch.equal(e.hi, hi)
    change = ic.refine(far)
    assert change["rows"] == 8 and change["widened"]["0 input input"] > 0
    assert ic.history[-1] is change or ic.history[-1] == change
    for e, (lo, hi) in zip(ic.envelopes, before):
        assert bool((e.lo <= lo).all() and (e.hi >= hi).all())
    assert ic.installed
    model(far)  # the re-installed guards carry the refined bounds
    assert ic.refine(far)["widened"] == {}
    ic.uninstall()


def test_refine_needs_a_model_after_loading():
    model, ic = _inferred()
    back = mp.InferredContracts.from_json(ic.to_json())
    with pytest.raises(SpecError, match="InferredContracts.refine: no model; pass model="):
        back.refine(torch.randn(4, 4))
    assert back.refine(torch.randn(4, 4) * 100, model=model)["widened"]


def test_a_failed_refine_changes_nothing():
    model, ic = _inferred()
    before = ic.to_dict()
    x = torch.randn(6, 4) * 100
    with pytest.raises(SpecError, match="label 7 is outside the label space of 3 labels"):
        ic.refine((x, torch.tensor([0, 1, 2, 7, 0, 1])))
    assert ic.to_dict() == before


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(2, 30),
    scale=st.floats(0.01, 100),
    margin=st.floats(0, 2),
    min_scale=st.floats(0, 1),
    clusters=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 3),
)
def test_json_round_trip_property(n, scale, margin, min_scale, clusters, seed):
    model = small_mlp(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g) * scale
    y = torch.arange(n) % 3
    ic = mp.infer_contracts(model, (x, y), margin=margin, min_scale=min_scale, clusters=clusters)
    back = mp.InferredContracts.from_json(ic.to_json())
    assert back.conditions() == ic.conditions()
    assert back.to_json() == ic.to_json()
    probe = torch.randn(5, 4, generator=g) * scale * 2
    assert torch.equal(back.score(probe, model=model), ic.score(probe))
