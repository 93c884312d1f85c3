"""Concern-based decomposition of a classifier into per-class modules
(after Pan & Rajan, "On Decomposing a Deep Neural Network into Modules", ESEC/FSE 2020).

For each class ``c`` of an N-class ReLU network (an MLP; a small CNN works too):

1. Concern identification: run the training inputs of ``c`` and record, for
   every edge ``i -> j`` of every ``Linear``/``Conv2d`` layer, how much it
   carries along active paths: ``|w_ji| * mean(1[z_j > 0] * |a_i|)`` (hidden
   layers; the output layer is not gated). Units never active for ``c`` carry
   nothing.
2. Tangling identification: add negative examples (inputs of the other
   classes, ``negatives`` times as many as the positives, drawn evenly) and
   add their scores, so the module keeps what it needs to say "not c".
3. Pruning: keep the top ``retention`` fraction of the edges, ranked across
   all layers after dividing each layer's scores by their mean
   (``scope="normalized"``, the default), across all layers on raw scores
   (``"global"``) or within each layer (``"layer"``); biases stay; the rest
   are set to zero.
4. Channeling: the N output logits become two, ``[z_c, logsumexp(z_j, j != c)]``.
   Their softmax is exactly the original ``[p_c, 1 - p_c]``, so with
   ``retention=1`` the modules recompose (see compose.py) into the original
   classifier's predictions. (Pan & Rajan channel with a linear combination of
   the other output nodes; log-sum-exp is our choice, it keeps the probability.)

Each module is a binary classifier with its own label space ``[c, "not c"]``
and interface. Pruned weights are stored as zeros in a dense copy of the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from modpact.errors import SpecError
from modpact.interfaces import Interface, LabelSpace, TensorSpec, describe
from modpact.interfaces.batches import read_all

__all__ = ["ClassModule", "Channel", "decompose_classes", "edge_scores", "class_label_space"]

_PRUNABLE = (nn.Linear, nn.Conv2d)
#: How edges are ranked for pruning: across all layers (raw or per-layer-normalized scores) or within each layer
PruneScope = Literal["global", "layer", "normalized"]
SCOPES: tuple[PruneScope, ...] = ("global", "layer", "normalized")


def class_label_space(label: str, source: LabelSpace | str = "classes") -> LabelSpace:
    """The label space ``[c, "not c"]`` of the module for class ``c``."""
    name = source.name if isinstance(source, LabelSpace) else source
    return LabelSpace(f"{name}:{label}-vs-rest", [label, f"not {label}"])


class Channel(nn.Module):
    """N logits -> ``[z_c, logsumexp(z_j for j != c)]``."""

    others: torch.Tensor  # a buffer

    def __init__(self, index: int, n: int):
        super().__init__()
        self.index = index
        self.register_buffer("others", torch.tensor([j for j in range(n) if j != index]), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rest = z.index_select(-1, self.others.to(z.device)).logsumexp(-1)
        return torch.stack([z[..., self.index], rest], dim=-1)

    def extra_repr(self) -> str:
        return f"index={self.index}"


class ClassModule(nn.Module):
    """The module for one class: the pruned network, then ``Channel``.

    Attributes: ``concern`` (the class name), ``label_space`` (``[c, "not c"]``),
    ``interface``, ``source_labels`` (the label space of the decomposed model),
    ``masks`` (layer name -> bool keep-mask), ``retained`` (fraction of edges kept).
    """

    def __init__(
        self,
        net: nn.Module,
        concern: str,
        source_labels: LabelSpace,
        input_spec: TensorSpec,
        masks: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.net = net
        self.channel = Channel(source_labels.index(concern), len(source_labels))
        self.concern = concern
        self.source_labels = source_labels
        self.label_space = class_label_space(concern, source_labels)
        self.masks = dict(masks or {})
        self.interface = Interface(
            f"module[{concern}]",
            inputs={"x": input_spec},
            outputs={"logits": TensorSpec("batch 2", dtype="float32", labels=self.label_space)},
            description=f"class {concern!r} vs the rest of {source_labels.name!r}",
        )

    @property
    def retained(self) -> float:
        kept = sum(int(m.sum()) for m in self.masks.values())
        total = sum(m.numel() for m in self.masks.values())
        return kept / total if total else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.net(x))

    def confidence(self, x: torch.Tensor) -> torch.Tensor:
        """``p(c | x)`` as this module sees it."""
        return self(x).softmax(-1)[..., 0]

    def extra_repr(self) -> str:
        return f"concern={self.concern!r}, retained={self.retained:.3f}"


def _layers(model: nn.Module) -> list[tuple[str, nn.Linear | nn.Conv2d]]:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _PRUNABLE)]
    if not layers:
        raise SpecError(f"decompose_classes: {type(model).__name__} has no Linear or Conv2d layer to decompose")
    return layers


@torch.no_grad()
def edge_scores(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per layer, each edge's mean magnitude along active paths for inputs ``x``
    (shape of the layer's weight). The last prunable layer is not gated."""
    layers = _layers(model)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, (inp[0], out))) for n, m in layers]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    last = layers[-1][0]
    scores = {}
    for n, m in layers:
        a, z = seen[n]
        gate = (z > 0).float() if n != last else torch.ones_like(z)
        if isinstance(m, nn.Linear):
            a, gate = a.reshape(-1, a.shape[-1]), gate.reshape(-1, gate.shape[-1])
            carried = gate.T @ a.abs() / len(a)  # [out, in]
            scores[n] = m.weight.abs() * carried
        else:  # Conv2d: per (out, in) channel pair, then per kernel tap
            act = gate.flatten(2).mean(-1)  # [n, out]
            mag = a.abs().flatten(2).mean(-1)  # [n, in]
            carried = act.T @ mag / len(a)  # [out, in]
            if m.groups != 1:
                raise SpecError(f"decompose_classes: grouped convolution {n!r} is not supported")
            scores[n] = m.weight.abs() * carried[:, :, None, None]
    return scores


