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
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

from modpact.errors import FormatVersionError, ModpactError, SpecError

from .jsonread import check_tree, field_path, parse_json, read_text

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "to_dict",
    "from_dict",
    "to_json",
    "from_json",
    "read_document",
    "check_document",
    "check_format_version",
    "validation_problems",
    "rebuild",
    "load",
    "interface_json_schema",
    "LabelSpaceModel",
    "TensorSpecModel",
    "InterfaceModel",
    "SpecModel",
    "TupleSpecModel",
    "ListSpecModel",
    "DictSpecModel",
    "OptionalSpecModel",
    "OpaqueSpecModel",
]

FORMAT_VERSION: Final = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)

Number = int | float
T = TypeVar("T")


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
    padding: Literal["right", "left"] | None = None  # left out of a document when None


# Nested specs (interfaces/nested.py) carry a "kind"; a spec without one is a tensor spec,
# so documents written before nested specs existed read as they did.
class TupleSpecModel(_Model):
    kind: Literal["tuple"]
    items: list[SpecModel]


class ListSpecModel(_Model):
    kind: Literal["list"]
    items: list[SpecModel]


class DictSpecModel(_Model):
    kind: Literal["dict"]
    fields: dict[str, SpecModel]
    type: str | None = None


class OptionalSpecModel(_Model):
    kind: Literal["optional"]
    inner: SpecModel | None = None


class OpaqueSpecModel(_Model):
    kind: Literal["opaque"]
    type: str
    note: str = ""


def _spec_kind(v: Any) -> str:
    if isinstance(v, dict):
        kind = v.get("kind", "tensor")
        return kind if isinstance(kind, str) else "?"
    return getattr(v, "kind", "tensor")


SpecModel = Annotated[
    Union[  # noqa: UP007  # pydantic's tagged union
        Annotated[TensorSpecModel, Tag("tensor")],
        Annotated[TupleSpecModel, Tag("tuple")],
        Annotated[ListSpecModel, Tag("list")],
        Annotated[DictSpecModel, Tag("dict")],
        Annotated[OptionalSpecModel, Tag("optional")],
        Annotated[OpaqueSpecModel, Tag("opaque")],
    ],
    Discriminator(_spec_kind),
]
for _m in (TupleSpecModel, ListSpecModel, DictSpecModel, OptionalSpecModel):
    _m.model_rebuild()


class InterfaceModel(_Model):
    format_version: Literal["1"] = FORMAT_VERSION
    kind: Literal["Interface"] = "Interface"
    name: str
    version: str = "1.0"
    description: str = ""
    inputs: dict[str, SpecModel]
    outputs: dict[str, SpecModel]
    # bounds of named dims; left out of a document when empty, so documents without bounds
    # are what they were before bounds existed (format version "1" either way)
    dims: dict[str, tuple[int | None, int | None]] = {}


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
        padding=s.padding,
    )


def _any_spec_model(s) -> Any:
    """The model of a TensorSpec or of a nested spec (read by its class name and fields)."""
    kind = type(s).__name__
    if kind == "TupleSpec":
        return TupleSpecModel(kind="tuple", items=[_any_spec_model(x) for x in s.items])
    if kind == "ListSpec":
        return ListSpecModel(kind="list", items=[_any_spec_model(x) for x in s.items])
    if kind == "DictSpec":
        return DictSpecModel(kind="dict", fields={k: _any_spec_model(x) for k, x in s.fields.items()}, type=s.type)
    if kind == "OptionalSpec":
        return OptionalSpecModel(kind="optional", inner=None if s.inner is None else _any_spec_model(s.inner))
    if kind == "OpaqueSpec":
        return OpaqueSpecModel(kind="opaque", type=s.type, note=s.note)
    return _spec_model(s)


def _drop_new_defaults(d: Any) -> Any:
    """Leave out of a dumped document the tensor-spec fields added since format version "1"
    began (``padding``) where they hold their default, so documents that do not use them are
    exactly what they were before."""
    if isinstance(d, dict):
        if isinstance(d.get("shape"), str) and d.get("padding", 0) is None:
            del d["padding"]
        for v in d.values():
            _drop_new_defaults(v)
    elif isinstance(d, list):
        for v in d:
            _drop_new_defaults(v)
    return d


def _kind_of(obj) -> str:
    return type(obj).__name__


def to_dict(obj) -> dict:
    kind = _kind_of(obj)
    head = {"format_version": FORMAT_VERSION, "kind": kind}
    if kind == "LabelSpace":
        return {**head, **_label_model(obj).model_dump()}
    if kind == "TensorSpec":
        return {**head, **_drop_new_defaults(_spec_model(obj).model_dump())}
    if kind == "Interface":
        out = InterfaceModel(
            name=obj.name,
            version=obj.version,
            description=obj.description,
            inputs={k: _any_spec_model(v) for k, v in obj.inputs.items()},
            outputs={k: _any_spec_model(v) for k, v in obj.outputs.items()},
            dims=dict(obj.dims),
        ).model_dump()
        if not out["dims"]:
            del out["dims"]
        return _drop_new_defaults(out)
    raise TypeError(f"to_dict: cannot serialize {kind}")


