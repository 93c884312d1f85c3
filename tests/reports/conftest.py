"""Real diagnosis reports from monitored runs of the zoo models (bench/zoo.py)
with injected faults; shared by the renderer, CLI and browser tests."""

from __future__ import annotations

import pytest
import report_render
import torch
from torch import nn
from zoo import MLP, SmallResNet, example_input

import modpact as mp
from modpact.runtime import DiagnosisReport, Monitor

FAULTY = "layer1.conv2"


def not_dead(result):
    """A layer whose whole output is zero has died."""
    return result.abs().amax() > 0


def guarded_resnet() -> SmallResNet:
    torch.manual_seed(0)
    model = SmallResNet()
    first = mp.Interface(
        "digits-image",
        inputs={"input": mp.TensorSpec("b 1 8 8", dtype="float32", range=(0, 1))},
        outputs={"result": mp.TensorSpec("b c 8 8", finite=True)},
    )
    mp.guard(model.stem[0], interface=first, name="stem.0")
    for path, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and path != "stem.0":
            mp.guard(mod, ensures=[mp.in_range("result", -1e4, 1e4), not_dead], name=path)
    return model


def monitored(model: nn.Module, x: torch.Tensor, steps: int = 2) -> DiagnosisReport:
    with Monitor(model, defaults=True) as mon:
        for _ in range(steps):
            model(x)
            mon.step()
    return mon.report()


@pytest.fixture(scope="session")
def faulty_report() -> DiagnosisReport:
    """SmallResNet with a NaN weight in layer1.conv2: the root cause."""
    model = guarded_resnet()
    with torch.no_grad():
        model.layer1.conv2.weight[0, 0, 0, 0] = float("nan")
    return monitored(model, example_input(model, 16, torch.Generator().manual_seed(1)))


@pytest.fixture(scope="session")
def clean_report() -> DiagnosisReport:
    model = guarded_resnet()
    return monitored(model, example_input(model, 16, torch.Generator().manual_seed(1)))


@pytest.fixture(scope="session")
def input_blame_report() -> DiagnosisReport:
    """Out-of-range input data: the report blames the input, not a module."""
    model = guarded_resnet()
    x = example_input(model, 8, torch.Generator().manual_seed(1)) * 100
    return monitored(model, x, steps=1)


@pytest.fixture(scope="session")
def contract_error_report() -> DiagnosisReport:
    """A postcondition that raises: blamed on the contract itself."""
    torch.manual_seed(0)
    model = MLP()

    def broken(result):
        return result.no_such_attribute > 0

    mp.guard(model.head, ensures=[broken], name="head")
    return monitored(model, example_input(model, 4), steps=1)


@pytest.fixture(scope="session")
def big_report() -> DiagnosisReport:
    """1,000 violations from a real run: a NaN weight in the first layer of an
    MLP poisons every later layer in each of 250 steps."""
    return report_render.big_report(250)  # the benchmark's report, so both measure the same thing
