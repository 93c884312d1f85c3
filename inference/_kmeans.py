"""A small deterministic k-means (k-means++ seeding, Lloyd iterations) in torch,
so inferring box envelopes needs no extra dependency."""

from __future__ import annotations

import torch

__all__ = ["kmeans"]


def kmeans(x: torch.Tensor, k: int, *, iters: int = 50, seed: int = 0) -> torch.Tensor:
    """Cluster the rows of ``x`` ([N, D]) into at most ``k`` groups; returns
    the cluster index of each row ([N], int64). Deterministic for a seed."""
    n = x.shape[0]
    k = max(1, min(k, n))
    x = x.double()
    g = torch.Generator().manual_seed(seed)
    centers = x[torch.randint(n, (1,), generator=g)]
    for _ in range(1, k):  # k-means++: sample far-away points
        d = torch.cdist(x, centers).min(dim=1).values.pow(2)
        if float(d.sum()) == 0:
            break
        centers = torch.cat([centers, x[torch.multinomial(d / d.sum(), 1, generator=g)]])
    assign = torch.cdist(x, centers).argmin(dim=1)
    for _ in range(iters):
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=centers.shape[0]).unsqueeze(1)
        centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        new = torch.cdist(x, centers).argmin(dim=1)
        if torch.equal(new, assign):
            break
        assign = new
    return torch.unique(assign, return_inverse=True)[1]
