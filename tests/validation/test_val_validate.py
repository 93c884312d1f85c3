"""validate() finds planted bugs in small modules, passes correct ones, rejects
inputs that break preconditions, and reports a shrunk, reproducible counterexample."""

import pytest
import torch
from torch import nn

import modpact as mp

ACT = mp.Interface(
    "act",
    inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-10, 10))},
    outputs={"y": mp.TensorSpec("batch 4", finite=True)},
)
SOFTMAX = mp.Interface(
    "softmax",
    inputs={"x": mp.TensorSpec("batch c", dtype="float32", range=(-50, 50))},
    outputs={"p": mp.TensorSpec("batch c", simplex=-1)},
)


class NanAbove(nn.Module):
    """Planted bug: NaN for inputs above a threshold."""

    def forward(self, x):
        return torch.where(x > 5, torch.full_like(x, float("nan")), torch.tanh(x))


class DropsARow(nn.Module):
    """Planted bug: a softmax that zeroes the last row of batches of 3 or more."""

    def forward(self, x):
        p = x.softmax(-1)
        if x.shape[0] >= 3:
            p = torch.cat([p[:-1], torch.zeros_like(p[-1:])])
        return p


class CentersTheBatch(nn.Module):
    """Planted bug: subtracts the batch mean, so each row depends on the other rows."""

    def forward(self, x):
        return (x - x.mean(0, keepdim=True)).softmax(-1)


class Tanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


def test_correct_modules_pass_with_figures():
    res = mp.validate(nn.Tanh(), ACT, max_examples=30, seed=0)
    assert isinstance(res, mp.ValidationResult)
    assert res.ok and res.batched and res.seed == 0
    assert res.examples >= 30 and res.test_cases == 30 and res.forwards == 30 and res.rejected == 0
    assert res.passes == {"interface 'act'": res.examples}
    assert res.seconds > 0
    assert "validate(Tanh) against 'act'" in str(res)
    assert mp.validate(nn.Softmax(-1), SOFTMAX, max_examples=30, seed=0).examples >= 30


def test_nan_above_threshold_is_found_and_shrunk():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(NanAbove(), ACT, max_examples=100, seed=0)
    err = e.value
    msg = str(err)
    assert msg.startswith("validate(NanAbove): NanAbove: output does not match interface 'act'")
    assert "outputs.y: finite expected finite values" in msg
    x = err.inputs["x"]
    assert x.shape[0] == 1 and float(x.max()) > 5  # shrunk to one row
    assert "generated inputs.x was f32[1,4]" in msg
    assert "seed: 0 (pass seed=0 to reproduce)" in msg
    assert "reproduce: @reproduce_failure(" in msg
    assert "blaming NanAbove (its inputs and preconditions held)" in msg
    assert isinstance(err, mp.ContractViolation) and isinstance(err.violation, mp.InterfaceViolation)


def test_the_same_seed_gives_the_same_counterexample():
    def run():
        with pytest.raises(mp.ValidationFailure) as e:
            mp.validate(NanAbove(), ACT, max_examples=50, seed=123)
        return e.value.inputs["x"]

    assert torch.equal(run(), run())


def test_softmax_dropping_a_row_is_found():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(DropsARow(), SOFTMAX, max_examples=100, seed=0, batch=False)
    msg = str(e.value)
    assert "outputs.p: simplex expected non-negative, sums to 1 along dim -1" in msg
    assert e.value.inputs["x"].shape[0] == 3  # the smallest batch that shows the bug
    assert "1 of 3 failing" in msg


def test_not_batch_independent_is_found_by_the_contract_unbatched():
    m = mp.guard(CentersTheBatch(), interface=SOFTMAX, ensures=[mp.batch_independent("x")])
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(m, max_examples=100, seed=0, batch=False)
    assert "condition: batch_independent(x -> result)" in str(e.value)
    assert "blaming CentersTheBatch (its preconditions held)" in str(e.value)


def test_not_batch_independent_is_found_by_batched_evaluation():
    # two rows per example: alone, batch_independent's permuted sub-batch is both rows, which
    # centering does not change, so each example passes alone; only a group shows the bug
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(
            CentersTheBatch(),
            SOFTMAX,
            contracts=[mp.batch_independent("x")],
            max_examples=100,
            seed=0,
            dims={"batch": 2},
        )
    msg = str(e.value)
    assert "fails when evaluated in one forward with 1 other generated example(s)" in msg
    assert "(not batch-independent)" in msg
    assert "blaming CentersTheBatch (its output rows depend on other rows)" in msg


