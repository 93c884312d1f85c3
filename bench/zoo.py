"""Small real PyTorch models shared by the benchmarks and the runtime tests:
an MLP, a ResNet-style CNN and a small transformer encoder classifier
(``MODELS``), and the blame benchmark's architectures in miniature
(``BLAME_MODELS``, below)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, d_in: int = 64, hidden: int = 256, n_classes: int = 10, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet-style CNN for 1x8x8 (digits) or 3x32x32 inputs."""

    def __init__(self, c_in: int = 1, n_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layer2(self.layer1(self.stem(x))))))


class TinyTransformer(nn.Module):
    """Token classifier: embedding, 2 encoder layers, mean pool, linear head."""

    def __init__(self, vocab: int = 100, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, n_classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens))
        return self.head(self.norm(h.mean(dim=1)))


def example_input(model: nn.Module, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    if isinstance(model, MLP):
        return torch.rand(batch, model.body[0].in_features, generator=generator) * 16
    if isinstance(model, SmallResNet):
        return torch.rand(batch, model.stem[0].in_channels, 8, 8, generator=generator)
    if isinstance(model, TinyTransformer):
        return torch.randint(0, model.embed.num_embeddings, (batch, 16), generator=generator)
    raise TypeError(f"no example input for {type(model).__name__}")


MODELS = {"mlp": MLP, "resnet": SmallResNet, "transformer": TinyTransformer}


# ---------------------------------------------------------------------------
# The blame benchmark's zoo (bench/blame_accuracy.py): real architectures in
# miniature, each with a seeded factory and a seeded example batch. They keep
# the habits that make blame hard: in-place ReLUs and a ReLU module called
# twice, parameters used in a parent's forward, modules that use their own
# parameters functionally (nn.MultiheadAttention), tuple outputs (nn.LSTM),
# keyword-only calls and ModelOutput results (Hugging Face).
# ---------------------------------------------------------------------------


@dataclass
class Batch:
    """One call's arguments and the training target for its logits.

    ``model(*args, **kwargs)``; ``logits(output)`` has shape ``target.shape + (classes,)``."""

    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: torch.Tensor | None = None

    def call(self, model: nn.Module) -> Any:
        return model(*self.args, **self.kwargs)


def logits(output: Any) -> torch.Tensor:
    """The logits tensor of a model's output (a tensor, or a Hugging Face ModelOutput)."""
    return output.logits if hasattr(output, "logits") else output


def loss(output: Any, batch: Batch) -> torch.Tensor:
    """Cross-entropy of the output's logits against the batch's target."""
    z = logits(output).float()
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), batch.target.reshape(-1))


