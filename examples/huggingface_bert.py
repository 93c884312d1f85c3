"""A Hugging Face model end to end: interface, guard, validation, inferred
contracts, a split into stages, and a fault found at each step.

BERT is built from a tiny random config (nothing is downloaded) and called
with keywords, as Hugging Face models are. Run: python examples/huggingface_bert.py
"""

import copy

import torch
from transformers import BertConfig, BertForSequenceClassification

import modpact as mp
from modpact.errors import InterfaceViolation, ValidationFailure
from modpact.validation import validate


def batch(g: torch.Generator, rows: int, length: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 100, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # the first sample is padded at the end
    return {"input_ids": ids, "attention_mask": mask}


def main() -> None:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
    )
    model = BertForSequenceClassification(config).eval()
    g = torch.Generator().manual_seed(0)
    data = [batch(g, 4, 16), batch(g, 3, 11)]  # two batch sizes and two lengths: both dims become symbolic

    # 1. the interface, inferred from keyword examples: ids ranged by the embedding that reads them,
    # the mask's padding at the end, the sequence bounded by config.max_position_embeddings
    iface = mp.infer_interface(model, *data, finite=True)
    print("1. inputs: ", iface.inputs)
    print("   outputs:", iface.outputs)
    print("   dims:   ", iface.dims)

    # 2. guard: every call is checked against it
    mp.guard(model, iface)
    for x in data:
        model(**x)
    mp.unguard(model)
    print("2. guard: the model meets its interface on its data")

    # 3. validate on the real batches, then on generated inputs (valid ids, right-padded masks);
    # the model is left as it was
    res = validate(model, iface, max_examples=60, seed=1, data=data)
    verdict = "OK" if res.ok else "FAILED"
    print(f"3. validate: {res.data_examples} real batches and {res.examples} generated examples, {verdict}")

    # 4. contracts inferred from the data, installed on every module, checked in raise mode
    ic = mp.infer_contracts(model, data)
    ic.install()
    for x in data:
        model(**x)
    ic.uninstall()
    print(f"4. infer_contracts: {len(ic.envelopes)} envelopes; the model's own data passes them")

    # 5. split after the embeddings: torch.fx cannot trace BERT, torch.export (non-strict) cuts it
    parts = mp.split(model, at=["bert.embeddings"], example=data[0])
    same = torch.equal(parts(**data[0]).logits, model(**data[0]).logits)
    print(f"5. split by {parts.method}: {len(parts)} stages, edges compatible: {all(parts.edges())}, exact: {same}")

    # 6. a NaN in one weight: validate, the guard and the inferred contracts each find it
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.bert.encoder.layer[1].output.dense.weight[0, 0] = float("nan")
    try:
        validate(bad, iface, max_examples=20, seed=1)
        found_by_validate = False
    except ValidationFailure:
        found_by_validate = True
    mp.guard(bad, iface)
    try:
        bad(**data[0])
        found_by_guard = False
    except InterfaceViolation as e:
        found_by_guard = "finite expected finite values" in str(e)
    mp.unguard(bad)
    ic.install(bad)
    try:
        bad(**data[0])
        first = None
    except mp.ContractViolation as e:
        first = str(e).splitlines()[0]
    ic.uninstall()
    print(f"6. NaN weight found by validate: {found_by_validate}, by the guard: {found_by_guard}")
    print(f"   inferred contracts: {first}")


if __name__ == "__main__":
    main()
