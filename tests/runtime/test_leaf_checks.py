"""leaf_checks="on_violation" (the default): between failures the monitor
checks the model's outputs and its guarded modules; the first call, and any
call that breaks a check or raises, runs with every leaf checked. Its
diagnosis must match what checking every leaf on every call finds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from zoo import MLP, SmallResNet, TinyTransformer, example_input

import modpact.contracts as C
from modpact.errors import SpecError
from modpact.runtime import Monitor, MonitorViolation

NAN, INF = float("nan"), float("inf")
TARGETS = {
    "mlp": (MLP, "body.2"),
    "resnet": (SmallResNet, "layer1.conv2"),
    "transformer": (TinyTransformer, "encoder.layers.0.linear1"),
}


def leaf_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules() if m is not model)


def _model(name: str):
    torch.manual_seed(0)
    cls, target = TARGETS[name]
    model = cls()
    return model, dict(model.named_modules())[target], example_input(model, 8, torch.Generator().manual_seed(1))


def _fault_at_step_1(model, x, fault, **kw):
    """A clean step 0 (the first call checks every leaf), then ``fault``."""
    with Monitor(model, defaults=True, **kw) as mon:
        model(x)
        mon.step()
        fault()
        model(x)
        mon.step()
    return mon.report()


def _signature(report):
    return [(v.step, v.module, v.check, v.root) for v in report.violations]


def test_leaves_are_hooked_in_the_first_call_only():
    model = MLP()
    x = example_input(model, 4)
    seen = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(leaf_hooks(model)))
    with Monitor(model, defaults=True) as mon:
        assert mon.leaf_checks == "on_violation"
        assert leaf_hooks(model) == 1  # the probe; the monitor hooks only the model
        model(x)
        model(x)
        assert leaf_hooks(model) == 1
    assert seen == [1 + 7, 1]  # 4 Linear + 3 ReLU hooked during the first call
    assert mon.report().ok


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("value", [NAN, INF], ids=["nan", "inf"])
def test_a_fault_after_the_first_call_is_located_by_the_re_run(name, value):
    def run(**kw):
        model, target, x = _model(name)

        def fault():
            with torch.no_grad():
                target.weight[0, 0] = value

        return _fault_at_step_1(model, x, fault, **kw)

    rep = run()
    every = run(leaf_checks="every_call", elide=False)
    root = rep.root_cause
    assert root is not None and root.module == TARGETS[name][1] and root.step == 1, str(rep)
    assert root.check == "finite(output)" and root.evidence["failing"] > 0
    assert _signature(rep) == _signature(every), f"{rep}\n--- every_call ---\n{every}"
    assert rep.checks < every.checks


@settings(max_examples=12, deadline=None)
@given(
    layer=st.sampled_from(["body.0", "body.2", "body.4", "head"]),
    row=st.integers(0, 9),
    col=st.integers(0, 63),
    value=st.sampled_from([NAN, INF, -INF]),
)
def test_re_run_finds_what_every_call_finds_when_the_output_shows_it(layer, row, col, value):
    """If the bad value reaches the model's output, the re-run reports what
    checking every leaf on every call reports; if a ReLU absorbed it (-inf
    becomes 0), nothing is reported."""

    def run(**kw):
        torch.manual_seed(0)
        model = MLP()
        x = example_input(model, 4, torch.Generator().manual_seed(2))
        target = dict(model.named_modules())[layer]

        def fault():
            with torch.no_grad():
                target.weight[row, col] = value

        return _fault_at_step_1(model, x, fault, **kw), model(x)

    (rep, out), (every, _) = run(), run(leaf_checks="every_call", elide=False)
    assert not every.ok
    if torch.isfinite(out).all():
        assert rep.ok, str(rep)
    else:
        assert _signature(rep) == _signature(every), f"{rep}\n--- every_call ---\n{every}"


def test_a_forward_that_raises_is_re_run_with_every_leaf_checked():
    model, target, x = _model("mlp")
    with Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
        target.register_forward_hook(lambda m, i, o: o.to(torch.float16))
        with pytest.raises(RuntimeError):
            model(x)  # the next Linear rejects float16 input
        rep = mon.report()
    root = rep.root_cause
    assert root is not None and root.module == "body.2" and root.check == "dtype stable" and root.step == 1, str(rep)
    raised = [v for v in rep.violations if v.kind == "exception"]
    assert len(raised) == 1 and raised[0].module == "body.4" and "RuntimeError" in raised[0].message, str(rep)
    assert not raised[0].root and raised[0].located_by == "re-run"


def test_leaving_the_block_by_an_exception_still_diagnoses_the_call():
    model, target, x = _model("mlp")
    with pytest.raises(RuntimeError):
        with Monitor(model, defaults=True) as mon:
            model(x)
            mon.step()
            target.register_forward_hook(lambda m, i, o: o.to(torch.float16))
            model(x)
    assert mon.hooks == 0 and leaf_hooks(model) == 1  # the user's hook
    assert mon.report().root_cause.module == "body.2"


def test_raise_mode_names_the_leaf_found_by_the_re_run():
    model, target, x = _model("resnet")

    def fault():
        with torch.no_grad():
            target.weight.mul_(INF)

    with pytest.raises(MonitorViolation) as e:
        _fault_at_step_1(model, x, fault, mode="raise")
    assert e.value.module == "layer1.conv2"


def test_a_call_whose_weights_changed_since_is_not_re_run_and_not_located():
    """The weight is mended before the flags are read: a re-run would not be
    the call that failed (its version counter says so), so there is none,
    and the model's output check stands, saying the module was not located."""
    model, target, x = _model("mlp")
    with Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
        with torch.no_grad():
            kept = target.weight[0, 0].item()
            target.weight[0, 0] = NAN
            model(x)
            target.weight[0, 0] = kept
        mon.step()
    root = mon.report().root_cause
    assert root.where == "<model>" and root.check == "finite(output)" and root.step == 1
    assert root.located_by == "not located" and root.blame == "<model>"
    assert "body.2.weight" in root.evidence["re-run"] and "changed in place" in root.evidence["re-run"]
    assert "not located" in root.blame_reason


