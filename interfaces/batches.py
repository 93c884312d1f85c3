"""The one reader of data arguments: what ``infer_contracts``,
``decompose_classes`` and ``check_substitutable`` accept as data.

Accepted, at the top level:

* a tensor: one batch of inputs (rows along dim 0), passed positionally;
* a dict batch ``{"input_ids": ..., "attention_mask": ...}`` (string keys,
  tensor values with the same number of rows): one batch passed as keywords;
* an ``(inputs, labels)`` tuple: ``inputs`` a tensor or a dict batch,
  ``labels`` integer class labels, a tensor or a plain list of ints, with one
  label per row of the inputs (a tensor may have more dims: one label per token);
* an iterable of batches (a DataLoader, a list, a generator), each a tensor, a
  dict batch, or an ``(inputs, labels)`` pair as a tuple or a list (what a
  DataLoader over a ``TensorDataset(x, y)`` yields); ``[inputs]`` alone (a
  ``TensorDataset(x)``) is a batch of inputs. Inside an iterable the second
  item may be any tensor with one entry per row (regression targets too); a
  consumer that needs class labels says so when they are not integers.

A tuple at the top level is read as one ``(inputs, labels)`` pair when its
first item is a tensor or a dict; a list is read as a list of batches. Every
other value is refused with a :class:`SpecError` that names what was given
and what is accepted. Nothing is dropped: a batch of three items, a dict with
a non-tensor value, labels whose count differs from the rows are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from modpact.errors import SpecError

from .summary import describe

__all__ = ["Batch", "ACCEPTED", "read_batches", "read_all", "is_dict_batch"]

#: what the data arguments accept, for error messages
ACCEPTED = (
    "a tensor, an (inputs, labels) pair (labels a tensor or a list of ints), a dict batch "
    "({'input_ids': tensor, ...}, passed as keywords), or an iterable of those (a DataLoader, a list of batches)"
)

Inputs = torch.Tensor | dict[str, torch.Tensor]


def _shown(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return describe(value)
    if isinstance(value, Mapping):
        return "a dict with keys " + ", ".join(repr(k) for k in list(value)[:8]) + (", ..." if len(value) > 8 else "")
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_shown(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    text = repr(value)
    return f"{text} ({type(value).__name__})" if len(text) <= 60 else f"{type(value).__name__} {text[:57]}..."


def is_dict_batch(value: Any) -> bool:
    """A mapping (a dict batch, a Hugging Face ``BatchEncoding``), whatever its content."""
    return isinstance(value, Mapping)


@dataclass(frozen=True)
class Batch:
    """One batch read from data: ``inputs`` (a tensor, passed positionally, or
    a dict passed as keywords), ``labels`` (a tensor, or None) and its
    position in the data (``index``, for messages)."""

    inputs: Inputs
    labels: torch.Tensor | None
    index: int = 0

    @property
    def rows(self) -> int:
        return _rows(self.inputs)

    @property
    def keywords(self) -> bool:
        return isinstance(self.inputs, dict)

    def tensors(self) -> list[torch.Tensor]:
        return list(self.inputs.values()) if isinstance(self.inputs, dict) else [self.inputs]

    def to(self, device: Any) -> Batch:
        """The inputs moved to ``device`` (labels stay where they are)."""
        x = self.inputs
        moved: Inputs = {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)
        return Batch(moved, self.labels, self.index)

    def call(self, fn: Callable[..., Any]) -> Any:
        """``fn(x)`` for a tensor, ``fn(**batch)`` for a dict batch."""
        return fn(**self.inputs) if isinstance(self.inputs, dict) else fn(self.inputs)

    def named(self, names: list[str], what: str) -> dict[str, torch.Tensor]:
        """The inputs by the interface's input names: a tensor is the one input
        (the interface must have exactly one); a dict batch must name them all."""
        x = self.inputs
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            extra = [k for k in x if k not in names]
            if missing or extra:
                raise SpecError(
                    f"{what}(data=...): batch {self.index} has keys {list(x)} but the interface's inputs are "
                    f"{names}" + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else "")
                )
            return {n: x[n] for n in names}
        if len(names) != 1:
            raise SpecError(
                f"{what}(data=...): batch {self.index} is one tensor ({describe(x)}) but the interface has "
                f"{len(names)} inputs {names}; give a dict batch naming each"
            )
        return {names[0]: x}

    def class_labels(self, what: str) -> torch.Tensor | None:
        """The labels when they are integer class indices (None when the batch has none);
        a SpecError naming them when they are not integers."""
        y = self.labels
        if y is None:
            return None
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise SpecError(
                f"{what}(data=...): batch {self.index} has labels {describe(y)}; class labels are integers "
                "(a tensor of an integer dtype, or a list of ints)"
            )
        return y

    def take(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` of the inputs and labels."""
        x = self.inputs
        part: Inputs = {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]
        return Batch(part, None if self.labels is None else self.labels[start:stop], self.index)


