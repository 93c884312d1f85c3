"""Validation leaves the module as it was: buffers (BatchNorm running
statistics), train/eval modes, parameters (values, objects, requires_grad) and
the random generators are the same after validate and check_substitutable,
also when they raise; every example starts from the same state."""

import random

import pytest
import torch
from torch import nn

import modpact as mp

IMG = mp.Interface(
    "img",
    inputs={"x": mp.TensorSpec("batch 3 6 6", dtype="float32", range=(-3, 3))},
    outputs={"y": mp.TensorSpec("batch 4", dtype="float32")},
)


class Net(nn.Module):
    """Conv -> BatchNorm (train mode: running statistics change) -> Dropout -> pool -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.drop(self.bn(self.conv(x))).mean((2, 3)))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _rngs():
    return torch.get_rng_state(), random.getstate()


def test_validate_in_train_mode_restores_batchnorm_dropout_and_rngs():
    torch.manual_seed(0)
    model = Net().train()
    model.drop.eval()  # a submodule in another mode than its parent: each keeps its own
    # the forwards do change the running statistics (what is restored is real)
    probe = Net().train()
    probe(torch.randn(2, 3, 6, 6))
    assert int(probe.bn.num_batches_tracked) == 1
    before, rng = _state(model), _rngs()
    res = mp.validate(model, IMG, max_examples=30, seed=0, batch=False)
    _same(before, _state(model))
    assert int(model.bn.num_batches_tracked) == 0
    assert model.training and model.bn.training and not model.drop.training
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"} <= set(res.restored)
    assert "changed by the forwards and restored: bn.num_batches_tracked" in str(res)


class Mutates(nn.Module):
    """Changes itself in every forward (mode, requires_grad, a parameter object, a buffer) and raises on call 3."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        self.calls += 1
        if int(self.calls) >= 3:
            raise RuntimeError("third call")
        self.bn.train()
        self.bn(torch.randn(8, 4))  # updates the running statistics, draws from torch's generator
        random.random()
        self.lin.weight.requires_grad_(False)
        self.lin.bias = nn.Parameter(torch.full((4,), 7.0))
        self.eval()
        return self.lin(x)


VEC = mp.Interface(
    "vec",
    inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1))},
    outputs={"y": mp.TensorSpec("batch 4")},
)


def test_validate_restores_everything_when_it_raises():
    torch.manual_seed(1)
    model = Mutates().train()
    model.bn.eval()
    bias = model.lin.bias
    before, rng = _state(model), _rngs()
    # every example starts from the same state, so calls never reaches 3: no failure...
    res = mp.validate(model, VEC, max_examples=20, seed=0, batch=False)
    assert res.examples > 0
    _same(before, _state(model))
    # ...and with the state carried over it would: a mid-validation exception, then everything restored
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(_Twice(model), VEC, max_examples=20, seed=0, batch=False)
    assert "RuntimeError: third call" in str(e.value)
    _same(before, _state(model))
    assert model.lin.bias is bias and model.lin.weight.requires_grad and bias.requires_grad
    assert model.training and not model.bn.training
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]


class _Twice(nn.Module):
    """Calls the module three times in one forward (its state is restored only between examples)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        self.inner(x)
        self.inner(x)
        return self.inner(x)


def test_check_substitutable_restores_both_modules():
    torch.manual_seed(2)
    a, b = Net().train(), Net().train()
    b.load_state_dict(a.state_dict())
    a.drop.p = b.drop.p = 0.0  # same outputs in train mode: agreement is about the batch statistics only
    data = torch.randn(6, 3, 6, 6)
    sa, sb, rng = _state(a), _state(b), _rngs()
    res = mp.check_substitutable(a, b, IMG, max_examples=15, seed=0, data=data)
    assert res.ok
    _same(sa, _state(a))
    _same(sb, _state(b))
    assert int(a.bn.num_batches_tracked) == 0 and int(b.bn.num_batches_tracked) == 0
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert "bn.num_batches_tracked" in res.restored


def test_unseeded_runs_still_differ():
    """The seed is not drawn from the restored `random`: two unseeded runs use different seeds."""
    seeds = {mp.validate(nn.Tanh(), VEC, max_examples=2).seed for _ in range(3)}
    assert len(seeds) == 3


@pytest.mark.cuda
def test_validate_on_cuda_restores_the_cuda_generator_and_buffers():
    torch.manual_seed(3)
    model = Net().cuda().train()
    torch.cuda.synchronize()
    before, cuda_rng = _state(model), torch.cuda.get_rng_state_all()
    res = mp.validate(model, IMG, max_examples=10, seed=0, batch=False, device="cuda")
    _same(before, _state(model))
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), cuda_rng))
    assert "bn.num_batches_tracked" in res.restored
