"""`modpact demo`: the smallest end-to-end run (until the full demo of the
reports issue lands): interfaces and contracts on a small classifier, a clean
monitored run, an injected fault, and the diagnosis that blames it."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

import modpact as mp

DIGITS = mp.LabelSpace("digits", [str(i) for i in range(10)])


def build() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        encoder=nn.Linear(64, 128), act1=nn.ReLU(),
        hidden=nn.Linear(128, 64), act2=nn.ReLU(),
        head=nn.Linear(64, 10),
    ))
    encoder = mp.Interface(
        "encoder",
        inputs={"input": mp.TensorSpec("batch 64", dtype="float32", range=(0, 16))},
        outputs={"h": mp.TensorSpec("batch 128", finite=True)},
    )
    head = mp.Interface(
        "digit-head",
        inputs={"input": mp.TensorSpec("batch 64", dtype="floating")},
        outputs={"logits": mp.TensorSpec("batch 10", dtype="floating", finite=True, labels=DIGITS)},
    )
    mp.guard(model.encoder, interface=encoder, name="encoder")
    mp.guard(model.hidden, ensures=[mp.in_range("result", -1e3, 1e3)], name="hidden")
    mp.guard(model.head, interface=head, name="head")
    return model


def run_demo() -> int:
    model = build()
    x = torch.rand(32, 64) * 16
    print("1. clean run under the Monitor")
    with mp.Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
    print("   " + mon.report().headline())

    print("2. fault injected: hidden layer weights scaled by 1e6")
    with torch.no_grad():
        model.hidden.weight.mul_(1e6)
    with mp.Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
    report = mon.report()
    print()
    print(report)
    found = report.root_cause is not None and report.root_cause.module == "hidden"
    print()
    print("the monitor blamed the injected module" if found else "UNEXPECTED: the injected fault was not the root cause")
    return 0 if found else 1
