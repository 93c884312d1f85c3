"""Real module boundaries: infer_interface -> guard -> validate on nn.LSTM with
state, the zoo's LSTM tagger, and Hugging Face BERT and GPT-2 from tiny random
configs; each clean model passes with no counterexample over at least 200
generated examples, and an injected NaN weight is found."""

import copy

import pytest
import torch
import zoo

import modpact as mp
from modpact.errors import InterfaceViolation, ValidationFailure
from modpact.interfaces import OpaqueSpec, TensorSpec, TupleSpec
from modpact.validation import validate

pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _ids(g, b, s, vocab):
    return torch.randint(0, vocab, (b, s), generator=g)


def _hf_examples(g):
    out = []
    for b, s in ((2, 5), (3, 7)):
        mask = torch.ones(b, s, dtype=torch.long)
        mask[0, -2:] = 0  # the first sample is padded at the end
        out.append({"input_ids": _ids(g, b, s, 100), "attention_mask": mask})
    return out


def lstm_case(g):
    m = torch.nn.LSTM(4, 8, num_layers=2, batch_first=True).eval()
    ex = [
        (torch.randn(b, s, 4, generator=g), (torch.randn(2, b, 8, generator=g), torch.randn(2, b, 8, generator=g)))
        for b, s in ((2, 3), (3, 5))
    ]
    return m, ex, "weight_hh_l1"


def tagger_case(g):
    return zoo.LSTMTagger().eval(), [_ids(g, 2, 5, 50), _ids(g, 3, 7, 50)], "head.weight"


def bert_case(g):
    return zoo.hf_bert().eval(), _hf_examples(g), "bert.encoder.layer.1.output.dense.weight"


def gpt2_case(g):
    return zoo.hf_gpt2().eval(), _hf_examples(g), "transformer.h.0.mlp.c_fc.weight"


def _call(m, ex):
    return m(**ex) if isinstance(ex, dict) else m(*ex) if isinstance(ex, tuple) else m(ex)


CASES = {"lstm": lstm_case, "tagger": tagger_case, "bert": bert_case, "gpt2": gpt2_case}


def _infer(name):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    m, ex, weight = CASES[name](g)
    return m, ex, weight, mp.infer_interface(m, *ex, finite=True)


def test_lstm_state_is_described_not_dropped():
    m, ex, _, iface = _infer("lstm")
    h = TensorSpec("2 batch 8", dtype="float32", finite=True)
    assert iface.outputs == {
        "result0": TensorSpec("batch d1 8", dtype="float32", finite=True),
        "result1": TupleSpec([h, h]),
    }
    hx = iface.inputs["hx"]
    assert isinstance(hx, TupleSpec) and [str(s.shape) for s in hx.items] == ["2 batch 8", "2 batch 8"]
    assert iface.inputs["input"].finite and iface.inputs["input"].range is not None
    assert "inputs.hx[0]: finite, in [" in iface.description


def test_hf_interfaces_get_ranges_masks_and_the_cache():
    _, _, _, bert = _infer("bert")
    assert bert.inputs == {
        "input_ids": TensorSpec("batch d1", dtype="int64", range=(0, 99)),
        "attention_mask": TensorSpec("batch d1", dtype="int64", range=(0, 1), padding="right"),
    }
    assert bert.dims == {"d1": (1, 32)}  # config.max_position_embeddings=32
    assert "bert.embeddings.word_embeddings (nn.Embedding, num_embeddings=100)" in bert.description
    assert "inputs.attention_mask: a 0/1 mask (1 attends, 0 is padding): range [0, 1]" in bert.description
    assert bert.outputs == {"logits": TensorSpec("batch 3", dtype="float32", finite=True)}
    _, _, _, gpt2 = _infer("gpt2")
    (cache_key,) = [k for k in gpt2.outputs if k != "logits"]
    cache = gpt2.outputs[cache_key]
    assert isinstance(cache, OpaqueSpec) and cache.type == "transformers.cache_utils.DynamicCache"
    assert f"outputs.{cache_key} is described by its type transformers.cache_utils.DynamicCache only" in (
        gpt2.description
    )
    assert gpt2.outputs["logits"] == TensorSpec("batch d1 100", dtype="float32", finite=True)
    assert mp.Interface.from_json(gpt2.to_json()) == gpt2


