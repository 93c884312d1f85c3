from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn
from zoo import MLP, SmallResNet, example_input

import modpact.contracts as C
from modpact.errors import FormatVersionError, MonitorError, SpecError
from modpact.runtime import DiagnosisReport, Monitor, MonitorViolation


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_exit_removes_every_hook_even_after_an_exception():
    model = MLP()
    before = hook_count(model)
    with pytest.raises(ValueError, match="boom"):
        with Monitor(model, defaults=True) as mon:
            assert mon.hooks > 0 and hook_count(model) > before
            raise ValueError("boom")
    assert hook_count(model) == before
    assert mon.hooks == 0


def test_model_without_guards_needs_defaults():
    with pytest.raises(MonitorError, match="has no guarded modules, so there is nothing to check"):
        with Monitor(MLP()):
            pass


def test_nested_monitors_on_the_same_modules_are_refused():
    model = MLP()
    with Monitor(model, defaults=True):
        with pytest.raises(MonitorError, match="already monitored by another active Monitor"):
            with Monitor(model, defaults=True):
                pass
    # and the outer one cleaned up: a new monitor can start
    with Monitor(model, defaults=True) as mon:
        model(example_input(model, 2))
    assert mon.report().ok


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="loud"), "Monitor(mode='loud'): expected one of 'raise', 'record'"),
        (dict(grad_norm=(2.0, 1.0)), "min 2.0 > max 1.0"),
        (dict(grad_norm=5), "expected a (min, max) tuple"),
    ],
    ids=["mode", "grad-norm-order", "grad-norm-type"],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(SpecError) as e:
        Monitor(MLP(), defaults=True, **kwargs)
    assert message in str(e.value)


def test_raise_mode_raises_at_step_with_the_diagnosis():
    model = MLP()
    x = example_input(model, 4)
    with torch.no_grad():
        model.head.weight[0, 0] = float("inf")
    with Monitor(model, mode="raise", defaults=True) as mon:
        model(x)
        with pytest.raises(MonitorViolation) as e:
            mon.step()
    err = e.value
    assert err.blame == "head" and err.module == "head"
    assert "root cause: postcondition finite(output) at head" in str(err)
    assert err.report.root_cause.module == "head"


def test_contract_that_raises_mid_run_blames_the_contract_and_the_run_goes_on():
    model = MLP()
    C.guard(model.body[2], ensures=[lambda result: result.no_such_attribute > 0])
    x = example_input(model, 4)
    with Monitor(model, defaults=True) as mon:
        out = model(x)
        mon.step()
    assert out.shape == (4, 10)
    root = mon.report().root_cause
    assert root.kind == "contract-error"
    assert root.blame.startswith("the contract")
    assert "AttributeError" in root.evidence["error"]


def test_clean_training_loop_with_gradients_has_no_violation():
    torch.manual_seed(0)
    model = SmallResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = example_input(model, 8), torch.randint(0, 10, (8,))
    with Monitor(model, defaults=True, backward=True, grad_norm=(None, 1e3)) as mon:
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            mon.step()
    report = mon.report()
    assert report.ok, str(report)
    assert report.steps == 3


class SqrtAbs(nn.Module):
    def forward(self, x):
        return x.abs().sqrt()  # gradient is inf at 0: forward fine, backward not


