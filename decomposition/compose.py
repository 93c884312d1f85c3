"""Recompose per-class modules into an N-class classifier.

Every module votes "c" when its confidence ``p(c | x)`` exceeds 1/2; among the
voters the most confident wins, and when no module votes, the most confident
module wins. Both cases are the argmax of the confidences (a voter is always
more confident than a non-voter), so ``forward`` returns the confidences, in
the target label order, and ``predict`` applies the vote.

Modules are matched to the target label space by the name of their class, not
by index: modules decomposed from models with different label orders compose,
and the reordering is a generated ``LabelAdapter`` (``LabelSpace.adapter``)
from the order the modules were given in to the target order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from modpact.errors import CompatibilityError, SpecError
from modpact.interfaces import Interface, LabelSpace, TensorSpec, check_compatible

__all__ = ["ComposedClassifier", "compose_classes"]


def _concern(m: nn.Module, i: int) -> str:
    ls = getattr(m, "label_space", None)
    iface = getattr(m, "interface", None)
    if not isinstance(ls, LabelSpace) or len(ls) != 2 or not isinstance(iface, Interface):
        raise SpecError(
            f"compose_classes: module {i} ({type(m).__name__}) is not a per-class module "
            "(needs .label_space [c, 'not c'] and .interface, as decompose_classes makes)"
        )
    return ls.labels[0]


# The attributes of a per-class module, which _concern checked when the module joined.
def _interface(m: nn.Module) -> Interface:
    return cast(Interface, m.interface)


def _label_space(m: nn.Module) -> LabelSpace:
    return cast(LabelSpace, m.label_space)


class ComposedClassifier(nn.Module):
    """Per-class modules composed by vote; see ``compose_classes``."""

    def __init__(self, modules: Sequence[nn.Module], labels: LabelSpace | None = None):
        super().__init__()
        modules = list(modules)
        if not modules:
            raise SpecError("compose_classes: no modules given")
        concerns = [_concern(m, i) for i, m in enumerate(modules)]
        dups = sorted({c for c in concerns if concerns.count(c) > 1})
        if dups:
            raise CompatibilityError(
                "compose_classes: more than one module per class",
                [f"class {c!r} has {concerns.count(c)} modules" for c in dups],
            )
        given = LabelSpace("modules", concerns)
        labels = labels or LabelSpace("composed", concerns)
        reasons = [f"class {c!r} of {labels.name!r} has no module" for c in given.missing_from(labels)]
        reasons += [f"module for class {c!r} has no place in {labels.name!r}" for c in labels.missing_from(given)]
        first = _interface(modules[0])
        ((xname, xspec),) = first.inputs.items()
        for m, c in zip(modules[1:], concerns[1:]):
            compat = check_compatible(xspec, next(iter(_interface(m).inputs.values())))
            reasons += [f"input of module[{c}] vs input of module[{concerns[0]}]: {r}" for r in compat.reasons]
        if reasons:
            raise CompatibilityError(f"cannot compose {len(modules)} module(s) into {labels.name!r}", reasons)
        self.parts = nn.ModuleList(modules)
        self.labels = labels
        self.adapter = given.adapter(labels)
        self.interface = Interface(
            f"composed[{labels.name}]",
            inputs={xname: xspec},
            outputs={"scores": TensorSpec(f"batch {len(labels)}", dtype="float32", range=(0, 1), labels=labels)},
            description="per-class confidences; predict() takes the vote",
        )

    @property
    def concerns(self) -> list[str]:
        return [_label_space(m).labels[0] for m in self.parts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conf = torch.stack([m(x).softmax(-1)[..., 0] for m in self.parts], dim=-1)
        return self.adapter(conf)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Index into ``labels``: the most confident voter, else the most confident module."""
        conf = self(x)
        votes = conf > 0.5
        voted = torch.where(votes, conf, torch.full_like(conf, -1.0))
        return torch.where(votes.any(-1), voted.argmax(-1), conf.argmax(-1))

    def with_class(self, module: nn.Module, labels: LabelSpace | None = None) -> ComposedClassifier:
        """A new classifier with one more class (appended to the label space unless ``labels``)."""
        c = _concern(module, len(self.parts))
        labels = labels or LabelSpace(self.labels.name, [*self.labels.labels, c])
        return ComposedClassifier([*self.parts, module], labels)

    def without_class(self, label: str, labels: LabelSpace | None = None) -> ComposedClassifier:
        """A new classifier without ``label``'s module (and without ``label``)."""
        if label not in self.concerns:
            raise CompatibilityError(
                f"cannot exclude class {label!r} from {self.labels.name!r}",
                [f"no module for {label!r}; classes are {self.concerns}"],
            )
        rest = [m for m in self.parts if _label_space(m).labels[0] != label]
        labels = labels or LabelSpace(self.labels.name, [c for c in self.labels.labels if c != label])
        return ComposedClassifier(rest, labels)

    def extra_repr(self) -> str:
        return f"labels={self.labels!r}"


def compose_classes(modules: Sequence[nn.Module], labels: LabelSpace | None = None) -> ComposedClassifier:
    """An N-class classifier from per-class modules, matched to ``labels`` by
    class name (default: the classes in the order given)."""
    return ComposedClassifier(modules, labels)
