"""validate(..., data=...): real batches (the one data convention of
interfaces/batches.py) checked against the interface and the postconditions
before the generated examples; the result counts both."""

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.errors import SpecError, ValidationFailure

IFACE = mp.Interface(
    "lin",
    inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1))},
    outputs={"y": mp.TensorSpec("batch 3", dtype="float32", finite=True)},
)


@pytest.fixture
def lin():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_real_batches_are_checked_and_counted(lin):
    g = torch.Generator().manual_seed(0)
    data = [torch.rand(5, 4, generator=g), (torch.rand(2, 4, generator=g), torch.tensor([0, 1]))]
    res = mp.validate(lin, IFACE, max_examples=10, seed=0, data=data)
    assert res.data_examples == 2 and res.examples >= 10
    assert res.passes["interface 'lin'"] == res.examples + 2
    assert str(res).startswith(f"validate(Linear) against 'lin': 2 real batches (data) and {res.examples} generated")
    # without data nothing real is counted, and the text is as before
    plain = mp.validate(lin, IFACE, max_examples=5, seed=0)
    assert plain.data_examples == 0 and f"{plain.examples} examples passed" in str(plain)


def test_a_batch_outside_the_input_interface_blames_the_data(lin):
    data = [torch.rand(2, 4), torch.full((3, 4), 5.0)]
    with pytest.raises(ValidationFailure) as info:
        mp.validate(lin, IFACE, max_examples=5, seed=0, data=data)
    e = info.value
    assert e.headline.startswith(
        "validate(Linear): data batch 1 breaks the input interface or a precondition: Linear: input does not "
        "match interface 'lin'"
    )
    assert e.blame == "the input data (data batch 1)"
    assert e.blame_reason == "data batch 1 does not satisfy Linear's input contract"
    assert "inputs.x: range expected values in [-1, 1], got 12 of 12 failing" in str(e)


def test_a_postcondition_broken_on_real_data_blames_the_module(lin):
    with torch.no_grad():
        lin.bias[1] = float("nan")
    with pytest.raises(ValidationFailure) as info:
        mp.validate(lin, IFACE, max_examples=5, seed=0, data=[torch.rand(2, 4)])
    e = info.value
    assert e.headline.startswith(
        "validate(Linear): data batch 0 gives outputs that break a postcondition: Linear: output does not match"
    )
    assert e.blame == "Linear"
    assert "outputs.y: finite expected finite values, got 2 of 6 failing" in str(e)


def test_data_of_another_kind_is_named(lin):
    with pytest.raises(SpecError) as info:
        mp.validate(lin, IFACE, max_examples=5, seed=0, data="rows.csv")
    assert str(info.value).startswith("validate(data=...): ")
    with pytest.raises(SpecError) as info:
        mp.validate(lin, IFACE, max_examples=5, seed=0, data=[])
    assert str(info.value) == "validate(data=...): the data gave no batches"


@pytest.mark.usefixtures("one_thread")
def test_lstm_tagger_with_its_own_batches():
    import zoo

    torch.manual_seed(0)
    tagger = zoo.LSTMTagger().eval()
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 50, (4, t), generator=g) for t in (6, 9)]
    iface = mp.infer_interface(tagger, *data, finite=True)
    res = mp.validate(tagger, iface, max_examples=10, seed=0, data=data)
    assert res.data_examples == 2 and res.examples >= 10
