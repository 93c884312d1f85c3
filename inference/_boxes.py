"""Box envelopes: k-means boxes per class from kept rows, and explicit
growth of boxes to cover new rows (``refine``)."""

from __future__ import annotations

import torch

from ._kmeans import kmeans
from ._recording import Stats

__all__ = ["build_boxes", "grow_boxes"]


def build_boxes(st: Stats, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]] | None:
    if not st.kept:
        return None
    x = torch.cat(st.kept)
    kept_labels = [y for y in st.kept_labels if y is not None]
    labeled = len(kept_labels) == len(st.kept_labels)
    groups: list[tuple[int, torch.Tensor]] = []
    if labeled:
        y = torch.cat(kept_labels)
        groups = [(int(c), x[y == c]) for c in torch.unique(y)]
    else:
        groups = [(-1, x)]
    los, his, labs = [], [], []
    for c, xc in groups:
        assign = kmeans(xc, k, seed=seed)
        for j in range(int(assign.max()) + 1):
            part = xc[assign == j]
            los.append(part.amin(dim=0))
            his.append(part.amax(dim=0))
            labs.append(c)
    return torch.stack(los), torch.stack(his), labs


def grow_boxes(e, st: Stats) -> int:
    """Grow, for every new row outside all boxes (of its class when labeled),
    the nearest box to contain it. Returns the number of rows that widened a box."""
    x = torch.cat(st.kept)
    ys = [v for v in st.kept_labels if v is not None]
    y = torch.cat(ys) if len(ys) == len(st.kept_labels) else None
    labels = torch.tensor(e.box_labels)
    grown = 0
    for i in range(x.shape[0]):
        row = x[i]
        inside = ((row >= e.box_lo) & (row <= e.box_hi)).all(dim=1)
        allowed = torch.ones_like(inside)
        if y is not None and bool((labels >= 0).any()):
            allowed = labels == int(y[i])
            if not bool(allowed.any()):
                allowed = torch.ones_like(inside)
        if bool((inside & allowed).any()):
            continue
        width = (e.box_hi - e.box_lo).clamp_min(1e-12)
        d = ((torch.relu(e.box_lo - row) + torch.relu(row - e.box_hi)) / width).sum(dim=1)
        d = torch.where(allowed, d, torch.full_like(d, float("inf")))
        j = int(d.argmin())
        e.box_lo[j] = torch.minimum(e.box_lo[j], row)
        e.box_hi[j] = torch.maximum(e.box_hi[j], row)
        grown += 1
    return grown
