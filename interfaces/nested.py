"""Specs of values that are not one tensor: tuples, lists, dicts, dataclasses
and ``ModelOutput``-like mappings, optional values and opaque objects.

A spec is a :class:`~modpact.interfaces.spec.TensorSpec` or one of these, to
any depth:

- ``TupleSpec([a, b])`` / ``ListSpec([a, b])``: a tuple (or list) of exactly
  these items (an LSTM's ``(out, (h, c))`` is
  ``TupleSpec([out, TupleSpec([h, c])])``);
- ``DictSpec({"logits": s, ...}, type=None)``: a mapping with exactly these
  keys, or a dataclass with these fields; ``type`` (a qualified name such as
  ``"transformers.modeling_outputs.CausalLMOutputWithPast"``) also requires
  the value to be an instance of that class;
- ``OptionalSpec(s)``: None or a value matching ``s``; ``OptionalSpec(None)``:
  None only;
- ``OpaqueSpec("transformers.cache_utils.DynamicCache")``: an object checked
  by its type alone (a cache, a state object), nothing inside it is read.

Types are recorded by qualified name (``module.QualName``) and compared by
name along the value's class hierarchy (``isinstance`` without importing
anything): nothing is imported or executed to check a value or to load a
spec from JSON.

Each spec has the methods ``TensorSpec`` has (``metadata_problems``,
``value_problems``, ``value_ok``, ``check``, ``has_value_domain``) and names
each problem by its path: ``outputs.state[1]``, ``outputs.out.past_key_values``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

import torch

from modpact.errors import Problem, SpecError

from . import serialize
from .bindings import Bindings
from .spec import TensorSpec, spec_from_model
from .summary import describe

__all__ = [
    "TupleSpec",
    "ListSpec",
    "DictSpec",
    "OptionalSpec",
    "OpaqueSpec",
    "Spec",
    "SPEC_TYPES",
    "type_name",
    "is_instance_of",
    "leaves",
    "leaf_values",
    "has_value_domain",
    "spec_from_any_model",
]

_QUALNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_<>][A-Za-z0-9_<>]*)+")


def type_name(obj: Any) -> str:
    """The qualified name of ``obj``'s class (or of ``obj`` if it is a class): ``module.QualName``."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_instance_of(value: Any, name: str) -> bool:
    """``isinstance(value, <the class named name>)``, by name along the MRO: nothing is imported."""
    return any(f"{c.__module__}.{c.__qualname__}" == name for c in type(value).__mro__)


def _check_type_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or len(name) > 300 or not _QUALNAME.fullmatch(name):
        raise SpecError(
            f"{where}: expected a qualified class name like 'transformers.cache_utils.DynamicCache', got {name!r:.100}"
        )
    return name


def _as_spec(where: str, s: Any) -> Spec:
    if not isinstance(s, SPEC_TYPES):
        raise SpecError(
            f"{where}: expected a spec (TensorSpec, TupleSpec, ListSpec, DictSpec, OptionalSpec or "
            f"OpaqueSpec), got {type(s).__name__}"
        )
    return s


def _values_of(spec: Spec, value: Any, name: str) -> Iterator[tuple[str, TensorSpec, Any]]:
    """(path, leaf spec, value) for each tensor leaf present in ``value`` (structure already checked)."""
    if isinstance(spec, TensorSpec):
        yield name, spec, value
    elif isinstance(spec, _SeqSpec):
        if isinstance(value, (tuple, list)):
            for i, (s, v) in enumerate(zip(spec.items, value)):
                yield from _values_of(s, v, f"{name}[{i}]")
    elif isinstance(spec, DictSpec):
        got = spec.fields_of(value)
        if got is not None:
            for k, s in spec.fields.items():
                if k in got:
                    yield from _values_of(s, got[k], f"{name}.{k}")
    elif isinstance(spec, OptionalSpec):
        if value is not None and spec.inner is not None:
            yield from _values_of(spec.inner, value, name)


