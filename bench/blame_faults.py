"""The faults of the blame benchmark (bench/blame_accuracy.py).

Each ``Fault`` injects one fault into a fresh zoo model (``bench/zoo.py``,
``BLAME_MODELS``) or into its batch, and names whom a correct report blames:

* a NaN or Inf in one element of a parameter: the module that owns the
  parameter (its path in ``model.named_modules()``), also when the parameter
  is used in the owner's own forward (``encoder.pos_embedding``,
  ``blocks.2.gamma``);
* a fault in the data (NaN in a float input, NaN in ``inputs_embeds`` passed
  by keyword, an id outside the vocabulary): ``"the input data"``.

One exception, named in ``also``: ``nn.MultiheadAttention.out_proj`` is
never called as a module (the attention's forward uses its weight
functionally), so for a fault in its weight the attention module itself is
accepted as well as ``out_proj``.

The element a fault hits is drawn from a seeded generator, among the
elements the batch uses (an embedding row of an id in the batch, a position
within the sequence). ``observable`` checks that a fault shows at the
model's output (a non-finite logit, or an exception) without any monitor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from zoo import BLAME_MODELS, Batch, logits

INPUT_DATA = "the input data"
NAN, INF = math.nan, math.inf

Inject = Callable[[nn.Module, Batch, torch.Generator], Batch]


@dataclass(frozen=True)
class Fault:
    """One fault: ``apply(model, batch)`` corrupts ``model`` in place and returns the batch to use."""

    model: str  # key of zoo.BLAME_MODELS
    name: str
    expected: str  # a module path, or INPUT_DATA
    inject: Inject
    also: tuple[str, ...] = ()  # other module paths a correct report may name
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.model}:{self.name}"

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.expected, *self.also)

    def apply(self, model: nn.Module, batch: Batch) -> Batch:
        return self.inject(model, batch, torch.Generator().manual_seed(self.seed))


def _ids(batch: Batch) -> torch.Tensor:
    return batch.kwargs["input_ids"] if "input_ids" in batch.kwargs else batch.args[0]


def used_ids(batch: Batch) -> torch.Tensor:
    """Rows of an embedding that the batch's first (unpadded) sequence looks up."""
    return _ids(batch)[0]


def positions(batch: Batch) -> torch.Tensor:
    """Rows of a position embedding that the batch uses."""
    return torch.arange(_ids(batch).shape[1])


def _element(shape: torch.Size, g: torch.Generator, rows: torch.Tensor | None) -> tuple[int, ...]:
    index = [int(torch.randint(0, n, (), generator=g)) for n in shape]
    if rows is not None:
        index[0] = int(rows[torch.randint(0, len(rows), (), generator=g)])
    return tuple(index)


def weight(
    model: str,
    param: str,
    value: float,
    *,
    rows: Callable[[Batch], torch.Tensor] | None = None,
    also: tuple[str, ...] = (),
) -> Fault:
    """``value`` in one element of parameter ``param``; blame the module that owns it."""

    def inject(m: nn.Module, batch: Batch, g: torch.Generator) -> Batch:
        p = m.get_parameter(param)
        with torch.no_grad():
            p[_element(p.shape, g, rows(batch) if rows else None)] = value
        return batch

    owner = param.rpartition(".")[0]
    return Fault(model, f"{param}={value}", owner, inject, also)


def nan_input(model: str) -> Fault:
    """NaN in one element of the float positional input."""

    def inject(m: nn.Module, batch: Batch, g: torch.Generator) -> Batch:
        x = batch.args[0].clone()
        x[_element(x.shape, g, None)] = NAN
        return Batch((x, *batch.args[1:]), dict(batch.kwargs), batch.target)

    return Fault(model, "input=nan", INPUT_DATA, inject)


