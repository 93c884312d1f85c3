import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import modpact as mp
from modpact.decomposition.training import make_cnn, make_mlp
from modpact.errors import SpecError


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.a(x)
        g = self.b(torch.relu(h))
        return self.c(g + h + x)


def test_mlp_stages_reproduce_outputs_exactly(mlp, digits):
    x = digits.x_test
    parts = mp.split(mlp, at=["1", "3"], example=x[:8])
    assert len(parts) == 3 and parts.cuts == ["1", "3"]
    assert torch.equal(parts(x), mlp(x))
    h = x
    for stage in parts:
        h = stage(h)
    assert torch.equal(h, mlp(x))


def test_interfaces_have_symbolic_batch_and_chain(mlp, digits):
    parts = mp.split(mlp, at=["1"], example=digits.x_test[:5])
    first, last = parts.interfaces
    assert str(first.inputs["input"].shape) == "batch 64"
    assert str(next(iter(first.outputs.values())).shape) == "batch 64"
    assert str(last.outputs["result"].shape) == "batch 10"
    assert all(parts.edges())
    first.check_inputs(torch.rand(17, 64))  # any batch size


def test_skip_connection_crosses_the_cut_as_several_values():
    torch.manual_seed(0)
    model, x = Residual(), torch.randn(4, 6)
    parts = mp.split(model, at=["a", "b"], example=x)
    assert list(parts.interfaces[0].outputs) == ["x", "a"]  # x is still needed after the cut
    assert list(parts.interfaces[1].inputs) == ["x", "a"]
    assert torch.equal(parts(x), model(x))


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.lstm, self.head = nn.Embedding(20, 4), nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, ids):
        out, (_h, _c) = self.lstm(self.embed(ids))
        return self.head(out)


def test_a_cut_after_an_lstm_hands_its_tuple_over_as_one_value():
    torch.manual_seed(0)
    model, ids = Tagger(), torch.randint(0, 20, (3, 7))
    parts = mp.split(model, at=["lstm"], example=ids)
    assert parts.carried == [["lstm"]]
    out, (h, c) = parts[0](ids)  # (out, (h, c)), as nn.LSTM returns it
    assert torch.equal(parts[1]((out, (h, c))), model(ids)) and torch.equal(parts(ids[:2]), model(ids[:2]))
    # the tuple is described as what it is, on both sides of the cut, and nothing is left undescribed
    assert parts.undescribed == [[], []]
    crossing = parts.interfaces[0].outputs["lstm"]
    assert isinstance(crossing, mp.TupleSpec) and crossing == parts.interfaces[1].inputs["lstm"]
    assert crossing.check((out, (h, c))) == [] and crossing.check(out) != []


def test_cnn_split_is_exact_and_cut_order_follows_execution():
    torch.manual_seed(0)
    model, x = make_cnn(), torch.rand(6, 64)
    parts = mp.split(model, at=["6", "2"], example=x)
    assert parts.cuts == ["2", "6"]
    assert str(parts.interfaces[0].outputs["_2"].shape) == "batch 8 8 8"
    assert torch.equal(parts(x), model(x))


@settings(max_examples=15, deadline=None)
@given(widths=st.lists(st.integers(1, 9), min_size=1, max_size=4), data=st.data())
def test_any_cuts_of_any_mlp_reproduce_exactly(widths, data):
    torch.manual_seed(len(widths))
    model = make_mlp(5, widths, 3)
    cuttable = [str(i) for i in range(len(model) - 1)]
    at = data.draw(st.lists(st.sampled_from(cuttable), min_size=1, unique=True))
    x = torch.randn(data.draw(st.integers(1, 6)), 5)
    assert torch.equal(mp.split(model, at=at, example=x)(x), model(x))


def test_stages_share_parameters_with_the_model(mlp):
    parts = mp.split(mlp, at=["1"], example=torch.rand(2, 64))
    assert parts[0].get_submodule("0").weight is mlp[0].weight


def test_stages_follow_weights_changed_in_place_not_a_replaced_submodule():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)), torch.randn(4, 3)
    parts = mp.split(model, at=["0"], example=x)
    model.load_state_dict({k: torch.randn_like(v) for k, v in model.state_dict().items()})
    assert torch.equal(parts(x), model(x))
    model[2] = nn.Linear(3, 2)  # a new object: the stages keep the old one (as documented)
    assert not torch.equal(parts(x), model(x))


def test_refuses_unknown_submodule(mlp):
    with pytest.raises(
        SpecError, match=r"^split\(at=\['9'\]\): Sequential has no submodule named '9'; submodules are: 0, 1, 2, 3, 4$"
    ):
        mp.split(mlp, at=["9"], example=torch.rand(2, 64))


def test_refuses_a_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(3, 3)

        def forward(self, x):
            return self.f(self.f(x))

    with pytest.raises(SpecError) as e:
        mp.split(Twice(), at=["f"], example=torch.rand(2, 3))
    assert str(e.value) == (
        "split(at=['f']): cannot cut Twice: submodule 'f' is called 2 times in forward; a cut needs exactly one call"
    )


def test_refuses_an_empty_last_stage(mlp):
    with pytest.raises(SpecError) as e:
        mp.split(mlp, at=["4"], example=torch.rand(2, 64))
    assert str(e.value) == (
        "split(at=['4']): cannot cut Sequential: the cut after '4' leaves stage 1 empty; cut before the last operation"
    )


def test_refuses_untraceable_models():
    from test_split_real import Branchy  # a branch on a tensor's values: neither fx nor export follows it

    with pytest.raises(SpecError, match="torch.fx could not trace Branchy"):
        mp.split(Branchy(), at=["f"], example=torch.rand(2, 3))


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ([], "split(at=[]): expected a non-empty list of names of submodules of Sequential"),
        ("1", "split(at='1'): expected a non-empty list of names of submodules of Sequential"),
        ([1], "split(at=[1]): expected a non-empty list of names of submodules of Sequential"),
        (["1", "3", "1"], "split(at=['1', '3', '1']): '1' named twice; name each cut once"),
    ],
    ids=["empty", "string", "not-a-name", "twice"],
)
def test_refuses_bad_cut_lists(mlp, at, message):
    with pytest.raises(SpecError) as e:
        mp.split(mlp, at=at, example=torch.rand(2, 64))
    assert str(e.value) == message


def test_an_example_that_does_not_fit_is_named(mlp):
    with pytest.raises(
        SpecError, match=r"^split\(at=\['1'\]\): cannot cut Sequential: stage 0 failed on the example \(f32\[2,32\]\): "
    ):
        mp.split(mlp, at=["1"], example=torch.rand(2, 32))