def test_a_fault_the_re_run_cannot_reproduce_keeps_the_run_s_record():
    """A fault that depends on something no version counter sees (a Python
    flag) is gone by the re-run: the run's own record stays, with a note."""
    model, target, x = _model("mlp")
    broken = {"now": False}
    target.register_forward_hook(lambda m, i, o: o * float("nan") if broken["now"] else None)
    with Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
        broken["now"] = True
        model(x)
        broken["now"] = False
        mon.step()
    root = mon.report().root_cause
    assert root.where == "<model>" and root.check == "finite(output)" and root.step == 1
    assert root.evidence["re-run"].startswith("a re-run of the call") and "did not reproduce" in root.evidence["re-run"]
    assert root.located_by == "not located"


def test_a_value_that_never_reaches_the_output_is_seen_only_by_every_call():
    """The trade on_violation makes: a -inf that a ReLU turns into 0 leaves
    the model's output finite, so no check between failures sees it."""

    def run(**kw):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

        def fault():
            with torch.no_grad():
                model[0].bias[0] = -INF

        return _fault_at_step_1(model, torch.rand(3, 4), fault, **kw)

    assert run().ok
    every = run(leaf_checks="every_call")
    assert every.root_cause.module == "0" and every.root_cause.step == 1, str(every)


def test_the_first_call_sees_a_value_that_never_reaches_the_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias[0] = -INF
    with Monitor(model, defaults=True) as mon:
        model(torch.rand(3, 4))
    assert mon.report().root_cause.module == "0"


def test_guarded_modules_are_checked_on_every_call():
    """A range contract broken with a finite output: only the guard sees it."""
    model, target, x = _model("mlp")
    C.guard(target, ensures=[C.in_range("result", -1e3, 1e3)])

    def fault():
        with torch.no_grad():
            target.weight.mul_(1e6)

    rep = _fault_at_step_1(model, x, fault)
    root = rep.root_cause
    assert root is not None and root.module == "body.2" and root.step == 1, str(rep)
    assert "in_range" in root.check


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), "on_violation"),
        (dict(replay=False), "every_call"),
        (dict(backward=True), "every_call"),
        (dict(modules=["body.0"]), "every_call"),
        (dict(leaf_checks="every_call"), "every_call"),
    ],
)
def test_default_leaf_checks(kwargs, expected):
    assert Monitor(MLP(), defaults=True, **kwargs).leaf_checks == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(leaf_checks="sometimes"),
            "Monitor(leaf_checks='sometimes'): expected one of 'on_violation', 'every_call'",
        ),
        (
            dict(leaf_checks="on_violation", replay=False),
            "Monitor(leaf_checks='on_violation', replay=False): leaves are checked when a failing call is replayed",
        ),
        (
            dict(leaf_checks="on_violation", modules=["body.0"]),
            "Monitor(leaf_checks='on_violation', modules=...): the model's outputs stand in for the leaves",
        ),
    ],
)
def test_bad_leaf_checks_name_the_problem(kwargs, message):
    with pytest.raises(SpecError) as e:
        Monitor(MLP(), defaults=True, **kwargs)
    assert message in str(e.value)


def test_re_run_works_with_flags_read_one_step_late(monkeypatch):
    """The CUDA path on the CPU: sums are kept and read at step() (not at
    once), as on a GPU; the re-run still finds the leaf."""
    from modpact.runtime import _buffer

    monkeypatch.setattr(_buffer.FlagBuffer.__init__, "__defaults__", (False,))  # host_compare=False
    model, target, x = _model("mlp")
    with Monitor(model, defaults=True) as mon:
        assert not mon._recorder.buffer.host_compare
        model(x)
        mon.step()
        with torch.no_grad():
            target.weight[0, 0] = NAN
        model(x)
        assert mon._recorder.buffer.size == 1  # the output's sum, waiting for step()
        mon.step()
    root = mon.report().root_cause
    assert root.module == "body.2" and root.step == 1 and root.evidence["failing"] > 0
