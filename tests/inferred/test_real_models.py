"""infer_contracts -> install -> validate on real models (bench/zoo.py): an
LSTM tagger (tuple output with state, sequence lengths that vary) and Hugging
Face BERT from a tiny random config (dict batches passed as keywords). The
clean models pass their own reference data and get no counterexample over at
least 200 generated examples per module; an injected fault is found."""

import textwrap

import pytest
import torch

import modpact as mp
from modpact.cli import main
from modpact.contracts import get_guard
from modpact.errors import SpecError
from modpact.validation import validate

zoo = pytest.importorskip("zoo")


def _lstm(lengths=(16, 11)):
    torch.manual_seed(0)
    model = zoo.LSTMTagger().eval()
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(1, 50, (32, t), generator=g) for t in lengths]
    return model, data


def _envelope_text(mod):
    (c,) = [c for c in get_guard(mod).ensures if c.text.startswith("envelope(")]
    return c.text


def test_lstm_tagger_own_data_passes_and_a_varying_length_is_symbolic():
    model, data = _lstm()
    ic = mp.infer_contracts(model, data)
    embed, head = ic.interface("embed"), ic.interface("head")
    assert repr(embed.inputs["input"]) == "TensorSpec('batch d1', dtype='int64', indices=50)"
    assert repr(head.inputs["input"]) == "TensorSpec('batch d1 32', dtype='float32')"
    assert repr(head.outputs["result"]) == "TensorSpec('batch d1 5', dtype='float32')"
    # the LSTM returns (out, (h, c)): the state is a tuple of tensors whose batch is dim 1
    lstm = ic.interface("lstm")
    assert repr(lstm.inputs["input"]) == "TensorSpec('batch d1 16', dtype='float32')"
    assert repr(lstm.outputs["result0"]) == "TensorSpec('batch d1 32', dtype='float32')"
    h = "TensorSpec('2 batch 32', dtype='float32')"
    assert repr(lstm.outputs["result1"]) == f"TupleSpec([{h}, {h}])"
    assert ic.undescribed == {} and "no interface" not in ic.summary()
    ic.install()
    assert get_guard(model.lstm).interface == lstm
    try:
        for x in data:  # raise mode: any violation on its own reference data raises
            model(x)
    finally:
        ic.uninstall()
    # one fixed length stays a constant
    fixed = mp.infer_contracts(*_lstm(lengths=(16, 16)))
    assert repr(fixed.interface("head").inputs["input"]) == "TensorSpec('batch 16 32', dtype='float32')"


def test_lstm_tagger_envelope_granularity_follows_what_varies():
    model, data = _lstm()
    varying = mp.infer_contracts(model, data)
    (e,) = [e for e in varying.envelopes if e.module == "head" and e.side == "output"]
    assert e.granularity == "last" and list(e.lo.shape) == [5]  # per tag, over every position
    fixed = mp.infer_contracts(*_lstm(lengths=(16, 16)))
    (f,) = [e for e in fixed.envelopes if e.module == "head" and e.side == "output"]
    assert f.granularity == "channel" and list(f.lo.shape) == [16, 1]
    with pytest.raises(SpecError, match="had envelope shape \\[16, 1\\] and then \\[11, 1\\]"):
        mp.infer_contracts(model, data, granularity="channel")


@pytest.mark.slow
def test_lstm_tagger_validates_without_false_counterexamples():
    model, data = _lstm()
    mp.infer_contracts(model, data).install()
    for path in ("embed", "head"):
        res = validate(getattr(model, path), max_examples=80, seed=0)
        assert res.examples >= 200, res
    # the head's envelope was checked on generated inputs inside its domain, and skipped outside
    text = _envelope_text(model.head)
    assert res.passes[text] > 50 and res.outside_domain[text] > 0
    assert f"{text}: {res.passes[text]} passed, {res.outside_domain[text]} outside its domain" in str(res)
    # the LSTM itself, state included: not batched (its state is not cut along dim 0), one example each
    res = validate(model.lstm, max_examples=80, seed=0)
    assert res.examples == 80 and not res.batched, res
    text = next(k for k in res.passes if k.startswith("envelope("))
    assert res.passes[text] > 0 and res.passes[text] + res.outside_domain[text] == 80


@pytest.mark.slow
def test_lstm_tagger_injected_fault_is_found():
    model, data = _lstm()
    mp.infer_contracts(model, data).install()
    with torch.no_grad():
        model.head.weight.mul_(4)  # a fault after the contracts were inferred
    with pytest.raises(mp.ValidationFailure) as e:
        validate(model.head, max_examples=80, seed=0)
    assert "postcondition failed: inside the envelope of 64 reference rows" in str(e.value)
    assert e.value.contract.startswith("envelope(result")


@pytest.mark.slow
def test_lstm_fault_is_found_by_its_own_contracts():
    model, data = _lstm()
    mp.infer_contracts(model, data).install()
    with torch.no_grad():
        model.lstm.weight_hh_l1.mul_(30)  # a fault in the LSTM after the contracts were inferred
    with pytest.raises(mp.ValidationFailure) as e:
        validate(model.lstm, max_examples=80, seed=0)
    assert e.value.contract.startswith("envelope(result") and e.value.blame == "lstm"