def _top_mask(score: torch.Tensor, retention: float) -> torch.Tensor:
    k = max(1, math.ceil(retention * score.numel()))
    if k >= score.numel():
        return torch.ones_like(score, dtype=torch.bool)
    flat = score.flatten()
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, k, sorted=False).indices] = True
    return keep.view_as(score)


def _masks(scores: dict[str, torch.Tensor], retention: float, scope: str) -> dict[str, torch.Tensor]:
    if scope == "layer":
        return {n: _top_mask(sc, retention) for n, sc in scores.items()}
    if scope == "normalized":
        scores = {n: sc / sc.mean().clamp_min(1e-12) for n, sc in scores.items()}
    flat = torch.cat([sc.flatten() for sc in scores.values()])
    keep = _top_mask(flat, retention)
    out, i = {}, 0
    for n, sc in scores.items():
        out[n] = keep[i : i + sc.numel()].view_as(sc)
        i += sc.numel()
    return out


def _negatives(x: torch.Tensor, y: torch.Tensor, c: int, n: int, gen: torch.Generator) -> torch.Tensor:
    others = sorted(set(y.tolist()) - {c})
    if n <= 0 or not others:
        return x[:0]
    per = max(1, n // len(others))
    picks = []
    for o in others:
        idx = (y == o).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per]])
    return x[torch.cat(picks)]


def _training_data(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, integer labels) from ``x, y`` or from data carrying its labels."""
    if y is not None:
        if not isinstance(x, torch.Tensor):
            raise SpecError(
                f"decompose_classes: with y given, x is the input tensor; got {type(x).__name__} "
                "(pass data that carries its labels as x alone)"
            )
        data: Any = (x, y)
    else:
        data = x
    inputs, targets = read_all(data, "decompose_classes")
    if targets is None:
        raise SpecError(
            "decompose_classes: the data has no labels; give y, an (inputs, labels) pair or batches of pairs"
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool or targets.ndim != 1:
        raise SpecError(f"decompose_classes: labels are {describe(targets)}; expected one integer class index per row")
    return inputs, targets


def decompose_classes(
    model: nn.Module,
    x: Any,
    y: torch.Tensor | Sequence[int] | None = None,
    labels: LabelSpace | None = None,
    *,
    retention: float = 1.0,
    negatives: float = 1.0,
    classes: Sequence[str] | None = None,
    input_spec: TensorSpec | None = None,
    scope: PruneScope = "normalized",
    seed: int = 0,
) -> list[ClassModule]:
    """One ``ClassModule`` per class of ``labels`` (or of ``classes``).

    ``x, y``: the training data: inputs and integer targets indexing ``labels``
    (a tensor or a plain list of ints). Or ``x`` alone in the data convention
    of :mod:`modpact.interfaces.batches` (an ``(inputs, labels)`` pair, or an
    iterable of such batches, e.g. a DataLoader), then ``labels=`` by keyword.
    The inputs must be one tensor per batch (a dict batch is refused).
    ``retention``: fraction of each layer's edges a module keeps, in (0, 1].
    ``negatives``: negative examples per positive (0 turns tangling identification off).
    ``scope``: where edges compete for the ``retention`` budget. ``"normalized"``
    (default): all edges together, each layer's scores divided by their mean;
    ``"global"``: all edges together, raw scores; ``"layer"``: every layer keeps
    ``retention`` of its own edges.
    """
    if isinstance(y, LabelSpace):
        raise SpecError(
            "decompose_classes: y is a LabelSpace; with data that carries its labels, pass the label space "
            "by keyword: decompose_classes(model, data, labels=...)"
        )
    if not isinstance(labels, LabelSpace):
        raise SpecError(f"decompose_classes(labels={labels!r}): expected a LabelSpace")
    if isinstance(retention, bool) or not isinstance(retention, (int, float)) or not 0 < retention <= 1:
        raise SpecError(f"decompose_classes(retention={retention!r}): expected a fraction in (0, 1]")
    if isinstance(negatives, bool) or not isinstance(negatives, (int, float)) or negatives < 0:
        raise SpecError(f"decompose_classes(negatives={negatives!r}): expected a number >= 0")
    if scope not in SCOPES:
        raise SpecError(f"decompose_classes(scope={scope!r}): expected one of {', '.join(map(repr, SCOPES))}")
    x, y = _training_data(x, y)
    classes = list(labels.labels if classes is None else classes)
    unknown = [c for c in classes if c not in labels]
    if unknown:
        raise SpecError(f"decompose_classes(classes=...): {unknown!r} not in label space {labels.name!r}")
    _layers(model)
    input_spec = input_spec or TensorSpec(["batch", *x.shape[1:]], dtype=str(x.dtype).replace("torch.", ""))
    gen = torch.Generator().manual_seed(seed)
    modules = []
    for c in classes:
        ci = labels.index(c)
        pos = x[y == ci]
        if len(pos) == 0:
            raise SpecError(f"decompose_classes: no training input of class {c!r} (index {ci}) in y")
        scores = edge_scores(model, pos)
        neg = _negatives(x, y, ci, round(negatives * len(pos)), gen)
        if len(neg):
            for n, s in edge_scores(model, neg).items():
                scores[n] = scores[n] + s
        net = copy.deepcopy(model)
        named = dict(net.named_modules())
        masks = _masks(scores, retention, scope)
        with torch.no_grad():
            for n, keep in masks.items():
                named[n].weight.mul_(keep)
        modules.append(ClassModule(net, c, labels, input_spec, masks).eval())
    return modules
