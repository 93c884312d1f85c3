"""Digits set-up shared by bench/inferred.py and tests/inferred: fixed splits,
a small MLP classifier trained in about a second, and corrupted inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Digits:
    model: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_cal: torch.Tensor
    y_cal: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    test_accuracy: float


def make_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def load(seed: int = 0, epochs: int = 300) -> Digits:
    """Digits scaled to [0, 1], split 60/20/20 (train / calibration / test)
    with a fixed permutation; an MLP trained full-batch with Adam."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n1, n2 = int(0.6 * len(x)), int(0.8 * len(x))
    torch.manual_seed(seed)
    model = make_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:n1]), y[:n1]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x[n2:]).argmax(1) == y[n2:]).float().mean())
    return Digits(model, x[:n1], y[:n1], x[n1:n2], y[n1:n2], x[n2:], y[n2:], acc)


def corruptions(x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Corrupted versions of digits rows ``x`` ([N, 64] in [0, 1])."""
    from sklearn.datasets import load_iris, load_wine

    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    img = x.reshape(n, 8, 8)
    out = {
        "gaussian noise (sd 0.25)": (x + 0.25 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "inverted (16 - x)": 1.0 - x,
        "rotated 90°": torch.rot90(img, 1, dims=(1, 2)).reshape(n, 64),
        "saturated (x > 0 -> 16)": (x > 0).float(),
        "shifted 2 px right": torch.roll(img, 2, dims=2).reshape(n, 64),
        "blank (all 0)": torch.zeros_like(x),
        "uniform noise": torch.rand(x.shape, generator=g),
    }
    for name, loader in (("iris features padded", load_iris), ("wine features padded", load_wine)):
        f = torch.tensor(loader().data, dtype=torch.float32)
        f = f[torch.randint(len(f), (n,), generator=g)]
        padded = torch.zeros(n, 64)
        padded[:, : f.shape[1]] = f / 16.0  # the same scaling as digits pixels
        out[name] = padded
    return out


def batch_split(x: torch.Tensor, size: int, repeats: int, seed: int = 0) -> list[torch.Tensor]:
    """``repeats`` random partitions of the rows into batches of ``size``
    (the last partial batch of each partition dropped)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(repeats):
        p = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - size + 1, size):
            out.append(x[p[i : i + size]])
    return out


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Probability that a positive (corrupted) scores above a negative (clean); ties count 1/2."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    s = np.r_[neg, pos]
    s = np.where(np.isinf(s), np.finfo(np.float64).max, s)
    return float(roc_auc_score(y, s))