def check_document(data: Any, kind: str, supported: tuple, *, kind_required: bool = False) -> None:
    """A JSON document's envelope: a dict of a supported ``format_version``
    and of ``kind`` (which may be left out unless ``kind_required``)."""
    if not isinstance(data, dict):
        raise SpecError(f"{kind}.from_dict: expected a dict, got {type(data).__name__}")
    check_format_version(data, f"{kind}.from_dict", supported)
    if data.get("kind", None if kind_required else kind) != kind:
        raise SpecError(f"{kind}.from_dict: document kind is {data.get('kind')!r}, expected {kind!r}")


def check_format_version(data: dict, where: str, supported: tuple, reader: str = "this modpact") -> None:
    """``FormatVersionError`` (prefixed with ``where``) unless the document's
    ``format_version`` is one of ``supported``, which ``reader`` reads."""
    found = data.get("format_version")
    if found not in supported:
        raise FormatVersionError(
            f"{where}: format_version {found!r} is not supported; {reader} reads {', '.join(map(repr, supported))}"
        )


def read_document(data: Any, kind: str) -> Any:
    """A ``kind`` document (``"LabelSpace"``, ``"TensorSpec"`` or ``"Interface"``)
    checked (version and kind first, then nesting and integer sizes) and
    validated into its model."""
    check_document(data, kind, SUPPORTED_FORMAT_VERSIONS)
    check_tree(data, f"{kind}.from_dict", strings=True)
    found = data["format_version"]
    body = {k: v for k, v in data.items() if k not in ("format_version", "kind")}
    try:
        if kind == "LabelSpace":
            return LabelSpaceModel.model_validate(body)
        if kind == "TensorSpec":
            return _json_ranges(TensorSpecModel, body)
        return InterfaceModel.model_validate({**body, "format_version": found, "kind": kind}, strict=False)
    except ValidationError as e:
        raise SpecError(f"{kind}.from_dict: invalid document: {validation_problems(e)}") from None


def validation_problems(e: ValidationError, limit: int = 5) -> str:
    """A pydantic error as one line: ``inputs.x.shape: Input should be a valid string; ...``."""
    errors = e.errors(include_url=False, include_input=False)
    shown = "; ".join(f"{field_path(_drop_tags(err['loc']))}: {err['msg']}" for err in errors[:limit])
    return shown + (f" (+{len(errors) - limit} more)" if len(errors) > limit else "")


_TAGS = frozenset({"tensor", "tuple", "list", "dict", "optional", "opaque"})


def _drop_tags(loc: tuple) -> tuple:
    """A location without the tags pydantic puts after each place that holds a spec
    (``inputs.x.tensor.shape`` -> ``inputs.x.shape``)."""
    out: list = []
    spec_next = False
    for i, part in enumerate(loc):
        if spec_next and part in _TAGS:
            spec_next = False
            continue
        out.append(part)
        prev = loc[i - 1] if i else None
        spec_next = (prev in ("inputs", "outputs", "fields", "items") and len(out) >= 2) or part == "inner"
    return tuple(out)


def rebuild(kind: str, make: Callable[[], T]) -> T:
    """Build an object from its checked document: a constructor's own
    ``SpecError`` passes through; any other error it raises on a value the
    document models let through is a ``SpecError`` too, not a crash."""
    try:
        return make()
    except ModpactError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        raise SpecError(f"{kind}.from_dict: {type(e).__name__}: {str(e)[:200]}") from None


def from_dict(data: Any, cls) -> Any:
    """``cls.from_dict(data)``: ``cls`` is LabelSpace, TensorSpec or Interface."""
    return cls.from_dict(data)


def _json_ranges(model, body):
    # JSON has lists where tuples were: validate non-strictly for containers only
    return model.model_validate(body, strict=False)


def to_json(obj, indent: int | None = 2) -> str:
    return json.dumps(to_dict(obj), indent=indent)


def from_json(text: str, cls) -> Any:
    return cls.from_dict(parse_json(text, f"{cls.__name__}.from_json", check=False))  # from_dict checks the tree


def load(path: Any, cls) -> Any:
    """``cls.from_json`` of a file: ``LoadError`` when it cannot be read,
    ``SpecError`` (naming the file) when its content is not a valid document."""
    text = read_text(path, cls.__name__)
    try:
        return from_json(text, cls)
    except SpecError as e:  # FormatVersionError stays one
        raise type(e)(f"{path}: {e}") from None


def interface_json_schema() -> dict:
    return InterfaceModel.model_json_schema()