def test_tagger_range_comes_from_its_embedding():
    _, _, _, iface = _infer("tagger")
    assert iface.inputs == {"ids": TensorSpec("batch d1", dtype="int64", range=(0, 49))}


@pytest.mark.parametrize(
    "name, max_examples, at_least",
    [
        ("lstm", 40, 40),  # one forward per example (the state is nested)
        pytest.param("lstm", 200, 200, marks=pytest.mark.slow),
        ("tagger", 60, 200),  # batched: several generated examples per forward
        ("bert", 60, 200),
        ("gpt2", 40, 40),  # one forward per example (the cache is opaque)
        pytest.param("gpt2", 200, 200, marks=pytest.mark.slow),
    ],
)
def test_clean_model_passes_guard_and_validate(name, max_examples, at_least):
    m, ex, _, iface = _infer(name)
    mp.guard(m, iface)
    try:
        for e in ex:
            _call(m, e)  # the clean model meets its own inferred interface
    finally:
        mp.unguard(m)
    res = validate(m, iface, max_examples=max_examples, seed=1)
    assert res.examples >= at_least, str(res)
    assert res.passes[f"interface {iface.name!r}"] == res.examples


@pytest.mark.parametrize("name", ["lstm", "tagger", "bert", "gpt2"])
def test_injected_nan_weight_is_found(name):
    m, ex, weight, iface = _infer(name)
    bad = copy.deepcopy(m)
    with torch.no_grad():
        bad.get_parameter(weight)[0, 0] = float("nan")
    with pytest.raises(ValidationFailure) as info:
        validate(bad, iface, max_examples=50, seed=1)
    text = str(info.value)
    assert "finite expected finite values" in text and "outputs." in text
    mp.guard(bad, iface)
    try:
        with pytest.raises(InterfaceViolation) as info:
            _call(bad, ex[0])
        assert "finite expected finite values" in str(info.value)
        assert f"blaming {type(bad).__name__}" in str(info.value)
    finally:
        mp.unguard(bad)


class Wrapper(torch.nn.Module):
    """A model whose result holds a ModelOutput: the output's type and its cache are checked by name."""

    def __init__(self, model, swap_cache=False):
        super().__init__()
        self.model, self.swap_cache = model, swap_cache

    def forward(self, input_ids, attention_mask=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.swap_cache:  # a fault: the cache replaced by a plain tuple
            key = next(k for k in out if k != "logits")
            out[key] = (out["logits"],)
        return {"out": out}


def test_nested_model_output_is_checked_by_type_and_path():
    g = torch.Generator().manual_seed(0)
    gpt2 = zoo.hf_gpt2().eval()
    w = Wrapper(gpt2)
    iface = mp.infer_interface(w, *_hf_examples(g))
    out = iface.outputs["out"]
    assert out.type == "transformers.modeling_outputs.CausalLMOutputWithCrossAttentions"
    (key,) = [k for k in out.fields if k != "logits"]
    assert out.fields[key] == OpaqueSpec(
        "transformers.cache_utils.DynamicCache",
        note="described by type only: not a tensor, tuple, list, mapping or dataclass",
    )
    assert mp.Interface.from_json(iface.to_json()) == iface
    ex = _hf_examples(g)[0]
    mp.guard(w, iface)
    try:
        w(**ex)
        w.swap_cache = True
        with pytest.raises(InterfaceViolation) as info:
            w(**ex)
    finally:
        mp.unguard(w)
    assert (
        f"outputs.out.{key}: type expected a transformers.cache_utils.DynamicCache, got builtins.tuple tuple(f32["
        in (str(info.value))
    )
    assert "blaming Wrapper" in str(info.value)