def nan_inputs_embeds(model: str) -> Fault:
    """The caller passes ``inputs_embeds=`` (by keyword) instead of ids, with a NaN in an unpadded position."""

    def inject(m: nn.Module, batch: Batch, g: torch.Generator) -> Batch:
        ids = batch.kwargs["input_ids"]
        embeds = torch.randn(*ids.shape, m.config.hidden_size, generator=g) * 0.02
        embeds[0, int(torch.randint(0, ids.shape[1], (), generator=g))] = NAN
        kwargs = {k: v for k, v in batch.kwargs.items() if k != "input_ids"}
        return Batch(batch.args, {**kwargs, "inputs_embeds": embeds}, batch.target)

    return Fault(model, "inputs_embeds=nan", INPUT_DATA, inject)


def out_of_vocab(model: str, embedding: str) -> Fault:
    """One id equal to the vocabulary size of ``embedding``: the lookup raises IndexError."""

    def inject(m: nn.Module, batch: Batch, g: torch.Generator) -> Batch:
        ids = _ids(batch).clone()
        ids[_element(ids.shape, g, torch.tensor([0]))] = m.get_submodule(embedding).num_embeddings
        if "input_ids" in batch.kwargs:
            return Batch(batch.args, {**batch.kwargs, "input_ids": ids}, batch.target)
        return Batch((ids, *batch.args[1:]), dict(batch.kwargs), batch.target)

    return Fault(model, "id=vocab_size", INPUT_DATA, inject)


_MHA0 = "encoder.layers.0.self_attn"
_VIT_MHA1 = "encoder.layers.1.self_attention"
_BERT = "bert.encoder.layer"
_GPT2 = "transformer.h"