def test_a_module_that_mixes_rows_is_reported_when_it_only_fails_batched():
    class MixesOnlyAcrossExamples(nn.Module):  # fine per example unless another example is in the batch
        def forward(self, x):
            y = torch.tanh(x)
            if x.shape[0] > 1 and not torch.equal(x, x[:1].expand_as(x)):
                y = y + float("nan") * (x != x[:1]).any()
            return y

    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(MixesOnlyAcrossExamples(), ACT, max_examples=100, seed=0, dims={"batch": 1})
    assert "passes alone but fails when evaluated in one forward with" in str(e.value)


def test_interface_and_conditions_come_from_the_guard():
    m = mp.guard(nn.Tanh(), interface=ACT, ensures=[mp.in_range("y", -1, 1)])
    res = mp.validate(m, max_examples=10, seed=0)
    assert set(res.passes) == {"interface 'act'", "in_range(y, -1, 1)"}
    bad = mp.guard(nn.Identity(), interface=ACT, ensures=[mp.in_range("y", -1, 1)])
    with pytest.raises(mp.ValidationFailure, match=r"postcondition failed"):
        mp.validate(bad, max_examples=50, seed=0)


def test_extra_contracts_are_checked():
    with pytest.raises(mp.ValidationFailure, match=r"condition: <lambda>|condition: lambda"):
        mp.validate(
            nn.Identity(), ACT, contracts=[lambda result: bool((result.abs() <= 1).all())], max_examples=50, seed=0
        )


def test_one_extra_condition_needs_no_list():
    with pytest.raises(mp.ValidationFailure, match=r"condition: <lambda>|condition: lambda"):
        mp.validate(
            nn.Identity(), ACT, contracts=lambda result: bool((result.abs() <= 1).all()), max_examples=50, seed=0
        )
    with pytest.raises(mp.ValidationFailure, match=r"in_range\(result, -1, 1\)"):
        mp.validate(nn.Identity(), ACT, contracts=mp.in_range("result", -1, 1), max_examples=50, seed=0)
    with pytest.raises(mp.ValidationFailure, match=r"condition: <lambda>|condition: lambda"):
        mp.validate(nn.Identity(), ACT, contracts={"ensures": lambda result: bool((result.abs() <= 1).all())}, seed=0)


def test_precondition_failures_are_rejected_not_failures():
    calls = []

    class OnlyPositive(nn.Module):
        def forward(self, x):
            calls.append(x)
            return torch.where((x > 0).any(), torch.log(x.clamp_min(1e-3)), torch.full_like(x, float("nan")))

    iface = mp.Interface(
        "pos",
        inputs={"x": mp.TensorSpec("batch 2", dtype="float32", range=(-1, 1))},
        outputs={"y": mp.TensorSpec("batch 2", finite=True)},
    )
    res = mp.validate(
        OnlyPositive(), iface, contracts={"requires": [lambda x: bool((x > 0).any())]}, max_examples=30, seed=1
    )
    assert res.rejected > 0 and res.examples > 0
    assert all(bool((x > 0).any()) for x in calls)


def test_unsatisfiable_preconditions_say_so():
    with pytest.raises(mp.SpecError, match="the preconditions rejected \\(nearly\\) every generated input"):
        mp.validate(Tanh(), ACT, contracts={"requires": [lambda x: bool((x > 100).all())]}, max_examples=20, seed=0)


def test_a_broken_condition_is_a_contract_error():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(nn.Tanh(), ACT, contracts=[lambda result: result.sum()], max_examples=5, seed=0)
    assert "could not be evaluated" in str(e.value)
    assert isinstance(e.value.violation, mp.ContractError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "validate(Tanh): no interface to generate inputs from; pass interface=..."),
        ({"interface": ACT, "max_examples": 0}, "validate(max_examples=0): expected a positive int"),
        ({"interface": ACT, "seed": "x"}, "validate(seed='x'): expected an int or None"),
        ({"interface": ACT, "group": 0}, "validate(group=0): expected a positive int"),
        (
            {
                "interface": mp.Interface("v", inputs={"x": mp.TensorSpec("4")}, outputs={"y": mp.TensorSpec("4")}),
                "batch": True,
            },
            "validate(batch=True): interface 'v' has no batch dim",
        ),
    ],
    ids=["no-interface", "max-examples", "seed", "group", "no-batch-dim"],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(mp.SpecError) as e:
        mp.validate(nn.Tanh(), **kwargs)
    assert message in str(e.value)


