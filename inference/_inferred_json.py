"""JSON for InferredContracts, versioned like ``modpact.interfaces.serialize``:
the version is checked first (``FormatVersionError``), then the document is
validated with pydantic models (``extra="forbid"``: a misspelt field is named),
then bounds are checked (finite, matching shapes, lo <= hi) with the field's
path in the message. Nothing is executed.

This module knows the document, not the classes: ``to_dict`` reads an
InferredContracts' fields, ``read_document`` gives checked constructor
arguments and ``InferredContracts.from_dict`` builds the objects."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from modpact.errors import SpecError
from modpact.interfaces.dims import parse_dim
from modpact.interfaces.dtypes import DTYPES
from modpact.interfaces.jsonread import check_tree
from modpact.interfaces.labels import LabelSpace
from modpact.interfaces.serialize import LabelSpaceModel, check_document, validation_problems

__all__ = ["FORMAT_VERSION", "SUPPORTED_FORMAT_VERSIONS", "to_dict", "read_document"]

FORMAT_VERSION = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)
KIND = "InferredContracts"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Boxes(_Model):
    lo: list[list[float]]
    hi: list[list[float]]
    labels: list[int]
    mode: Literal["union", "class"] = "union"


class _Envelope(_Model):
    module: str
    side: Literal["input", "output"]
    name: str
    index: int | str | None = None
    granularity: Literal["element", "channel", "last", "tensor"]
    lo: Any
    hi: Any
    rows: int
    boundary: bool = False
    model_input: bool = False
    boxes: _Boxes | None = None


class _Signature(_Model):
    inputs: dict[str, tuple[list[int], str]]
    outputs: dict[str, tuple[list[int], str]]


class _Doc(_Model):
    format_version: Literal["1"]
    kind: Literal["InferredContracts"]
    margin: float
    min_scale: float
    clusters: int | None = None
    granularity: Literal["auto", "element", "channel", "last", "tensor"] = "auto"
    labels: LabelSpaceModel | None = None
    label_counts: list[int] | None = None
    output_module: str | None = None
    shapes: dict[str, list[_Signature]]
    envelopes: list[_Envelope]
    history: list[dict[str, Any]] = []
    undescribed: dict[str, str] = {}
    indices: dict[str, dict[str, int]] = {}
    state_axes: dict[str, dict[str, int | None]] = {}  # left out of a document when empty


def to_dict(ic: Any) -> dict[str, Any]:
    envs = []
    for e in ic.envelopes:
        d: dict[str, Any] = {
            "module": e.module,
            "side": e.side,
            "name": e.name,
            "index": e.index,
            "granularity": e.granularity,
            "lo": e.lo.tolist(),
            "hi": e.hi.tolist(),
            "rows": e.rows,
            "boundary": e.boundary,
            "model_input": e.model_input,
        }
        if e.box_lo is not None:
            d["boxes"] = {
                "lo": e.box_lo.tolist(),
                "hi": e.box_hi.tolist(),
                "labels": list(e.box_labels),
                "mode": e.box_mode,
            }
        envs.append(d)
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "margin": ic.margin,
        "min_scale": ic.min_scale,
        "clusters": ic.clusters,
        "granularity": ic.granularity,
        "labels": None
        if ic.labels is None
        else {"name": ic.labels.name, "labels": list(ic.labels.labels), "id": ic.labels.id},
        "label_counts": ic.label_counts,
        "output_module": ic.output_module,
        "shapes": ic.shapes,
        "envelopes": envs,
        "history": ic.history,
        "undescribed": ic.undescribed,
        "indices": ic.indices,
        **({"state_axes": ic.state_axes} if ic.state_axes else {}),
    }


def _tensor(value: Any, where: str) -> torch.Tensor:
    try:
        t = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise SpecError(f"{KIND}.from_dict: {where} is not a (nested) list of numbers: {str(e)[:200]}") from None
    if not bool(torch.isfinite(t).all()):
        raise SpecError(f"{KIND}.from_dict: {where} has non-finite values")
    return t


def _pair(lo: Any, hi: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _tensor(lo, f"{where}.lo"), _tensor(hi, f"{where}.hi")
    if a.numel() == 0:
        raise SpecError(f"{KIND}.from_dict: {where}.lo is empty; an envelope bounds at least one value")
    if a.shape != b.shape:
        raise SpecError(
            f"{KIND}.from_dict: {where}.lo has shape {list(a.shape)} but {where}.hi has shape {list(b.shape)}"
        )
    if bool((a > b).any()):
        idx = tuple(int(i) for i in (a > b).nonzero()[0])
        raise SpecError(f"{KIND}.from_dict: {where}: lo > hi at index {idx}")
    return a, b


def read_document(data: Any) -> dict[str, Any]:
    """A checked document as the keyword arguments of ``InferredContracts``;
    ``envelopes`` holds each TensorEnvelope's keyword arguments."""
    check_document(data, KIND, SUPPORTED_FORMAT_VERSIONS, kind_required=True)
    check_tree(data, f"{KIND}.from_dict", strings=True)
    try:
        doc = _Doc.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{KIND}.from_dict: invalid document: {validation_problems(err)}") from None
    envs = []
    for i, m in enumerate(doc.envelopes):
        where = f"envelopes[{i}]"
        if m.module not in doc.shapes:
            raise SpecError(f"{KIND}.from_dict: {where}.module {m.module!r} has no entry in shapes")
        if not m.name.isidentifier():
            raise SpecError(f"{KIND}.from_dict: {where}.name {m.name[:80]!r} is not an argument name")
        lo, hi = _pair(m.lo, m.hi, where)
        if m.rows < 0:
            raise SpecError(f"{KIND}.from_dict: {where}.rows is {m.rows}; a count of reference rows is >= 0")
        e: dict[str, Any] = dict(
            module=m.module,
            side=m.side,
            name=m.name,
            index=m.index,
            granularity=m.granularity,
            lo=lo,
            hi=hi,
            rows=m.rows,
            boundary=m.boundary,
            model_input=m.model_input,
        )
        if m.boxes is not None:
            e["box_lo"], e["box_hi"] = _pair(m.boxes.lo, m.boxes.hi, f"{where}.boxes")
            if len(m.boxes.labels) != e["box_lo"].shape[0]:
                raise SpecError(
                    f"{KIND}.from_dict: {where}.boxes.labels has {len(m.boxes.labels)} entries for "
                    f"{e['box_lo'].shape[0]} boxes"
                )
            e["box_labels"] = list(m.boxes.labels)
            e["box_mode"] = m.boxes.mode
            if e["box_mode"] == "class" and (e["side"] != "input" or -1 in e["box_labels"]):
                raise SpecError(
                    f"{KIND}.from_dict: {where}.boxes: mode 'class' needs an input tensor and a class for every box"
                )
        envs.append(e)
    space = None
    if doc.labels is not None:
        try:
            space = LabelSpace(doc.labels.name, doc.labels.labels, id=doc.labels.id)
        except SpecError as e:
            raise SpecError(f"{KIND}.from_dict: labels: {e}") from None
        if doc.label_counts is not None and len(doc.label_counts) != len(space):
            raise SpecError(
                f"{KIND}.from_dict: label_counts has {len(doc.label_counts)} entries for {len(space)} labels"
            )
    shapes = {p: [s.model_dump() for s in sigs] for p, sigs in doc.shapes.items()}
    for path, sigs in shapes.items():
        for i, s in enumerate(sigs):
            for side in ("inputs", "outputs"):
                for k, (shape, dtype) in s[side].items():
                    where = f"shapes[{path!r}][{i}].{side}.{k}"
                    if dtype not in DTYPES:  # looked up by name in a table, never getattr(torch, ...)
                        raise SpecError(f"{KIND}.from_dict: {where} has unknown dtype {dtype!r}")
                    numel = 1
                    for d in shape:
                        try:
                            parse_dim(d, where)  # the dims become an interface's fixed dims (summary, install)
                        except SpecError as e:
                            raise SpecError(f"{KIND}.from_dict: {e}") from None
                        numel *= d
                    if numel > 2**63 - 1:
                        raise SpecError(f"{KIND}.from_dict: {where}: shape {shape} has more elements than a tensor can")
                    s[side][k] = [list(shape), dtype]
    for path in list(doc.undescribed) + list(doc.indices) + list(doc.state_axes):
        if path not in doc.shapes:
            raise SpecError(
                f"{KIND}.from_dict: module {path!r} of undescribed/indices/state_axes has no entry in shapes"
            )
    for path, by_key in doc.state_axes.items():
        for k, axis in by_key.items():
            ranks = {len(sig.outputs[k][0]) if k in sig.outputs else None for sig in doc.shapes[path]}
            if axis is not None and (None in ranks or not all(0 <= axis < r for r in ranks if r is not None)):
                raise SpecError(f"{KIND}.from_dict: state_axes[{path!r}][{k!r}] is {axis}; not an axis of that output")
    for path, by_name in doc.indices.items():
        for k, n in by_name.items():
            if n < 1:
                raise SpecError(f"{KIND}.from_dict: indices[{path!r}][{k!r}] is {n}; an Embedding has >= 1 rows")
    return dict(
        undescribed=doc.undescribed,
        indices=doc.indices,
        state_axes=doc.state_axes,
        envelopes=envs,
        shapes=shapes,
        margin=doc.margin,
        min_scale=doc.min_scale,
        clusters=doc.clusters,
        granularity=doc.granularity,
        labels=space,
        label_counts=doc.label_counts,
        output_module=doc.output_module,
        history=doc.history,
    )
