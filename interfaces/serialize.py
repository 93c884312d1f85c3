"""JSON for TensorSpec, LabelSpace and Interface, through pydantic v2 models.

Top-level documents carry ``"format_version"`` and ``"kind"``; loading checks
the version first (``FormatVersionError`` otherwise), then validates with the
models (``extra="forbid"``), then rebuilds the objects through their
constructors, so every build-time check applies. Nothing is ever executed:
shapes are parsed by hand / ``ast`` without eval, dtypes looked up by name.

This module knows the documents, not the classes: ``to_dict`` reads the
objects' fields, ``read_document`` checks and validates a document into its
model, and each class (``LabelSpace``, ``TensorSpec``, ``Interface``) builds
itself from its model in its own ``from_dict``.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from modpact.errors import FormatVersionError, SpecError

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "to_dict",
    "from_dict",
    "to_json",
    "from_json",
    "read_document",
    "interface_json_schema",
    "LabelSpaceModel",
    "TensorSpecModel",
    "InterfaceModel",
]

FORMAT_VERSION: Final = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)

Number = int | float


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LabelSpaceModel(_Model):
    name: str
    labels: list[str]
    id: str


class TensorSpecModel(_Model):
    shape: str
    dtype: str | list[str] = "any"
    device: str = "any"
    range: tuple[Number | None, Number | None] | None = None
    finite: bool = False
    simplex: int | None = None
    simplex_tol: Number = 1e-4
    indices: int | None = None
    labels: LabelSpaceModel | None = None
    label_dim: int = -1


class InterfaceModel(_Model):
    format_version: Literal["1"] = FORMAT_VERSION
    kind: Literal["Interface"] = "Interface"
    name: str
    version: str = "1.0"
    description: str = ""
    inputs: dict[str, TensorSpecModel]
    outputs: dict[str, TensorSpecModel]


def _label_model(ls) -> LabelSpaceModel:
    return LabelSpaceModel(name=ls.name, labels=list(ls.labels), id=ls.id)


def _spec_model(s) -> TensorSpecModel:
    return TensorSpecModel(
        shape=str(s.shape),
        dtype=s.dtype if isinstance(s.dtype, str) else list(s.dtype),
        device=s.device,
        range=s.range,
        finite=s.finite,
        simplex=s.simplex,
        simplex_tol=s.simplex_tol,
        indices=s.indices,
        labels=None if s.labels is None else _label_model(s.labels),
        label_dim=s.label_dim,
    )


def _kind_of(obj) -> str:
    return type(obj).__name__


def to_dict(obj) -> dict:
    kind = _kind_of(obj)
    head = {"format_version": FORMAT_VERSION, "kind": kind}
    if kind == "LabelSpace":
        return {**head, **_label_model(obj).model_dump()}
    if kind == "TensorSpec":
        return {**head, **_spec_model(obj).model_dump()}
    if kind == "Interface":
        return InterfaceModel(
            name=obj.name,
            version=obj.version,
            description=obj.description,
            inputs={k: _spec_model(v) for k, v in obj.inputs.items()},
            outputs={k: _spec_model(v) for k, v in obj.outputs.items()},
        ).model_dump()
    raise TypeError(f"to_dict: cannot serialize {kind}")


def check_document(data: Any, kind: str, supported: tuple, *, kind_required: bool = False) -> None:
    """A JSON document's envelope: a dict of a supported ``format_version``
    and of ``kind`` (which may be left out unless ``kind_required``)."""
    if not isinstance(data, dict):
        raise SpecError(f"{kind}.from_dict: expected a dict, got {type(data).__name__}")
    found = data.get("format_version")
    if found not in supported:
        raise FormatVersionError(
            f"{kind}.from_dict: format_version {found!r} is not supported; "
            f"this modpact reads {', '.join(map(repr, supported))}"
        )
    if data.get("kind", None if kind_required else kind) != kind:
        raise SpecError(f"{kind}.from_dict: document kind is {data.get('kind')!r}, expected {kind!r}")


def read_document(data: Any, kind: str) -> Any:
    """A ``kind`` document (``"LabelSpace"``, ``"TensorSpec"`` or ``"Interface"``)
    checked (version and kind first) and validated into its model."""
    check_document(data, kind, SUPPORTED_FORMAT_VERSIONS)
    found = data["format_version"]
    body = {k: v for k, v in data.items() if k not in ("format_version", "kind")}
    try:
        if kind == "LabelSpace":
            return LabelSpaceModel.model_validate(body)
        if kind == "TensorSpec":
            return _json_ranges(TensorSpecModel, body)
        return InterfaceModel.model_validate({**body, "format_version": found, "kind": kind}, strict=False)
    except ValidationError as e:
        raise SpecError(f"{kind}.from_dict: invalid document:\n{e}") from None


def from_dict(data: Any, cls) -> Any:
    """``cls.from_dict(data)``: ``cls`` is LabelSpace, TensorSpec or Interface."""
    return cls.from_dict(data)


def _json_ranges(model, body):
    # JSON has lists where tuples were: validate non-strictly for containers only
    return model.model_validate(body, strict=False)


def to_json(obj, indent: int | None = 2) -> str:
    return json.dumps(to_dict(obj), indent=indent)


def from_json(text: str, cls) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{cls.__name__}.from_json: not valid JSON: {e}") from None
    return cls.from_dict(data)


def interface_json_schema() -> dict:
    return InterfaceModel.model_json_schema()