def test_non_finite_gradient_is_found_in_backward():
    model = nn.Sequential(nn.Linear(4, 4), SqrtAbs(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    with Monitor(model, defaults=True, backward=True) as mon:
        model(torch.ones(3, 4)).sum().backward()
        mon.step()
    report = mon.report()
    assert not report.ok
    kinds = {(v.phase, v.kind) for v in report.violations}
    assert ("backward", "gradient") in kinds, str(report)
    assert all(v.phase != "forward" for v in report.violations)
    # the gradient at layer 0's output is made non-finite by the backward of its consumer
    at_first = [v for v in report.violations if v.phase == "backward" and v.module == "0"]
    assert at_first and at_first[0].blame == "1", str(report)


def test_exploding_parameter_gradient_is_flagged_at_step():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    with Monitor(model, defaults=True, grad_norm=(None, 1e-6)) as mon:
        model(torch.randn(8, 4)).sum().backward()
        mon.step()
    report = mon.report()
    flagged = {v.tensor for v in report.violations if v.phase == "step"}
    assert "weight.grad" in flagged, str(report)


def test_monitor_traces_under_torch_compile_without_graph_breaks():
    model = MLP()
    x = example_input(model, 4)
    with Monitor(model, defaults=True):
        explained = torch._dynamo.explain(lambda inp: model(inp))(x)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]


def test_compiled_model_flags_reach_the_report():
    model = MLP()
    x = example_input(model, 4)
    compiled = torch.compile(model, backend="eager")
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        compiled(x)
        mon.step()
        with torch.no_grad():
            model.body[2].weight[0, 0] = float("nan")
        compiled(x)
        mon.step()
    report = mon.report()
    root = report.root_cause
    assert root is not None and root.module == "body.2" and root.step == 1, str(report)
    assert all(not v.root for v in report.violations if v is not root)


def test_compiled_calls_fall_back_to_the_model_output_under_on_violation():
    """Compiled calls keep no inputs, so they cannot be re-run with every
    leaf checked: the model's output carries the blame, and a note says why."""
    model = MLP()
    x = example_input(model, 4)
    compiled = torch.compile(model, backend="eager")
    with Monitor(model, defaults=True) as mon:
        assert mon.leaf_checks == "on_violation"
        with torch.no_grad():
            model.body[2].weight[0, 0] = float("nan")
        compiled(x)
        mon.step()
    report = mon.report()
    root = report.root_cause
    assert root.where == "<model>" and root.check == "finite(output)", str(report)
    assert root.located_by == "not located" and "torch.compile" in root.evidence["re-run"]
    assert any("not kept" in n and "torch.compile" in n for n in report.notes), report.notes


def test_report_json_round_trip_and_version_check():
    model = MLP()
    with torch.no_grad():
        model.body[0].weight[0, 0] = float("nan")
    with Monitor(model, defaults=True) as mon:
        model(example_input(model, 2))
    report = mon.report()
    again = DiagnosisReport.from_json(report.to_json())
    assert again == report
    assert again.root_cause.module == "body.0"
    bad = report.to_json().replace('"format_version": 1', '"format_version": 99')
    with pytest.raises(FormatVersionError, match="report format_version 99 is not supported"):
        DiagnosisReport.from_json(bad)


def test_violations_record_the_rank_when_distributed_is_initialised(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        model = MLP()
        with torch.no_grad():
            model.head.bias[0] = float("nan")
        with Monitor(model, defaults=True) as mon:
            model(example_input(model, 2))
        assert mon.report().root_cause.rank == 0
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
def test_cuda_steady_state_makes_no_host_device_sync():
    model = SmallResNet().cuda()
    x = example_input(model, 8).cuda()
    with Monitor(model, defaults=True, replay=False) as mon:
        model(x)
        mon.step()  # warm-up: allocations, pinned buffers
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                model(x)
                mon.step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert mon.report().ok


def test_bad_input_data_is_one_root_even_when_a_guarded_module_also_rejects_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    C.guard(model[0], interface=_range_interface(), name="0")
    x = torch.rand(4, 8)
    x[1, 2] = float("inf")
    with Monitor(model, defaults=True) as mon:
        model(x)
        mon.step()
    rep = mon.report()
    assert [v.where for v in rep.roots] == ["<model>"]
    assert rep.root_cause.blame == "the input data"
    guard_violation = next(v for v in rep.violations if v.module == "0" and v.kind == "interface")
    assert guard_violation.root is False and guard_violation.caused_by == 0


def _range_interface():
    from modpact.interfaces import Interface, TensorSpec

    return Interface(
        "enc", inputs={"x": TensorSpec("batch 8", range=(0, 1))}, outputs={"h": TensorSpec("batch 8", finite=True)}
    )


def test_guarded_modules_trace_under_torch_compile_without_graph_breaks():
    # the contracts' context variables (disabled(), the installed checker) are
    # read through ContextFlag, which dynamo can trace
    model = MLP()
    x = example_input(model, 4)
    C.guard(model.body[0], ensures=[C.in_range("result", -1e3, 1e3)], name="body.0")
    C.guard(model.head, ensures=[C.finite("result")], name="head")
    with Monitor(model, defaults=True):
        explained = torch._dynamo.explain(lambda inp: model(inp))(x)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]


def test_context_flag_keeps_per_context_values_in_eager_code():
    import contextvars

    from modpact.contracts.context import ContextFlag

    flag = ContextFlag("t", 0)
    token = flag.set(1)
    assert contextvars.copy_context().run(flag.get) == 1
    assert contextvars.Context().run(flag.get) == 0  # a fresh context sees the default
    flag.reset(token)
    assert flag.get() == 0 and flag.last == 0


def test_a_copy_made_while_the_monitor_runs_is_not_monitored():
    """``copy.deepcopy`` of a guarded model inside a Monitor (a best-so-far or
    EMA copy in a training loop) once raised ``TypeError: cannot pickle
    '_thread.lock' object`` (the copy's guard kept the Monitor's checker).
    The copy also carries the Monitor's hooks (deepcopy copies a module's
    hooks): they leave it alone, and its guard checks eagerly, during the
    Monitor and after it."""
    import copy

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    C.guard(model[0], requires=[C.finite("input")], name="0")
    bad = torch.full((2, 4), float("nan"))
    with Monitor(model) as mon:
        twin = copy.deepcopy(model)
        assert C.get_guard(twin[0]).checker is None and C.get_guard(model[0]).checker is not None
        with pytest.raises(C.ContractViolation, match=r"finite\(input\)"):
            twin(bad)
        model(torch.ones(2, 4))
        mon.step()
    rep = mon.report()
    assert not rep.violations and rep.calls == 1, str(rep)  # the copy's calls are not the Monitor's
    with pytest.raises(C.ContractViolation, match=r"finite\(input\)"):
        twin(bad)
    assert twin(torch.ones(2, 4)).shape == (2, 3)
