"""Faults injected into one module of each zoo model; the monitor's root cause
must be the injected module (or the input data), and clean runs stay clean."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from zoo import MLP, SmallResNet, TinyTransformer, example_input

import modpact.contracts as C
from modpact.interfaces import Interface, TensorSpec
from modpact.runtime import Monitor

PARAM_LEAVES = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.LayerNorm, nn.Embedding)

# per model: the module that receives the fault, and the input interface of the first module
SETUP = {
    "mlp": dict(
        cls=MLP, target="body.2", first="body.0", head="head", inp=TensorSpec("b 64", dtype="float32", range=(0, 16))
    ),
    "resnet": dict(
        cls=SmallResNet,
        target="layer1.conv2",
        first="stem.0",
        head="fc",
        inp=TensorSpec("b 1 8 8", dtype="float32", range=(0, 1)),
    ),
    "transformer": dict(
        cls=TinyTransformer,
        target="encoder.layers.0.linear1",
        first="embed",
        head="head",
        inp=TensorSpec("b s", dtype="integer", indices=100),
    ),
}


def not_dead(result):
    """A layer whose whole output is zero has died."""
    return result.abs().amax() > 0


def build(name: str):
    torch.manual_seed(0)
    s = SETUP[name]
    model = s["cls"]()
    mods = dict(model.named_modules())
    reference_head = copy.deepcopy(mods[s["head"]])
    for path, mod in model.named_modules():
        if isinstance(mod, PARAM_LEAVES):
            ensures = [C.in_range("result", -1e4, 1e4)]
            if not isinstance(mod, nn.Embedding):
                ensures.append(C.requires if False else not_dead)
            if path == s["head"]:
                ensures.append(C.agrees_with(reference_head, top1=0.9))
            iface = None
            if path == s["first"]:
                iface = Interface(f"{name}-input", inputs={"input": s["inp"]}, outputs={"result": TensorSpec("...")})
            C.guard(mod, interface=iface, ensures=ensures, name=path)
    x = example_input(model, 16, torch.Generator().manual_seed(1))
    return model, mods, x


def run(model, x, steps=2, defaults=True):
    with Monitor(model, defaults=defaults) as mon:
        for _ in range(steps):
            model(x)
            mon.step()
    return mon.report()


@pytest.mark.parametrize("name", list(SETUP))
def test_clean_run_has_no_violation(name):
    model, _, x = build(name)
    report = run(model, x)
    assert report.ok, str(report)
    assert report.checks > 0 and report.calls == 2


def _inject(kind: str, name: str, mods: dict):
    target = mods[SETUP[name]["target"]]
    with torch.no_grad():
        if kind == "nan_weight":
            target.weight[0, 0] = float("nan")
        elif kind == "scaled":
            target.weight.mul_(1e6)
        elif kind == "dead":
            target.weight.zero_()
            if getattr(target, "bias", None) is not None:
                target.bias.zero_()
        elif kind == "swapped_labels":
            head = mods[SETUP[name]["head"]]
            perm = torch.roll(torch.arange(head.out_features), 1)
            head.weight.copy_(head.weight[perm])
            head.bias.copy_(head.bias[perm])
            return SETUP[name]["head"]
    return SETUP[name]["target"]


@pytest.mark.parametrize("name", list(SETUP))
@pytest.mark.parametrize("kind", ["nan_weight", "scaled", "dead", "swapped_labels"])
def test_injected_fault_is_the_root_cause(name, kind):
    model, mods, x = build(name)
    expected = _inject(kind, name, mods)
    report = run(model, x)
    root = report.root_cause
    assert root is not None, f"{kind} in {name} went unnoticed"
    assert root.module == expected, str(report)
    assert root.blame == expected
    assert root.kind == "postcondition"
    # every other violation of that step follows from the root
    assert all(not v.root for v in report.violations if v.step == root.step and v is not root), str(report)


@pytest.mark.parametrize("name", list(SETUP))
def test_dtype_downcast_is_blamed_even_if_the_model_then_crashes(name):
    model, mods, x = build(name)
    target = SETUP[name]["target"]
    mods[target].register_forward_hook(lambda m, i, o: o.to(torch.float16))
    with Monitor(model, defaults=True) as mon:
        try:
            model(x)  # the MLP and transformer crash downstream (Linear rejects f16 input); BatchNorm accepts it
        except RuntimeError as e:
            assert "dtype" in str(e) or "Half" in str(e) or "same" in str(e)
        report = mon.report()
    root = report.root_cause
    assert root is not None and root.module == target and root.check == "dtype stable", str(report)
    assert root.evidence["expected"] == "float32"


@pytest.mark.parametrize("name", list(SETUP))
def test_out_of_range_input_data_blames_the_input(name):
    model, mods, x = build(name)
    bad = x * 100 if x.is_floating_point() else x + 1000
    with Monitor(model, defaults=True) as mon:
        try:
            model(bad)
        except IndexError:  # the embedding rejects unknown tokens after the check has fired
            pass
        report = mon.report()
    root = report.root_cause
    assert root is not None, str(report)
    assert root.blame == "the input data", str(report)
    assert root.module == SETUP[name]["first"]


def test_replay_collects_evidence_for_the_root():
    model, mods, x = build("mlp")
    _inject("nan_weight", "mlp", mods)
    root = run(model, x).root_cause
    assert root.evidence["first_value"] == "nan"
    assert root.evidence["failing"] == 16  # one NaN weight poisons one feature of every row
    assert root.evidence["result was"].startswith("f32[16,256] nan=16")
