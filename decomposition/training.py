"""Small models and a deterministic, fast training loop for the packaged datasets.

``train_digits_mlp(seed)`` trains a 64-64-32-10 ReLU MLP on digits in about a
second on one CPU core (~97% test accuracy); ``make_cnn`` is a small CNN for
the 8x8 images. Training is seeded and single-threaded-safe: the same seed
gives the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modpact.errors import SpecError

from .data import Dataset, load

__all__ = ["make_mlp", "make_cnn", "train", "accuracy", "predict", "train_digits_mlp", "digits_modular"]


def make_mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """``Linear -> ReLU`` per hidden width, then a ``Linear`` output layer."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class _Image(nn.Module):
    """Flat 64 features -> ``1x8x8`` image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, 8, 8)


def make_cnn(n_out: int = 10, channels: tuple[int, int] = (8, 16)) -> nn.Sequential:
    """A small CNN for flat 8x8 digits: two 3x3 convs, a pool, a linear head."""
    c1, c2 = channels
    return nn.Sequential(
        _Image(),
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 16, n_out),
    )


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 60,
    lr: float = 1e-2,
    batch_size: int = 128,
    seed: int = 0,
    weight_decay: float = 0.0,
    params: Sequence[nn.Parameter] | None = None,
) -> nn.Module:
    """Adam on cross-entropy, shuffled minibatches, seeded. ``params``: train only these."""
    if epochs < 0 or batch_size < 1:
        raise SpecError(f"train(epochs={epochs}, batch_size={batch_size}): expected epochs >= 0, batch_size >= 1")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(list(params) if params is not None else model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(x).argmax(-1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` whose argmax output equals ``y``."""
    return float((predict(model, x) == y).float().mean())


def train_digits_mlp(
    seed: int = 0, *, hidden: Sequence[int] = (64, 32), epochs: int = 40, data: Dataset | None = None
) -> tuple[nn.Sequential, Dataset]:
    """A digits MLP trained from ``seed`` and the dataset it was trained on."""
    data = data or load("digits")
    torch.manual_seed(seed)
    model = make_mlp(data.n_features, hidden, data.n_classes)
    train(model, data.x_train, data.y_train, epochs=epochs, lr=3e-3, seed=seed)
    return model, data


def digits_modular(model: nn.Sequential, name: str = "digits-mlp"):
    """A trained ``train_digits_mlp`` model (64-64-32-10) as a ModularModel
    ``x -> encoder -> hidden -> head`` with an interface on every node. The
    encoder declares outputs in [0, 100] (inputs in [0, 1] times weights of a
    trained digits MLP stay far below; the Monitor checks the declaration)."""
    from modpact.interfaces import Interface, TensorSpec

    from .data import DIGITS
    from .modular import ModularModel

    if not (isinstance(model, nn.Sequential) and len(model) == 5):
        raise SpecError(f"digits_modular: expected the 5-layer Sequential of train_digits_mlp, got {model!r:.80}")
    h1, h2 = model[0].out_features, model[2].out_features

    def spec(shape: str, **kw) -> TensorSpec:
        return TensorSpec(shape, dtype="float32", **kw)

    mm = ModularModel({"x": spec("batch 64", range=(0, 1))}, name=name)
    mm.add(
        "encoder",
        model[:2],
        ["x"],
        interface=Interface(
            "encoder", {"x": spec("batch 64", range=(0, 1))}, {"h": spec(f"batch {h1}", range=(0, 100))}
        ),
    )
    mm.add(
        "hidden",
        model[2:4],
        ["encoder"],
        interface=Interface(
            "hidden",
            {"h": spec(f"batch {h1}", range=(0, 100))},
            {"h": spec(f"batch {h2}", range=(0, None), finite=True)},
        ),
    )
    mm.add(
        "head",
        model[4],
        ["hidden"],
        output=True,
        interface=Interface(
            "head", {"h": spec(f"batch {h2}", finite=True)}, {"logits": spec("batch 10", labels=DIGITS)}
        ),
    )
    return mm