class _Nested:
    """What every non-tensor spec shares: checks built on ``metadata_problems``."""

    __slots__ = ()

    def metadata_problems(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        raise NotImplementedError

    @property
    def has_value_domain(self) -> bool:
        return any(s.has_value_domain for _, s in leaves(self, ""))  # type: ignore[arg-type]  # self is a Spec

    def value_problems(self, value: Any, name: str = "x") -> list[Problem]:
        """Value-domain problems of every tensor leaf whose type and dtype fit (slow path)."""
        out: list[Problem] = []
        for path, spec, v in _values_of(self, value, name):  # type: ignore[arg-type]  # self is a Spec
            if isinstance(v, torch.Tensor) and v.dtype in spec.allowed:
                out += spec.value_problems(v, path)
        return out

    def value_ok(self, value: Any) -> torch.Tensor | None:
        """Device-side check of every leaf's value domain (0-dim bool tensor, no sync); None if none."""
        out = None
        for _, spec, v in _values_of(self, value, ""):  # type: ignore[arg-type]  # self is a Spec
            if isinstance(v, torch.Tensor) and v.dtype in spec.allowed and v.device.type != "meta":
                ok = spec.value_ok(v)
                if ok is not None:
                    out = ok if out is None else out & ok.to(out.device)
        return out

    def check(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        own = bindings is None
        bindings = Bindings() if bindings is None else bindings
        problems = self.metadata_problems(value, bindings, name)
        if own:
            problems += bindings.resolve()
        bad = {p.tensor for p in problems if p.field in ("type", "dtype", "count", "missing")}
        problems += [p for p in self.value_problems(value, name) if p.tensor not in bad]
        return problems


class _SeqSpec(_Nested):
    __slots__ = ("items",)
    kind = "tuple"
    pytype: type = tuple

    def __init__(self, items: Sequence[Spec]):
        cls = type(self).__name__
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise SpecError(f"{cls}(items={items!r:.80}): expected a list of specs")
        self.items: tuple[Spec, ...] = tuple(_as_spec(f"{cls}(items[{i}])", s) for i, s in enumerate(items))

    def metadata_problems(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        bindings = Bindings() if bindings is None else bindings
        if not (isinstance(value, (tuple, list)) and isinstance(value, self.pytype)):
            return [Problem(name, "type", f"a {self.kind} of {len(self.items)}", describe(value))]
        if len(value) != len(self.items):
            return [Problem(name, "count", f"{len(self.items)} items", str(len(value)))]
        out: list[Problem] = []
        for i, (s, v) in enumerate(zip(self.items, value)):
            out += s.metadata_problems(v, bindings, f"{name}[{i}]")
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SeqSpec) and type(other) is type(self) and self.items == other.items

    def __hash__(self) -> int:
        return hash((self.kind, self.items))

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{', '.join(map(repr, self.items))}])"


class TupleSpec(_SeqSpec):
    """A tuple (namedtuples and torch's return types included) of exactly these items."""

    __slots__ = ()
    kind = "tuple"
    pytype = tuple


class ListSpec(_SeqSpec):
    """A list of exactly these items."""

    __slots__ = ()
    kind = "list"
    pytype = list


class DictSpec(_Nested):
    """A mapping with exactly these keys (string keys), or a dataclass with these
    fields. With ``type`` (a qualified class name), the value must also be an
    instance of that class (compared by name along its MRO).

    A mapping is read by its items; a ``ModelOutput`` is a mapping whose keys
    are its fields that are not None. A dataclass that is not a mapping is read
    by its fields (a None field then needs an ``OptionalSpec``)."""

    __slots__ = ("fields", "type")

    def __init__(self, fields: Mapping[str, Spec], type: str | None = None):
        if not isinstance(fields, Mapping):
            raise SpecError(f"DictSpec(fields={fields!r:.80}): expected a dict of key -> spec")
        out = {}
        for k, s in fields.items():
            if not isinstance(k, str) or not k:
                raise SpecError(f"DictSpec(fields=...): key {k!r:.60} is not a non-empty string")
            out[k] = _as_spec(f"DictSpec(fields[{k!r}])", s)
        self.fields: dict[str, Spec] = out
        self.type = None if type is None else _check_type_name("DictSpec(type=...)", type)

    def fields_of(self, value: Any) -> dict[str, Any] | None:
        """The value's keys (a mapping) or fields (a dataclass) with their values; None for anything else."""
        if isinstance(value, Mapping):
            return dict(value.items())
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return None

    def metadata_problems(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        bindings = Bindings() if bindings is None else bindings
        want = f"a {self.type}" if self.type else "a mapping or dataclass"
        got = self.fields_of(value)
        if got is None or (self.type is not None and not is_instance_of(value, self.type)):
            return [Problem(name, "type", want, f"{type_name(value)} {describe(value)}")]
        out: list[Problem] = []
        for k, s in self.fields.items():
            if k not in got:
                out.append(Problem(f"{name}.{k}", "missing", _what(s), "nothing"))
            else:
                out += s.metadata_problems(got[k], bindings, f"{name}.{k}")
        for k in got:
            if k not in self.fields:
                out.append(Problem(f"{name}.{k}", "unexpected", "no such key", describe(got[k])))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DictSpec) and (self.fields, self.type) == (other.fields, other.type)

    def __hash__(self) -> int:
        return hash((tuple(self.fields.items()), self.type))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.fields.items())
        return f"DictSpec({{{inner}}}" + (f", type={self.type!r})" if self.type else ")")


