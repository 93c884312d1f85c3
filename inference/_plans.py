"""The class-box table: the boxes of ``in_class_boxes`` grouped by class,
made once when the condition is made, so that a check compares each row with
the boxes of its predicted class only.

The reference formula compares every row with every box and masks the boxes
of other classes (``(inside & (labels == argmax)).any(-1)``). Here each row
gathers its class's boxes (``index_select`` by ``scores.argmax(1)``) from a
table padded with empty boxes (``lo = +inf``, ``hi = -inf``: they hold no
value, NaN and infinities included, since ``inf - inf`` is NaN and NaN fails)
and runs the same expression on ``[rows, boxes of a class, features]``: the
same verdict (``tests/inferred/test_fused_forms.py`` compares them) on a
tenth of the work for ten classes. No host sync; traces under torch.compile.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["ClassTable", "box_excess", "box_rows", "clamp_range", "class_box_range", "class_box_rows"]


def box_rows(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[rows] bool: row ``x[i]`` ([rows, 1, features]) lies inside one of the
    boxes ``[lo[k], hi[k]]`` ([boxes, features], or [rows, boxes, features])."""
    return (torch.maximum(lo - x, x - hi).amax(dim=2) <= 0).any(dim=1)


def clamp_range(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """``t`` inside ``[lo, hi]`` as a range check: ``clamp(t, lo, hi) - t``
    must be all zeros (``x - y`` is 0 only when ``x == y``; NaN stays NaN;
    an infinity leaves finite bounds; where ``lo > hi`` clamp gives ``hi``,
    so a padding box with ``hi = -inf`` fails)."""
    return torch.clamp(t, lo, hi).sub_(t), 0.0, 0.0


def box_excess(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[rows]: how far row ``x[i]`` lies outside the nearest box (its largest
    excess over a bound, in the box it exceeds least); <= 0 exactly where
    ``box_rows`` holds. NaN for a row with a NaN (it fails ``<= 0``); a row
    with an infinity exceeds every box of finite bounds (also the empty
    padding boxes, where ``inf - inf`` is NaN), so it fails either way."""
    return torch.maximum(lo - x, x - hi).amax(dim=2).amin(dim=1)


class ClassTable:
    """The boxes grouped by class: ``lo``/``hi`` of shape ``[classes + 1, most
    boxes of a class, features]`` (float64, CPU), padded with empty boxes; the
    last class holds none (an argmax past the labels, or a class no box has,
    lands there and fails, as with the reference formula). ``on(dtype,
    device)`` gives the copy a check uses."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor, labels: list[int]):
        d = lo.shape[1]
        kept = [c for c in labels if c >= 0]  # a negative label matches no argmax
        classes = max(kept) + 1 if kept else 0
        width = max([kept.count(c) for c in set(kept)] + [1])
        self.lo = torch.full((classes + 1, width, d), math.inf, dtype=torch.float64)
        self.hi = torch.full((classes + 1, width, d), -math.inf, dtype=torch.float64)
        filled = [0] * (classes + 1)
        for j, c in enumerate(labels):  # once, when the condition is made
            if c < 0:
                continue
            self.lo[c, filled[c]] = lo[j]
            self.hi[c, filled[c]] = hi[j]
            filled[c] += 1
        self.classes = classes
        self.width = width
        self._on: dict[tuple[Any, Any], torch.Tensor] = {}

    def on(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``lo`` and ``hi`` stacked (``[classes + 1, 2, width, features]``), so
        that one ``index_select`` gathers both."""
        key = (dtype, device)
        got = self._on.get(key)
        if got is None:
            got = self._on[key] = torch.stack((self.lo, self.hi), dim=1).to(device, dtype)
        return got

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the per-device copies behind."""
        return {**self.__dict__, "_on": {}}


def class_box_rows(x: torch.Tensor, scores: torch.Tensor, table: ClassTable) -> torch.Tensor:
    """[rows] bool: row ``x[i]`` ([rows, 1, features]) lies inside a box of
    its predicted class ``scores[i].argmax()``."""
    return box_rows(x, *_class_boxes(x, scores, table))


def class_box_range(x: torch.Tensor, scores: torch.Tensor, table: ClassTable) -> tuple[torch.Tensor, float, float]:
    """The class-box check as a range check (``Condition.device_range``). One
    box per class: ``clamp(x, lo, hi) - x``, all zeros exactly when every row
    lies in its class's box (a padding box has ``lo > hi``, where ``clamp``
    gives ``hi = -inf`` and the difference is -inf or NaN: it fails). More
    boxes per class: ``box_excess`` over them, all <= 0."""
    lo, hi = _class_boxes(x, scores, table)
    if table.width == 1:
        return clamp_range(x, lo, hi)
    return box_excess(x, lo, hi), -math.inf, 0.0


def _class_boxes(x: torch.Tensor, scores: torch.Tensor, table: ClassTable) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's class boxes, ``[rows, width, features]`` for ``lo`` and ``hi``."""
    both = table.on(x.dtype, x.device)
    cls = scores.argmax(dim=1)
    if scores.shape[1] > table.classes + 1:  # an argmax past the last row of the table: the empty class
        cls = cls.clamp_max_(table.classes)
    lo, hi = both.index_select(0, cls).unbind(1)
    return lo, hi
