"""The real-model matrix: infer_interface -> guard -> validate -> infer_contracts
-> split on five architectures (bench/zoo.py): a ViT-style encoder, a
ResNet-style CNN with in-place ReLUs, an LSTM tagger, and Hugging Face BERT
and GPT-2 from tiny random configs called with keywords. Each clean model
passes every step (no violation on its own data, no counterexample over at
least 200 generated examples), and each step finds an injected NaN weight."""

import copy

import pytest
import torch
import zoo

import modpact as mp
from modpact.contracts import get_guard
from modpact.errors import InterfaceViolation, ValidationFailure
from modpact.validation import validate

# model, a weight in its middle to corrupt, cut points, whether validate batches its examples
MODELS = {
    "vit": ("encoder.layers.0.mlp.0.weight", ["conv_proj", "encoder"]),
    "resnet_inplace": ("layer1.0.conv2.weight", ["layer1"]),
    "lstm_tagger": ("lstm.weight_hh_l0", ["lstm"]),
    "hf_bert": ("bert.encoder.layer.1.output.dense.weight", ["bert.embeddings"]),
    "hf_gpt2": ("transformer.h.0.mlp.c_fc.weight", ["transformer.h.0"]),
}
# one forward per generated example where an output is nested or opaque (GPT-2's cache): fewer runs
RUNS = {"hf_gpt2": 200}
SLOW_SPLIT = {"hf_bert", "hf_gpt2"}  # torch.export, 5-25 s each here


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _smaller(x, rows, cols=None):
    """The batch cut to fewer rows (and, for token ids, a shorter sequence), so both dims vary."""
    if isinstance(x, dict):
        return {k: _smaller(v, rows, cols) for k, v in x.items()}
    x = x[:rows]
    return x[:, :cols] if cols is not None and x.dim() == 2 else x


def _case(name):
    zm = zoo.BLAME_MODELS[name]
    if zm.needs:
        pytest.importorskip(zm.needs, reason=f"{name} is built with {zm.needs} (pip install {zm.needs})")
    model = zm.build(0).eval()
    examples = []
    for seed, rows, cols in ((0, None, None), (1, 3, 11)):
        b = zm.batch(seed)
        x = b.kwargs if b.kwargs else b.args[0]
        examples.append(x if rows is None else _smaller(x, rows, cols))
    return model, examples


def _call(model, x):
    return model(**x) if isinstance(x, dict) else model(x)


@pytest.mark.parametrize("name", list(MODELS))
def test_clean_model_passes_every_step(name):
    model, examples = _case(name)
    iface = mp.infer_interface(model, *examples, finite=True)
    # guard: the clean model meets its own inferred interface
    mp.guard(model, iface)
    try:
        for x in examples:
            _call(model, x)
    finally:
        mp.unguard(model)
    # validate: generated inputs, no counterexample, at least 200 examples
    runs = RUNS.get(name, 80)
    res = validate(model, iface, max_examples=runs, seed=1)
    assert res.examples >= 200, str(res)
    assert res.passes[f"interface {iface.name!r}"] == res.examples
    # infer_contracts: installed in raise mode, the model's own data raises nothing
    ic = mp.infer_contracts(model, examples)
    ic.install()
    try:
        for x in examples:
            _call(model, x)
    finally:
        ic.uninstall()
    assert not any(get_guard(m) for m in model.modules())  # uninstall leaves no guard behind


@pytest.mark.parametrize("name", list(MODELS))
def test_an_injected_nan_weight_is_found_by_guard_validate_and_inferred_contracts(name):
    model, examples = _case(name)
    iface = mp.infer_interface(model, *examples, finite=True)
    ic = mp.infer_contracts(model, examples)
    weight, _ = MODELS[name]
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.get_parameter(weight).view(-1)[0] = float("nan")
    with pytest.raises(ValidationFailure) as info:
        validate(bad, iface, max_examples=20, seed=1)
    assert "finite expected finite values" in str(info.value)
    mp.guard(bad, iface)
    try:
        with pytest.raises(InterfaceViolation, match="finite expected finite values"):
            _call(bad, examples[0])
    finally:
        mp.unguard(bad)
    # the contracts inferred from the clean model, installed on the faulty copy, raise on its own data
    ic.install(bad)
    try:
        with pytest.raises(mp.ContractViolation):
            _call(bad, examples[0])
    finally:
        ic.uninstall()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SPLIT else n for n in MODELS])
def test_split_at_its_cut_points_is_exact(name):
    model, examples = _case(name)
    _, cuts = MODELS[name]
    x = examples[0]
    parts = mp.split(model, at=cuts, example=x)  # refuses unless the stages reproduce the model bit for bit
    assert len(parts) == len(cuts) + 1 and all(parts.edges())
    out, want = _call(parts, x), _call(model, x)
    assert torch.equal(zoo.logits(out), zoo.logits(want))
    assert parts.undescribed == [[] for _ in parts.interfaces]  # every crossing value is described