class OptionalSpec(_Nested):
    """None, or a value matching ``inner``; ``OptionalSpec(None)`` allows None only."""

    __slots__ = ("inner",)

    def __init__(self, inner: Spec | None):
        self.inner = None if inner is None else _as_spec("OptionalSpec(inner)", inner)
        if isinstance(self.inner, OptionalSpec):
            raise SpecError("OptionalSpec(OptionalSpec(...)): an optional value is optional once; drop one")

    def metadata_problems(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        if value is None:
            return []
        if self.inner is None:
            return [Problem(name, "type", "None", describe(value))]
        return self.inner.metadata_problems(value, Bindings() if bindings is None else bindings, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptionalSpec) and self.inner == other.inner

    def __hash__(self) -> int:
        return hash(("optional", self.inner))

    def __repr__(self) -> str:
        return f"OptionalSpec({self.inner!r})"


class OpaqueSpec(_Nested):
    """An object checked by its type alone (``type``: a qualified class name,
    compared by name along the value's MRO). ``note`` says why it is opaque
    (``infer_interface`` writes what it could not describe there)."""

    __slots__ = ("type", "note")

    def __init__(self, type: str, note: str = ""):
        self.type = _check_type_name("OpaqueSpec(type=...)", type)
        if not isinstance(note, str):
            raise SpecError(f"OpaqueSpec(note={note!r:.80}): expected a string")
        self.note = note

    def metadata_problems(self, value: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        if is_instance_of(value, self.type):
            return []
        return [Problem(name, "type", f"a {self.type}", f"{type_name(value)} {describe(value)}")]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpaqueSpec) and (self.type, self.note) == (other.type, other.note)

    def __hash__(self) -> int:
        return hash(("opaque", self.type, self.note))

    def __repr__(self) -> str:
        return f"OpaqueSpec({self.type!r}" + (f", note={self.note!r})" if self.note else ")")


Spec = Union[TensorSpec, TupleSpec, ListSpec, DictSpec, OptionalSpec, OpaqueSpec]  # noqa: UP007  # a runtime alias
SPEC_TYPES = (TensorSpec, TupleSpec, ListSpec, DictSpec, OptionalSpec, OpaqueSpec)


def _what(s: Spec) -> str:
    if isinstance(s, TensorSpec):
        return "a tensor"
    if isinstance(s, OptionalSpec):
        return "a value or None"
    if isinstance(s, OpaqueSpec):
        return f"a {s.type}"
    if isinstance(s, DictSpec):
        return f"a {s.type}" if s.type else "a mapping"
    return f"a {s.kind}"


def leaves(spec: Spec, prefix: str) -> list[tuple[str, TensorSpec]]:
    """Every TensorSpec inside ``spec`` with its path (``prefix[1][0]``, ``prefix.logits``)."""
    out: list[tuple[str, TensorSpec]] = []
    stack: list[tuple[str, Any]] = [(prefix, spec)]
    while stack:
        path, s = stack.pop()
        if isinstance(s, TensorSpec):
            out.append((path, s))
        elif isinstance(s, _SeqSpec):
            stack += [(f"{path}[{i}]", x) for i, x in reversed(list(enumerate(s.items)))]
        elif isinstance(s, DictSpec):
            stack += [(f"{path}.{k}", x) for k, x in reversed(list(s.fields.items()))]
        elif isinstance(s, OptionalSpec) and s.inner is not None:
            stack.append((path, s.inner))
    return out


def leaf_values(specs: Mapping[str, Spec], values: Mapping[str, Any]) -> list[tuple[str, TensorSpec, Any]]:
    """(path, leaf spec, value) for each tensor leaf of ``values`` named after ``specs``
    (``hx[0]``, ``out.logits``); a top-level TensorSpec keeps its name."""
    out: list[tuple[str, TensorSpec, Any]] = []
    for k, s in specs.items():
        if k in values:
            out += _values_of(s, values[k], k)
    return out


def has_value_domain(spec: Spec) -> bool:
    return bool(spec.has_value_domain)


def spec_from_any_model(m: Any) -> Spec:
    """A spec from its validated JSON model (``serialize.SpecModel``), to any depth."""
    if isinstance(m, serialize.TensorSpecModel):
        return spec_from_model(m)
    if isinstance(m, serialize.TupleSpecModel):
        return TupleSpec([spec_from_any_model(x) for x in m.items])
    if isinstance(m, serialize.ListSpecModel):
        return ListSpec([spec_from_any_model(x) for x in m.items])
    if isinstance(m, serialize.DictSpecModel):
        return DictSpec({k: spec_from_any_model(x) for k, x in m.fields.items()}, type=m.type)
    if isinstance(m, serialize.OptionalSpecModel):
        return OptionalSpec(None if m.inner is None else spec_from_any_model(m.inner))
    if isinstance(m, serialize.OpaqueSpecModel):
        return OpaqueSpec(m.type, note=m.note)
    raise SpecError(f"not a spec model: {type(m).__name__}")