def _rows(x: Inputs) -> int:
    t = next(iter(x.values())) if isinstance(x, dict) else x
    return int(t.shape[0]) if t.ndim else 1


def _inputs(value: Any, what: str, where: str) -> Inputs:
    """A tensor, or a dict batch checked: string keys, tensors of one row count."""
    if isinstance(value, torch.Tensor):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(f"{what}(data=...): {where} is {_shown(value)}; expected a tensor or a dict of tensors")
    if not value:
        raise SpecError(f"{what}(data=...): {where} is an empty dict; a dict batch names at least one input tensor")
    out: dict[str, torch.Tensor] = {}
    rows: dict[str, int] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise SpecError(f"{what}(data=...): {where} has key {k!r}; the keys of a dict batch are argument names")
        if not isinstance(v, torch.Tensor):
            raise SpecError(
                f"{what}(data=...): {where}[{k!r}] is {_shown(v)}; every value of a dict batch is a tensor "
                "(it is passed as a keyword argument)"
            )
        if v.ndim == 0:
            raise SpecError(f"{what}(data=...): {where}[{k!r}] is {describe(v)}, with no rows (dim 0)")
        out[k] = v
        rows[k] = int(v.shape[0])
    if len(set(rows.values())) > 1:
        raise SpecError(
            f"{what}(data=...): {where} has tensors with different numbers of rows: "
            + ", ".join(f"{k}={n}" for k, n in rows.items())
        )
    return out