@pytest.mark.slow
def test_modpact_validate_on_the_lstm_tagger_finds_nothing(tmp_path, capsys):
    script = tmp_path / "tagger.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            import modpact as mp
            import zoo

            torch.manual_seed(0)
            model = zoo.LSTMTagger().eval()
            mp.infer_contracts(model, torch.randint(1, 50, (64, 16))).install()
            """
        )
    )
    assert main(["validate", f"{script}:model", "--max-examples", "80", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "OK: validation found no counterexample in 3 module(s)" in out
    assert "skipped" not in out  # the LSTM has an interface now


def _bert_data():
    g = torch.Generator().manual_seed(0)

    def batch(n, t):
        ids = torch.randint(1, 100, (n, t), generator=g)
        mask = torch.ones_like(ids)
        mask[0, -3:] = 0  # a padded row
        return {"input_ids": ids, "attention_mask": mask}

    return [(batch(8, 12), torch.randint(0, 3, (8,), generator=g)), (batch(8, 16), [0, 1, 2, 0, 1, 2, 0, 1])]


@pytest.fixture
def bert():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    return zoo.hf_bert().eval()


def test_bert_dict_batches_symbolic_lengths_and_own_data(bert):
    data = _bert_data()
    ic = mp.infer_contracts(bert, data)
    words = ic.interface("bert.embeddings.word_embeddings")
    assert repr(words.inputs["input"]) == "TensorSpec('batch d1', dtype='int64', indices=100)"
    query = ic.interface("bert.encoder.layer.0.attention.self.query")
    assert repr(query.outputs["result"]) == "TensorSpec('batch d1 32', dtype='float32')"  # hidden size stays 32
    assert repr(ic.interface("classifier").outputs["result"]) == "TensorSpec('batch 3', dtype='float32')"
    assert ic.labels is not None and len(ic.labels) == 3 and ic.output_module == "classifier"
    assert ic.history[0]["rows"] == 16 and ic.history[0]["batches"] == 2
    ic.install()
    try:
        for inputs, _ in data:
            bert(**inputs)
    finally:
        ic.uninstall()


@pytest.mark.slow
def test_bert_modules_validate_without_false_counterexamples_and_a_fault_is_found(bert):
    mp.infer_contracts(bert, _bert_data()).install()
    mods = dict(bert.named_modules())
    for path in ("classifier", "bert.encoder.layer.0.attention.self.query", "bert.embeddings.word_embeddings"):
        res = validate(mods[path], max_examples=80, seed=0)
        assert res.examples >= 200, res
    with torch.no_grad():
        bert.classifier.bias.add_(1.0)
    with pytest.raises(mp.ValidationFailure) as e:
        validate(bert.classifier, max_examples=80, seed=0)
    assert e.value.contract.startswith("envelope(result")


def test_domain_contains_rows_near_reference_rows_only():
    from modpact.contracts.condition import Domain

    rows = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    d = Domain(rows, torch.tensor([1.0, 0.5]))
    assert d.contains(torch.tensor([[0.9, -0.5], [10.0, 9.6]]))
    assert not d.contains(torch.tensor([[5.0, 5.0]]))  # inside the rows' bounding box, near no row
    assert not d.contains(torch.tensor([[0.0, 0.6]]))  # the radius is per element
    assert not d.contains(torch.tensor([[float("nan"), 0.0]]))
    assert not d.contains(torch.zeros(1, 3)) and not d.contains(None) and d.contains(torch.zeros(0, 2))
    assert not Domain(torch.empty((0,)), torch.tensor(1.0)).contains(torch.zeros(1, 2))


def test_json_keeps_undescribed_and_indices_and_loaded_contracts_claim_no_domain():
    model, data = _lstm()
    ic = mp.infer_contracts(model, data)
    back = mp.InferredContracts.from_json(ic.to_json())
    assert back.undescribed == ic.undescribed and back.indices == {"embed": {"input": 50}}
    assert repr(back.interface("embed").inputs["input"]) == "TensorSpec('batch d1', dtype='int64', indices=50)"
    back.install(model)
    try:
        res = validate(model.head, max_examples=10, seed=0)
    finally:
        back.uninstall()
    text = next(k for k in res.passes if k.startswith("envelope("))
    assert res.passes[text] == 0 and res.outside_domain[text] == res.examples > 0


def test_refine_keeps_the_granularity_chosen_for_varying_lengths():
    model, data = _lstm()
    ic = mp.infer_contracts(model, data)  # lengths 16 and 11: "last"
    change = ic.refine(torch.randint(1, 50, (8, 16)))  # one length only: would be "channel" when inferred anew
    assert change["rows"] == 8
    (e,) = [e for e in ic.envelopes if e.module == "head" and e.side == "output"]
    assert e.granularity == "last" and list(e.lo.shape) == [5]
