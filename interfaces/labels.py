"""Label spaces: ordered, named class labels, and alignment between orders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

import torch

from modpact.errors import CompatibilityError, SpecError

from . import serialize

__all__ = ["LabelSpace", "LabelAdapter"]


class LabelSpace:
    """Ordered class labels with a name and a stable id.

    Equality means the same labels in the same order (name and id aside).
    ``align(other)`` gives the indices that reorder scores from this order
    into ``other``'s; ``adapter(other)`` wraps them in an ``nn.Module``.
    """

    __slots__ = ("name", "labels", "id", "_index")

    def __init__(self, name: str, labels: Sequence[str], id: str | None = None):
        if not isinstance(name, str) or not name:
            raise SpecError(f"LabelSpace(name={name!r}): expected a non-empty string")
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise SpecError(
                f"LabelSpace(labels={labels!r}): expected a list or tuple of strings, got {type(labels).__name__}"
            )
        bad = [x for x in labels if not isinstance(x, str)]
        if bad:
            raise SpecError(
                f"LabelSpace(labels=...): label {bad[0]!r} is a {type(bad[0]).__name__}; labels must be strings"
            )
        if not labels:
            raise SpecError(f"LabelSpace(name={name!r}, labels=[]): empty label space; expected at least one label")
        seen: set[str] = set()
        dups = []
        for x in labels:
            if x in seen:
                dups.append(x)
            seen.add(x)
        if dups:
            raise SpecError(f"LabelSpace(name={name!r}): duplicate labels {sorted(set(dups))!r}; labels must be unique")
        if id is not None and (not isinstance(id, str) or not id):
            raise SpecError(f"LabelSpace(id={id!r}): expected a non-empty string or None")
        self.name = name
        self.labels = tuple(labels)
        self.id = id if id is not None else self.default_id(name, self.labels)
        self._index = {x: i for i, x in enumerate(self.labels)}

    @staticmethod
    def default_id(name: str, labels: Sequence[str]) -> str:
        digest = hashlib.sha256(json.dumps(list(labels)).encode()).hexdigest()[:12]
        return f"{name}-{digest}"

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def index(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise KeyError(f"label {label!r} is not in label space {self.name!r}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSpace) and self.labels == other.labels

    def __hash__(self) -> int:
        return hash(self.labels)

    def __repr__(self) -> str:
        shown = ", ".join(map(repr, self.labels[:6])) + (", ..." if len(self) > 6 else "")
        return f"LabelSpace({self.name!r}, [{shown}])"

    def issubset(self, other: LabelSpace) -> bool:
        return all(x in other for x in self.labels)

    def missing_from(self, other: LabelSpace) -> list[str]:
        """Labels of ``other`` that this space lacks."""
        return [x for x in other.labels if x not in self]

    def align(self, other: LabelSpace) -> list[int]:
        """``perm`` with ``scores[..., perm]`` in ``other``'s order (other ⊆ self)."""
        missing = self.missing_from(other)
        if missing:
            raise CompatibilityError(
                f"cannot align label space {self.name!r} to {other.name!r}: "
                f"{len(missing)} label(s) of {other.name!r} are missing",
                [f"label {x!r} is missing from {self.name!r}" for x in missing],
            )
        return [self._index[x] for x in other.labels]

    def adapter(self, other: LabelSpace, dim: int = -1) -> LabelAdapter:
        """An ``nn.Module`` that reorders scores along ``dim`` from this order to ``other``'s."""
        return LabelAdapter(self.align(other), dim, f"{self.name} -> {other.name}")

    # serialization (see serialize.py)
    def to_dict(self) -> dict:
        return serialize.to_dict(self)

    def to_json(self, **kw) -> str:
        return serialize.to_json(self, **kw)

    @classmethod
    def from_dict(cls, data: dict) -> LabelSpace:
        m = serialize.read_document(data, cls.__name__)
        return serialize.rebuild(cls.__name__, lambda: label_space_from_model(m))

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        return serialize.from_json(text, cls)


def label_space_from_model(m: serialize.LabelSpaceModel) -> LabelSpace:
    """A LabelSpace from its validated JSON model."""
    return LabelSpace(m.name, m.labels, id=m.id)


class LabelAdapter(torch.nn.Module):
    """``index_select`` along ``dim`` with a fixed permutation (moves with ``.to()``)."""

    perm: torch.Tensor  # a buffer

    def __init__(self, perm: Sequence[int], dim: int = -1, description: str = ""):
        super().__init__()
        self.dim = dim
        self.description = description
        self.register_buffer("perm", torch.tensor(list(perm), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(self.dim, self.perm.to(x.device))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, {self.description}, perm={self.perm.tolist()}"