def _labels(value: Any, rows: int, what: str, where: str, *, classes: bool) -> torch.Tensor:
    """Labels as a tensor: a tensor as given, a list of ints as int64; one per row."""
    if isinstance(value, torch.Tensor):
        y = value
        if classes and (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
            raise SpecError(
                f"{what}(data=...): the labels of {where} are {describe(y)}; labels are integer class indices "
                "(a tensor of an integer dtype, or a list of ints)"
            )
    elif isinstance(value, (list, tuple)):
        bad = next(((i, v) for i, v in enumerate(value) if isinstance(v, bool) or not isinstance(v, int)), None)
        if bad is not None:
            raise SpecError(
                f"{what}(data=...): the labels of {where} are a list whose item {bad[0]} is {bad[1]!r}; "
                "a list of labels holds ints"
            )
        y = torch.tensor(list(value), dtype=torch.int64)
    else:
        raise SpecError(
            f"{what}(data=...): the labels of {where} are {_shown(value)}; expected a tensor or a list of ints"
        )
    if y.ndim == 0 or int(y.shape[0]) != rows:
        n = "no rows" if y.ndim == 0 else f"{int(y.shape[0])} labels"
        raise SpecError(f"{what}(data=...): {where} has {rows} input rows but {n} ({describe(y)}); give one per row")
    return y


def _one(item: Any, index: int, what: str, top: bool) -> Batch:
    where = "data" if top else f"batch {index}"
    if isinstance(item, torch.Tensor):
        if item.ndim == 0:
            raise SpecError(f"{what}(data=...): {where} is {describe(item)}, with no rows (dim 0)")
        return Batch(item, None, index)
    if isinstance(item, Mapping):
        return Batch(_inputs(item, what, where), None, index)
    if isinstance(item, (tuple, list)):
        if len(item) == 1 and not top:
            return Batch(_inputs(item[0], what, f"{where}[0]"), None, index)
        if len(item) != 2:
            raise SpecError(
                f"{what}(data=...): {where} is {_shown(item)}; a batch is a tensor, a dict batch or an "
                "(inputs, labels) pair"
            )
        x = _inputs(item[0], what, f"the inputs of {where}")
        return Batch(x, _labels(item[1], _rows(x), what, where, classes=top), index)
    raise SpecError(
        f"{what}(data=...): {where} is {_shown(item)}; a batch is a tensor, a dict batch or an (inputs, labels) pair"
    )


def read_batches(data: Any, what: str, *, batch_size: int | None = None) -> Iterator[Batch]:
    """The batches of ``data`` (module docstring). A single tensor, dict batch
    or pair is cut into pieces of ``batch_size`` rows when it is given; the
    batches of an iterable are taken as they come. Raises SpecError, naming
    what was given, for anything else."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise SpecError(f"{what}(batch_size={batch_size!r}): expected a positive int")
    single = (
        isinstance(data, (torch.Tensor, Mapping))
        or isinstance(data, tuple)
        and len(data) == 2
        and isinstance(data[0], (torch.Tensor, Mapping))
    )
    if single:
        whole = _one(data, 0, what, top=True)
        n = whole.rows
        if batch_size is None or n <= batch_size:
            yield whole
            return
        for i, start in enumerate(range(0, n, batch_size)):
            part = whole.take(start, start + batch_size)
            yield Batch(part.inputs, part.labels, i)
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise SpecError(f"{what}(data=...): got {_shown(data)}; expected {ACCEPTED}")
    if isinstance(data, tuple) and len(data) == 2:  # a pair whose inputs are not inputs
        raise SpecError(
            f"{what}(data=...): got {_shown(data)}; an (inputs, labels) pair starts with a tensor or a dict "
            "batch (a list of batches is a list, not a tuple)"
        )
    for i, item in enumerate(data):
        yield _one(item, i, what, top=False)


def read_all(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every batch of ``data`` concatenated: (inputs, labels or None). For the
    consumers that need all the rows at once and one input tensor
    (``decompose_classes``); a dict batch, batches of different row shapes, or
    labels on some batches and not others are refused with the reason."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    unlabeled: list[int] = []
    for b in read_batches(data, what):
        if isinstance(b.inputs, dict):
            raise SpecError(
                f"{what}(data=...): batch {b.index} is a dict batch (keys {list(b.inputs)}); {what} needs one "
                "input tensor per batch"
            )
        if xs and b.inputs.shape[1:] != xs[0].shape[1:]:
            raise SpecError(
                f"{what}(data=...): batch {b.index} has rows of shape {list(b.inputs.shape[1:])} but batch 0 "
                f"has {list(xs[0].shape[1:])}"
            )
        xs.append(b.inputs)
        if b.labels is None:
            unlabeled.append(b.index)
        else:
            ys.append(b.labels)
    if not xs:
        raise SpecError(f"{what}(data=...): the data gave no batches")
    if ys and unlabeled:
        raise SpecError(
            f"{what}(data=...): batch(es) {unlabeled[:5]} have no labels but other batches do; "
            "give labels with every batch or with none"
        )
    x = torch.cat(xs) if len(xs) > 1 else xs[0]
    y = (torch.cat(ys) if len(ys) > 1 else ys[0]) if ys else None
    return x, y
