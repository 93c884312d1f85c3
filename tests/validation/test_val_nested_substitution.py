"""check_substitutable on nested outputs: tuples (nn.LSTM's ``(out, (h, c))``)
and dicts compared leaf by leaf, naming the path of every differing leaf;
opaque parts compared only with a given comparison, otherwise reported as not
compared."""

import copy

import pytest
import torch

from modpact.errors import SpecError, ValidationFailure
from modpact.interfaces import Interface, OpaqueSpec, TensorSpec, TupleSpec
from modpact.validation import check_substitutable

H = TensorSpec("2 batch 8", dtype="float32")
LSTM_IFACE = Interface(
    "lstm",
    {"input": TensorSpec("batch seq 4", dtype="float32", range=(0, 1))},
    {"out": TensorSpec("batch seq 8", dtype="float32"), "state": TupleSpec([H, H])},
)


def _lstm():
    torch.manual_seed(0)
    return torch.nn.LSTM(4, 8, num_layers=2, batch_first=True)


def test_an_lstm_and_its_copy_agree_on_every_leaf():
    lstm = _lstm()
    x = torch.rand(3, 5, 4)
    res = check_substitutable(lstm, copy.deepcopy(lstm), LSTM_IFACE, max_examples=5, seed=0, data=[x, x[:2]])
    assert res.ok and res.not_compared == []
    # out, h and c of every example are compared: more elements than the outputs alone hold
    assert res.data is not None and res.data.elements == 3 * 5 * 8 + 2 * (2 * 3 * 8) + 2 * 5 * 8 + 2 * (2 * 2 * 8)
    assert res.data.agreeing_elements == res.data.elements


def test_a_perturbed_lstm_names_every_differing_leaf():
    lstm = _lstm()
    bad = copy.deepcopy(lstm)
    with torch.no_grad():
        bad.weight_hh_l1.add_(0.5)
    with pytest.raises(ValidationFailure) as info:
        check_substitutable(lstm, bad, LSTM_IFACE, max_examples=5, seed=0)
    assert str(info.value).startswith("check_substitutable: LSTM disagrees with LSTM beyond tolerance 1e-05")
    assert "note: differing=outputs.out, outputs.state[0], outputs.state[1], at=outputs.out, failing=" in str(
        info.value
    )


class _CellOnly(torch.nn.Module):
    """An LSTM whose cell state ``c`` is off by ``delta`` (its output and ``h`` are exact)."""

    def __init__(self, lstm, delta):
        super().__init__()
        self.lstm, self.delta = lstm, delta

    def forward(self, input):
        out, (h, c) = self.lstm(input)
        return out, (h, c + self.delta)


def test_only_the_differing_leaf_is_named():
    lstm = _lstm()
    with pytest.raises(ValidationFailure) as info:
        check_substitutable(lstm, _CellOnly(copy.deepcopy(lstm), 0.1), LSTM_IFACE, max_examples=3, seed=0)
    assert "note: differing=outputs.state[1], at=outputs.state[1], failing=" in str(info.value)
    # on data too, the failure names the leaf count
    res = check_substitutable(
        lstm,
        _CellOnly(copy.deepcopy(lstm), 0.0),
        LSTM_IFACE,
        max_examples=3,
        seed=0,
        data=[torch.rand(2, 3, 4)],
    )
    assert res.ok


class _WithCache(torch.nn.Module):
    def __init__(self, scale=1.0, tag=0):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.scale, self.tag = scale, tag

    def forward(self, x):
        return {"logits": self.lin(x) * self.scale, "cache": _Cache(self.tag)}


class _Cache:
    def __init__(self, tag):
        self.tag = tag


CACHE_IFACE = Interface(
    "cached",
    {"x": TensorSpec("batch 3", dtype="float32", range=(-1, 1))},
    {"logits": TensorSpec("batch 2", dtype="float32"), "cache": OpaqueSpec(f"{__name__}._Cache")},
)


def test_an_opaque_part_is_reported_as_not_compared_unless_a_comparison_is_given():
    m = _WithCache()
    res = check_substitutable(m, copy.deepcopy(m), CACHE_IFACE, max_examples=3, seed=0)
    assert res.ok and res.not_compared == ["outputs.cache"]
    assert "not compared (opaque; give compare={path: fn} to compare them): outputs.cache" in str(res)
    same = check_substitutable(
        m, copy.deepcopy(m), CACHE_IFACE, max_examples=3, seed=0, compare={"outputs.cache": lambda a, b: a.tag == b.tag}
    )
    assert same.ok and same.not_compared == []
    other = copy.deepcopy(m)
    other.tag = 1
    with pytest.raises(ValidationFailure) as info:
        check_substitutable(
            m, other, CACHE_IFACE, max_examples=3, seed=0, compare={"outputs.cache": lambda a, b: a.tag == b.tag}
        )
    assert "note: differing=outputs.cache, at=outputs.cache, comparison=the given comparison returned False" in str(
        info.value
    )


@pytest.mark.parametrize(
    "compare, message",
    [
        (
            {"outputs.cache": 3},
            "check_substitutable(compare={'outputs.cache': 3}): expected a dict of output path (like "
            "'outputs.cache') -> a function (original_part, replacement_part) -> bool",
        ),
    ],
    ids=["not-callable"],
)
def test_bad_comparisons_are_refused(compare, message):
    m = _WithCache()
    with pytest.raises(SpecError) as info:
        check_substitutable(m, copy.deepcopy(m), CACHE_IFACE, max_examples=2, seed=0, compare=compare)
    assert str(info.value) == message


def test_a_comparison_that_returns_no_bool_is_named():
    m = _WithCache()
    with pytest.raises(SpecError) as info:
        check_substitutable(
            m, copy.deepcopy(m), CACHE_IFACE, max_examples=2, seed=0, compare={"outputs.cache": lambda a, b: "yes"}
        )
    assert str(info.value) == (
        "check_substitutable(compare={'outputs.cache': ...}): the comparison returned str; expected True or False"
    )
