"""Elided default checks: a finite(output) check is skipped only when the
tensor's consumer propagates non-finite values into a checked output; every
fault is still found, and the replay still names the module that made it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modpact.runtime import Monitor
from modpact.runtime.monitor import propagates_non_finite

INF = float("inf")


class Spike(nn.Module):
    """A parameter-free fault: writes ``value`` at one position of its input."""

    def __init__(self, value: float, index: tuple):
        super().__init__()
        self.value, self.index = value, index

    def forward(self, x):
        x = x.clone()
        x[self.index] = self.value
        return x


class LinearWithOwnForward(nn.Linear):
    def forward(self, x):
        return torch.clamp(super().forward(x), -1, 1)


@pytest.mark.parametrize(
    "module, expected",
    [
        (nn.Linear(4, 4), True),
        (nn.Conv2d(2, 2, 3, padding=1), True),
        (nn.Conv2d(2, 2, 1, stride=2), False),  # skips every other position
        (nn.Conv2d(2, 2, 3, dilation=2), False),
        (nn.BatchNorm2d(2), True),
        (nn.LayerNorm(4), True),
        (nn.AdaptiveAvgPool2d(1), True),
        (nn.Dropout(0.5), True),
        (nn.Dropout(1.0), False),
        (nn.LeakyReLU(0.1), True),
        (nn.ReLU(), False),  # relu(-inf) = 0
        (nn.Sigmoid(), False),
        (nn.MaxPool2d(2), False),
        (nn.Softmax(dim=-1), False),
        (LinearWithOwnForward(4, 4), False),  # an overridden forward is not trusted
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v),
)
def test_which_modules_propagate_non_finite_values(module, expected):
    assert propagates_non_finite(module) is expected


def _root(model, x, fault=None, **kw):
    """Two steps: the first (clean) shows the monitor which outputs a
    propagating module consumes; ``fault`` is injected before the second."""
    with Monitor(model, defaults=True, leaf_checks="every_call", **kw) as mon:
        model(x)
        mon.step()
        if fault is not None:
            fault()
        out = model(x)
        mon.step()
    return out, mon.report()


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    def nan_weight():
        with torch.no_grad():
            model[0].weight[0, 0] = float("nan")

    return model, torch.randn(6, 8), nan_weight


def test_elided_check_is_recovered_by_the_re_run():
    model, x, fault = _mlp()
    _, rep = _root(model, x, fault)
    root = rep.root_cause
    assert root.module == "0" and root.check == "finite(output)" and root.step == 1, str(rep)
    assert root.evidence["failing"] == 6 and root.located_by == "re-run"
    assert "parameter weight holds" in root.blame_reason
    assert all(not v.root for v in rep.violations if v is not root)


def test_elision_runs_fewer_checks_and_finds_the_same_root():
    model, x, fault = _mlp()
    _, elided = _root(model, x, fault)
    model, x, fault = _mlp()
    _, full = _root(model, x, fault, elide=False)
    assert elided.checks < full.checks
    assert elided.root_cause.module == full.root_cause.module == "0"


def test_the_first_call_checks_every_output_at_once():
    """Nothing is elided before the monitor has seen who consumes what."""
    model, x, fault = _mlp()
    fault()
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        model(x)
        rep = mon.report()
    assert rep.root_cause.module == "0" and "found" not in rep.root_cause.evidence, str(rep)


def test_without_replay_elision_is_off_unless_asked_and_then_blames_one_module_later():
    model, x, fault = _mlp()
    _, rep = _root(model, x, fault, replay=False)
    assert rep.root_cause.module == "0"
    model, x, fault = _mlp()
    _, rep = _root(model, x, fault, replay=False, elide=True)  # the documented trade
    assert rep.root_cause.module == "1"


def test_minus_inf_absorbed_by_relu_is_still_found():
    """relu(-inf) = 0: the model's output is finite, so only the check on the
    Linear's output (consumed by a ReLU, which does not propagate) sees it."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0] = -INF
        model[0].bias[0] = 0.0
    out, rep = _root(model, torch.rand(3, 4) + 0.1)
    assert torch.isfinite(out).all()
    assert rep.root_cause.module == "0", str(rep)


def test_positions_a_strided_conv_skips_are_still_checked():
    """A 1x1 stride-2 conv never reads odd positions: Inf there vanishes."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), Spike(INF, (0, 0, 1, 1)), nn.Conv2d(2, 2, 1, stride=2))
    out, rep = _root(model, torch.rand(1, 1, 4, 4))
    assert torch.isfinite(out).all()
    assert rep.root_cause.module == "1", str(rep)


class ClampedPair(nn.Module):
    """The first Linear's output reaches the second only through a functional clamp."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.clamp(self.a(x), -1, 1))


def test_output_consumed_by_code_between_modules_is_checked():
    model = ClampedPair()
    with torch.no_grad():
        model.a.bias[1] = INF
    out, rep = _root(model, torch.rand(3, 4))
    assert torch.isfinite(out).all()
    assert rep.root_cause.module == "a", str(rep)


def test_pass_through_keeps_the_check_pending():
    """Identity hands the same tensor on; the producer's check still runs."""
    model = nn.Sequential(nn.Linear(4, 4), Spike(INF, (0, 1)), nn.Identity())
    _, rep = _root(model, torch.rand(2, 4))
    assert rep.root_cause.module == "1", str(rep)


class CrashesBetween(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.c = nn.Linear(4, 2)

    def forward(self, x, crash=False):
        h = self.b(self.a(x))
        if crash:
            raise RuntimeError("crash before c")
        return self.c(h)


def test_checks_pending_when_the_forward_raises_are_run_at_once():
    model = CrashesBetween()
    x = torch.rand(2, 4)
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        model(x)  # c consumed b's output: b's check now waits for c
        mon.step()
        with torch.no_grad():
            model.b.weight[0, 0] = float("nan")
        with pytest.raises(RuntimeError, match="crash before c"):
            model(x, crash=True)
        # b's output waited for a consumer that never came: the model's
        # post hook (always called) ran its check when the forward raised
        assert not mon._hooks.state.pending
        rep = mon.report()
    assert not mon._hooks.state.pending
    assert rep.root_cause.module == "b", str(rep)


def test_nothing_stays_pending_after_a_forward():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        model(torch.rand(3, 4))
        assert not mon._hooks.state.pending
    assert mon.report().ok
