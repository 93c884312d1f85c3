"""Small real PyTorch models shared by the benchmarks and the runtime tests:
an MLP, a ResNet-style CNN and a small transformer encoder classifier."""

from __future__ import annotations

import torch
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