FAULTS: list[Fault] = [
    # torchvision-style ResNet: in-place ReLU reused in each block, `out += identity`, downsample shortcut
    weight("resnet_inplace", "conv1.weight", NAN),
    weight("resnet_inplace", "bn1.weight", NAN),
    weight("resnet_inplace", "layer1.0.bn1.bias", NAN),
    weight("resnet_inplace", "layer1.0.conv2.weight", INF),
    weight("resnet_inplace", "layer2.0.bn2.weight", INF),
    weight("resnet_inplace", "layer2.0.downsample.0.weight", NAN),
    weight("resnet_inplace", "fc.weight", NAN),
    nan_input("resnet_inplace"),
    # ViT: cls_token / pos_embedding used in encoder.forward, nn.MultiheadAttention, residual MLP
    weight("vit", "conv_proj.weight", NAN),
    weight("vit", "encoder.pos_embedding", NAN),
    weight("vit", "encoder.cls_token", INF),
    weight("vit", "encoder.layers.0.self_attention.in_proj_weight", NAN),
    weight("vit", f"{_VIT_MHA1}.in_proj_bias", INF),
    weight("vit", f"{_VIT_MHA1}.out_proj.weight", NAN, also=(_VIT_MHA1,)),
    weight("vit", "encoder.layers.0.ln_1.weight", NAN),
    weight("vit", "encoder.layers.0.mlp.0.weight", INF),
    weight("vit", "encoder.layers.1.mlp.3.bias", NAN),
    weight("vit", "encoder.ln.weight", NAN),
    weight("vit", "heads.weight", INF),
    nan_input("vit"),
    # nn.TransformerEncoder (batch_first, post-norm; fast path in eval)
    weight("torch_encoder", "proj.weight", NAN),
    weight("torch_encoder", f"{_MHA0}.in_proj_weight", INF),
    weight("torch_encoder", f"{_MHA0}.out_proj.weight", NAN, also=(_MHA0,)),
    weight("torch_encoder", "encoder.layers.0.linear1.weight", NAN),
    weight("torch_encoder", "encoder.layers.1.linear2.bias", INF),
    weight("torch_encoder", "encoder.layers.1.norm1.weight", NAN),
    weight("torch_encoder", "encoder.norm.bias", INF),
    weight("torch_encoder", "head.weight", NAN),
    nan_input("torch_encoder"),
    # hand-written GPT with LayerScale gammas used in GPTBlock.forward
    weight("gpt_layerscale", "tok.weight", NAN, rows=used_ids),
    weight("gpt_layerscale", "pos.weight", INF, rows=positions),
    weight("gpt_layerscale", "blocks.0.attn.qkv.weight", NAN),
    weight("gpt_layerscale", "blocks.1.attn.proj.weight", INF),
    weight("gpt_layerscale", "blocks.0.gamma_attn", INF),
    weight("gpt_layerscale", "blocks.2.gamma", NAN),
    weight("gpt_layerscale", "blocks.1.mlp.0.weight", NAN),
    weight("gpt_layerscale", "blocks.2.ln.weight", INF),
    weight("gpt_layerscale", "ln_f.bias", NAN),
    weight("gpt_layerscale", "head.weight", INF),
    out_of_vocab("gpt_layerscale", "tok"),
    # LSTM tagger: nn.LSTM returns (out, (h, c))
    weight("lstm_tagger", "embed.weight", NAN, rows=used_ids),
    weight("lstm_tagger", "lstm.weight_ih_l0", NAN),
    weight("lstm_tagger", "lstm.weight_hh_l1", INF),
    weight("lstm_tagger", "lstm.bias_hh_l0", NAN),
    weight("lstm_tagger", "head.weight", INF),
    out_of_vocab("lstm_tagger", "embed"),
    # Hugging Face BERT, called with keywords, returns a ModelOutput
    weight("hf_bert", "bert.embeddings.word_embeddings.weight", NAN, rows=used_ids),
    weight("hf_bert", "bert.embeddings.position_embeddings.weight", INF, rows=positions),
    weight("hf_bert", "bert.embeddings.LayerNorm.weight", NAN),
    weight("hf_bert", f"{_BERT}.0.attention.self.query.weight", NAN),
    weight("hf_bert", f"{_BERT}.1.attention.self.key.weight", INF),
    weight("hf_bert", f"{_BERT}.0.attention.self.value.weight", NAN),
    weight("hf_bert", f"{_BERT}.0.attention.output.dense.weight", INF),
    weight("hf_bert", f"{_BERT}.1.intermediate.dense.weight", NAN),
    weight("hf_bert", f"{_BERT}.1.output.LayerNorm.bias", NAN),
    weight("hf_bert", "bert.pooler.dense.weight", NAN),
    weight("hf_bert", "classifier.weight", INF),
    nan_inputs_embeds("hf_bert"),
    out_of_vocab("hf_bert", "bert.embeddings.word_embeddings"),
    # Hugging Face GPT-2 (Conv1D layers, lm_head tied to wte)
    weight("hf_gpt2", "transformer.wte.weight", NAN, rows=used_ids),
    weight("hf_gpt2", "transformer.wpe.weight", INF, rows=positions),
    weight("hf_gpt2", f"{_GPT2}.0.ln_1.weight", NAN),
    weight("hf_gpt2", f"{_GPT2}.0.attn.c_attn.weight", NAN),
    weight("hf_gpt2", f"{_GPT2}.1.attn.c_proj.weight", INF),
    weight("hf_gpt2", f"{_GPT2}.0.mlp.c_fc.weight", NAN),
    weight("hf_gpt2", f"{_GPT2}.1.mlp.c_proj.bias", INF),
    weight("hf_gpt2", "transformer.ln_f.bias", NAN),
    nan_inputs_embeds("hf_gpt2"),
    out_of_vocab("hf_gpt2", "transformer.wte"),
]


def fault(key: str) -> Fault:
    """The fault named ``model:name`` (as printed in the benchmark's tables)."""
    for f in FAULTS:
        if f.key == key:
            return f
    raise KeyError(f"no fault {key!r}; faults: {', '.join(f.key for f in FAULTS)}")


def observable(f: Fault, seed: int = 0) -> bool:
    """Whether the fault shows without a monitor: the eval forward raises or yields a non-finite logit."""
    spec = BLAME_MODELS[f.model]
    model, batch = spec.build(seed), spec.batch(seed)
    model.eval()
    with torch.no_grad():
        batch = f.apply(model, batch)
        try:
            out = logits(batch.call(model))
        except Exception:
            return True
    return not bool(torch.isfinite(out).all())