def test_batched_and_unbatched_check_the_same_contracts():
    a = mp.validate(nn.Tanh(), ACT, max_examples=20, seed=0, batch=True)
    b = mp.validate(nn.Tanh(), ACT, max_examples=20, seed=0, batch=False)
    assert a.batched and not b.batched
    assert a.examples > b.examples == 20 and a.forwards == b.forwards == 20


def test_functions_with_contracts_validate_too():
    @mp.contract(interface=ACT, ensures=[mp.finite("result")])
    def f(x):
        return torch.sigmoid(x)

    assert mp.validate(f, max_examples=10, seed=0).examples >= 10


def test_multi_input_dims_are_shared():
    iface = mp.Interface(
        "add",
        inputs={
            "a": mp.TensorSpec("batch n", dtype="float32", finite=True),
            "b": mp.TensorSpec("batch n", dtype="float32", finite=True),
        },
        outputs={"y": mp.TensorSpec("batch n")},
    )

    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    assert mp.validate(Add(), iface, max_examples=20, seed=0).examples >= 20


@pytest.mark.cuda
def test_validation_on_cuda_generates_on_the_device():
    iface = mp.Interface(
        "act",
        inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-10, 10), device="cuda")},
        outputs={"y": mp.TensorSpec("batch 4", finite=True, device="cuda")},
    )
    res = mp.validate(Tanh(), iface, max_examples=20, seed=0, device="cuda")
    assert res.examples >= 20
    with pytest.raises(mp.ValidationFailure, match="finite expected finite values"):
        mp.validate(NanAbove(), iface, max_examples=100, seed=0, device="cuda")


def test_a_module_that_raises_on_valid_inputs_is_blamed():
    class RaisesOnBigBatches(nn.Module):
        def forward(self, x):
            if x.shape[0] > 2:
                raise RuntimeError("index out of range in self")
            return torch.tanh(x)

    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(RaisesOnBigBatches(), ACT, max_examples=100, seed=0)
    msg = str(e.value)
    assert msg.startswith(
        "validate(RaisesOnBigBatches): RaisesOnBigBatches raised RuntimeError: index out of range "
        "in self (on a generated example, shrunk)"
    )
    assert "condition: raises no exception" in msg
    assert "blaming RaisesOnBigBatches (its inputs and preconditions held)" in msg
    assert e.value.inputs["x"].shape[0] == 3


def test_dims_naming_an_unknown_dim_is_rejected():
    with pytest.raises(mp.SpecError, match=r"dims=\{'btach': 4\}: no dim 'btach' in the shapes \(dims: batch\)"):
        mp.validate(Tanh(), ACT, dims={"btach": 4})


def test_a_precondition_that_cannot_be_evaluated_is_reported():
    with pytest.raises(mp.ValidationFailure) as e:
        mp.validate(Tanh(), ACT, contracts={"requires": [lambda x: x.sum()]}, max_examples=5, seed=0)
    assert "precondition could not be evaluated" in str(e.value)
    assert "blaming the contract (not the module or its caller)" in str(e.value)


def test_the_printed_reproduce_failure_replays_the_counterexample():
    with pytest.raises(mp.ValidationFailure) as first:
        mp.validate(NanAbove(), ACT, max_examples=100)  # random seed
    blob = first.value.evidence["reproduce"]
    assert blob.startswith("@reproduce_failure(")
    with pytest.raises(mp.ValidationFailure) as again:
        mp.validate(NanAbove(), ACT, max_examples=100, reproduce=blob)
    assert torch.equal(first.value.inputs["x"], again.value.inputs["x"])
    with pytest.raises(mp.SpecError, match="validate\\(reproduce='abc'\\): expected the text a failure printed"):
        mp.validate(NanAbove(), ACT, reproduce="abc")
