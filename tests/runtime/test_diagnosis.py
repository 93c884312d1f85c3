"""The re-run that locates a root cause: faithful or not at all, finer than
modules, and saying only what it checked."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modpact.runtime import Monitor

NAN = float("nan")


class Block(nn.Module):
    """Attention (out_proj never called as a module), a residual add and a
    LayerScale parameter used in the block's own forward."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.gamma = nn.Parameter(torch.ones(d))

    def forward(self, x):
        h = self.ln(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.gamma * self.mlp(x)


class Net(nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.inp = nn.Linear(8, d)
        self.blocks = nn.Sequential(Block(d), Block(d))
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        return self.head(self.blocks(self.inp(x)).mean(1))


def _net():
    torch.manual_seed(0)
    return Net(), torch.rand(4, 5, 8), torch.randint(0, 3, (4,))


def _train(model, x, y, fault, **kw):
    """Three steps of the README's loop: backward, optimizer step, then mon.step()."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Monitor(model, defaults=True, **kw) as mon:
        for step in range(3):
            if step == 1:
                fault()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            mon.step()
    return mon.report()


def _nan(param: torch.Tensor):
    def fault():
        with torch.no_grad():
            param.view(-1)[-1] = NAN  # (attention: a weight of the value projection)

    return fault


def test_training_loop_blames_the_faulty_module_not_the_first_layer():
    model, x, y = _net()
    rep = _train(model, x, y, _nan(model.blocks[1].mlp[0].weight))
    root = rep.root_cause
    assert root.module == "blocks.1.mlp.0" and root.step == 1 and root.located_by == "re-run", str(rep)
    assert "its parameter weight holds" in root.blame_reason and "inputs were finite" not in root.blame_reason


def test_settle_at_step_does_not_blame_on_an_unfaithful_re_run():
    """settle="step": the optimizer changed the weights before the flags were
    read; the re-run would not be the call that failed, so there is none and
    nothing is blamed on it."""
    model, x, y = _net()
    rep = _train(model, x, y, _nan(model.blocks[1].mlp[0].weight), settle="step")
    root = rep.root_cause
    assert root.module == "" and root.located_by == "not located" and root.blame == "<model>", str(rep)
    assert "changed in place since the call" in root.evidence["re-run"]
    assert "optimizer" in root.evidence["re-run"]
    assert not any(v.module == "inp" for v in rep.violations)  # the first layer is not blamed


@pytest.mark.parametrize(
    "param, blamed, op",
    [
        ("blocks.0.attn.in_proj_weight", "blocks.0.attn", "F.multi_head_attention_forward"),
        ("blocks.0.attn.out_proj.weight", "blocks.0.attn.out_proj", "F.multi_head_attention_forward"),
        ("blocks.1.gamma", "blocks.1", "Tensor.mul"),
    ],
)
def test_code_between_modules_is_blamed_on_the_module_whose_forward_runs_it(param, blamed, op):
    model, x, _ = _net()
    _nan(model.get_parameter(param))()
    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        model(x)
    rep = mon.report()
    root = rep.root_cause
    assert root.module == blamed and root.blame == blamed, str(rep)
    assert root.evidence.get("operation", root.evidence.get("began", "")).startswith(op) or op in root.evidence.get(
        "began", ""
    ), root.evidence
    assert "test_diagnosis.py" in json.dumps(root.evidence)  # the user's source line
    # the next LayerNorm / Linear that first *saw* the value is a consequence, not blamed
    assert all(v.blame == blamed for v in rep.violations), [(v.module, v.blame) for v in rep.violations]


def test_non_leaf_modules_with_parameters_of_their_own_get_default_checks():
    model, x, _ = _net()
    with Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        pass
    contracts = {c.module: c.defaults for c in mon.report().contracts}
    assert "finite(output)" in contracts["blocks.0.attn"] and "finite(output)" in contracts["blocks.0"]
    assert "blocks" not in contracts  # a container without parameters of its own


class Kw(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, *, input):
        return self.lin(input)


@pytest.mark.parametrize("leaf_checks", ["on_violation", "every_call"])
def test_a_nan_in_a_keyword_input_blames_the_input_data(leaf_checks):
    model = Kw()
    x = torch.rand(3, 4)
    x[1, 2] = NAN
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks=leaf_checks) as mon:
        model(input=x)
    root = mon.report().root_cause
    assert root.blame == "the input data" and root.tensor == "inputs.input" and root.check == "finite(input)"


def test_nested_inputs_are_checked_like_positional_ones():
    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, batch):
            return self.lin(batch["features"][0])

    model = Dict()
    x = torch.rand(3, 4)
    x[0, 0] = NAN
    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        model({"features": (x,)})
    root = mon.report().root_cause
    assert root.blame == "the input data" and root.tensor == "inputs[0].features[0]", root


def test_an_all_nan_input_is_never_called_finite():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks="every_call", replay=False) as mon:
        model(torch.full((2, 4), NAN))
    rep = mon.report()
    assert rep.root_cause.blame == "the input data", str(rep)
    assert not any("inputs were finite" in v.blame_reason for v in rep.violations), str(rep)


class Cast(nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


def test_autocast_is_not_a_dtype_violation_but_a_real_downcast_is():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    x = torch.rand(3, 4)
    with torch.no_grad(), Monitor(model, defaults=True, leaf_checks="every_call") as mon:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
        mon.step()
    assert mon.report().ok, str(mon.report())
    for region in (False, True):  # a cast to float16 is not what bf16 autocast does
        down = nn.Sequential(nn.Linear(4, 4), Cast(torch.float16))
        with torch.no_grad(), Monitor(down, defaults=True, leaf_checks="every_call") as mon:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=region):
                down(x)
        root = mon.report().root_cause
        assert root is not None and root.module == "1" and root.check == "dtype stable", region


def test_a_re_run_reproduces_the_call_s_autocast_region():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    with torch.no_grad():
        model[1].weight[0, 0] = NAN
    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.rand(3, 4))
    rep = mon.report()
    assert rep.root_cause.module == "1" and rep.root_cause.located_by == "re-run", str(rep)
    assert "bf16" in rep.root_cause.evidence["value"]  # the re-run ran under autocast, as the call did


def test_a_forward_that_raises_is_a_failed_verdict_blamed_on_the_input_ids(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    ids = torch.tensor([[1, 2, 10]])
    with pytest.raises(IndexError):
        with torch.no_grad(), Monitor(model, defaults=True) as mon:
            model(ids)
    rep = mon.report()
    assert not rep.ok and rep.headline().startswith("FAILED"), rep.headline()
    root = rep.root_cause
    assert root.kind == "exception" and root.module == "0" and root.blame == "the input data", str(rep)
    assert "from 1 to 10, outside 0's 0..9" in root.blame_reason and "IndexError" in root.evidence["error"]
    path = tmp_path / "report.json"
    path.write_text(rep.to_json())
    out = subprocess.run([sys.executable, "-m", "modpact", "report", str(path), "--strict"], capture_output=True)
    assert out.returncode == 1, out.stdout + out.stderr


def test_a_forward_that_raises_in_a_module_blames_that_module():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("broken on purpose")

    model = nn.Sequential(nn.Linear(4, 4), Broken(), nn.Linear(4, 2))
    with pytest.raises(RuntimeError):
        with torch.no_grad(), Monitor(model, defaults=True, leaf_checks="every_call", replay=False) as mon:
            model(torch.rand(2, 4))
    root = mon.report().root_cause
    assert root.kind == "exception" and root.module == "1" and root.blame == "1"
    assert "raised RuntimeError: broken on purpose" in root.blame_reason


class Reused(nn.Module):
    """torchvision's BasicBlock: one ReLU module called twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        out = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.head(out.mean((2, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("wrap", [False, True])
def test_compiled_models_keep_their_paths_and_tell_a_reused_module_s_calls_apart(wrap):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Reused().eval()
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] = NAN
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad(), Monitor(compiled if wrap else model, defaults=True, leaf_checks="every_call") as mon:
        compiled(torch.rand(2, 2, 6, 6))
    rep = mon.report()
    assert not any("_orig_mod" in m for m in rep.modules_monitored), rep.modules_monitored
    assert rep.root_cause.module == "conv2", str(rep)
    if not wrap:  # checked inside compiled code: the reused ReLU's second call has a flag of its own
        assert any(v.module == "relu" and v.tensor == "output (call 2)" for v in rep.violations), str(rep)
    torch._dynamo.reset()


class BadGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g * NAN


class GradFault(nn.Module):
    def forward(self, x):
        return BadGrad.apply(x)


def test_backward_blames_the_module_whose_backward_made_the_first_bad_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), GradFault(), nn.Linear(4, 2))
    with Monitor(model, defaults=True, backward=True) as mon:
        model(torch.rand(3, 4)).sum().backward()
        mon.step()
    root = mon.report().root_cause
    assert root.phase == "backward" and root.module == "0" and root.blame == "1", str(mon.report())


def test_a_call_mutating_its_own_input_is_not_re_run():
    class Inplace(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            x.mul_(2.0)  # changes the caller's tensor
            return self.lin(x)

    model = Inplace()
    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        model(torch.rand(2, 4))  # the first call checks every leaf
        mon.step()
        model.lin.weight[0, 0] = NAN
        model(torch.rand(2, 4))  # between failures only the model's output is checked
    root = mon.report().root_cause
    assert root.located_by == "not located" and "changed its own input" in root.evidence["re-run"]
