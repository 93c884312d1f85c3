"""check_substitutable's data argument follows the one convention (interfaces/batches.py):
dict batches passed as keywords, labels as a list of ints, DataLoaders; wrong keys are named."""

import copy

import pytest
import torch
from torch import nn

import modpact as mp

PAIR = mp.Interface(
    "pair",
    inputs={
        "a": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1)),
        "b": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1)),
    },
    outputs={"logits": mp.TensorSpec("batch 3", finite=True)},
)


class TwoInputs(nn.Module):
    """Called with keywords only, as a Hugging Face model is."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, *, a, b):
        return self.lin(torch.cat([a, b], -1))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TwoInputs()


def test_dict_batches_and_a_list_of_labels(model):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(10, 4, generator=g) * 2 - 1, torch.rand(10, 4, generator=g) * 2 - 1
    labels = model(a=a, b=b).argmax(-1).tolist()
    res = mp.check_substitutable(
        model, copy.deepcopy(model), PAIR, max_examples=10, seed=0, data=({"a": a, "b": b}, labels)
    )
    assert res.ok and res.data.examples == 1 and res.data.accuracy_original == 1.0
    batches = [({"a": a[:6], "b": b[:6]}, labels[:6]), {"a": a[6:], "b": b[6:]}]
    res = mp.check_substitutable(model, copy.deepcopy(model), PAIR, max_examples=5, seed=0, data=batches)
    assert res.data.examples == 2 and res.data.elements == 30


def test_a_dict_batch_with_other_keys_is_named(model):
    with pytest.raises(mp.SpecError) as e:
        mp.check_substitutable(
            model, model, PAIR, max_examples=2, seed=0, data={"a": torch.zeros(2, 4), "c": torch.zeros(2, 4)}
        )
    assert str(e.value) == (
        "check_substitutable(data=...): batch 0 has keys ['a', 'c'] but the interface's inputs are ['a', 'b'] "
        "(missing ['b']) (unknown ['c'])"
    )
    with pytest.raises(mp.SpecError) as e:
        mp.check_substitutable(model, model, PAIR, max_examples=2, seed=0, data=torch.zeros(2, 4))
    assert (
        "batch 0 is one tensor (f32[2,4]) but the interface has 2 inputs ['a', 'b']; give a dict batch naming each"
        in str(e.value)
    )