class InplaceBasicBlock(nn.Module):
    """torchvision's BasicBlock: one in-place ReLU module called twice, ``out += identity``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class InplaceResNet(nn.Module):
    """torchvision-style ResNet for 3x16x16 images: stem with max-pool, two stages, in-place ReLUs."""

    def __init__(self, n_classes: int = 10, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(InplaceBasicBlock(width, width))
        self.layer2 = nn.Sequential(InplaceBasicBlock(width, 2 * width, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet-50 v1.5: the stride on the 3x3 conv), one in-place ReLU called three times."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's layout and module names (``layer3.1.conv2``), for machines where
    torchvision does not load; ``width`` scales every stage (64 is the real model, 25.6M parameters)."""

    def __init__(self, n_classes: int = 1000, width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = width
        for i, n in enumerate(blocks):
            w = width * 2**i
            stage = [Bottleneck(c_in, w, 1 if i == 0 else 2)]
            c_in = w * Bottleneck.expansion
            stage += [Bottleneck(c_in, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ViTBlock(nn.Module):
    """Pre-norm encoder block: nn.MultiheadAttention and an MLP, each on a residual add."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.self_attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        h, _ = self.self_attention(h, h, h, need_weights=False)
        x = x + self.dropout(h)
        return x + self.mlp(self.ln_2(x))


class ViTEncoder(nn.Module):
    """Prepends ``cls_token``, adds ``pos_embedding`` (both its own parameters, used in this forward)."""

    def __init__(self, n_tokens: int, d: int, heads: int, depth: int, dropout: float):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embedding = nn.Parameter(torch.randn(1, n_tokens + 1, d) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(*[ViTBlock(d, heads, dropout) for _ in range(depth)])
        self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.dropout(x + self.pos_embedding)
        return self.ln(self.layers(x))


class ViT(nn.Module):
    """torchvision-style ViT for 3x16x16 images: 4x4 patches by a strided conv, classify the cls token."""

    def __init__(self, n_classes: int = 10, d: int = 32, heads: int = 2, depth: int = 2, dropout: float = 0.1):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, d, 4, 4)
        self.encoder = ViTEncoder(16, d, heads, depth, dropout)
        self.heads = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        return self.heads(self.encoder(x)[:, 0])


class TorchEncoderClassifier(nn.Module):
    """Float feature sequences -> Linear -> nn.TransformerEncoder (batch_first, final norm) -> mean -> Linear."""

    def __init__(self, d_in: int = 16, d: int = 32, heads: int = 4, depth: int = 2, n_classes: int = 5):
        super().__init__()
        self.proj = nn.Linear(d_in, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))


class GPTBlock(nn.Module):
    """Pre-norm GPT block whose branches are scaled by learned per-channel vectors (LayerScale):
    ``x + gamma_attn * attn(ln_1(x))``, then ``x + gamma * mlp(ln_2(x))``, computed in this forward."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads, dropout)
        self.gamma_attn = nn.Parameter(torch.full((d,), 0.1))
        self.ln = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))
        self.gamma = nn.Parameter(torch.full((d,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_attn * self.attn(self.ln_1(x))
        return x + self.gamma * self.mlp(self.ln(x))


class LayerScaleGPT(nn.Module):
    """Hand-written GPT language model: token and position embeddings, 3 LayerScale blocks, untied head."""

    def __init__(
        self, vocab: int = 64, d: int = 32, heads: int = 2, depth: int = 3, max_len: int = 32, dropout: float = 0.1
    ):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([GPTBlock(d, heads, dropout) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class LSTMTagger(nn.Module):
    """Sequence tagger: Embedding -> 2-layer nn.LSTM (returns ``(out, (h, c))``) -> Linear per token."""

    def __init__(self, vocab: int = 50, d: int = 16, hidden: int = 32, n_tags: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, n_tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, (_h, _c) = self.lstm(self.embed(ids))
        return self.head(out)


def hf_bert() -> nn.Module:
    """Hugging Face BertForSequenceClassification from a tiny random config (no weights downloaded)."""
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(
        BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
            num_labels=3,
        )
    )


def hf_gpt2() -> nn.Module:
    """Hugging Face GPT2LMHeadModel (lm_head tied to wte) from a tiny random config."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(
        GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    )


def _images(g: torch.Generator) -> Batch:
    return Batch((torch.randn(8, 3, 16, 16, generator=g),), target=torch.randint(0, 10, (8,), generator=g))


def _features(g: torch.Generator) -> Batch:
    return Batch((torch.randn(8, 12, 16, generator=g),), target=torch.randint(0, 5, (8,), generator=g))


def _tokens(vocab: int, n_out: int, per_token: bool, g: torch.Generator) -> Batch:
    ids = torch.randint(1, vocab, (8, 16), generator=g)
    shape = ids.shape if per_token else ids.shape[:1]
    return Batch((ids,), target=torch.randint(0, n_out, shape, generator=g))


def _hf_tokens(n_out: int, per_token: bool, g: torch.Generator) -> Batch:
    """``input_ids`` and an ``attention_mask`` whose second sample is padded at the end (keywords only)."""
    ids = torch.randint(1, 100, (4, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -4:] = 0
    shape = ids.shape if per_token else ids.shape[:1]
    return Batch(kwargs={"input_ids": ids, "attention_mask": mask}, target=torch.randint(0, n_out, shape, generator=g))


@dataclass(frozen=True)
class ZooModel:
    """A seeded factory (``build(seed)``) and a seeded example batch (``batch(seed)``)."""

    factory: Callable[[], nn.Module]
    make_batch: Callable[[torch.Generator], Batch]
    needs: str | None = None  # an optional package the factory imports

    def build(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return self.factory()

    def batch(self, seed: int = 0) -> Batch:
        return self.make_batch(torch.Generator().manual_seed(1000 + seed))


BLAME_MODELS: dict[str, ZooModel] = {
    "resnet_inplace": ZooModel(InplaceResNet, _images),
    "vit": ZooModel(ViT, _images),
    "torch_encoder": ZooModel(TorchEncoderClassifier, _features),
    "gpt_layerscale": ZooModel(LayerScaleGPT, lambda g: _tokens(64, 64, True, g)),
    "lstm_tagger": ZooModel(LSTMTagger, lambda g: _tokens(50, 5, True, g)),
    "hf_bert": ZooModel(hf_bert, lambda g: _hf_tokens(3, False, g), needs="transformers"),
    "hf_gpt2": ZooModel(hf_gpt2, lambda g: _hf_tokens(100, True, g), needs="transformers"),
}
