"""The document a ported artifact carries: the interface and the contracts
that travel with an exported program, an ONNX model or a checkpoint.

One JSON document, versioned like every modpact document::

    {"format_version": "1", "kind": "PortedModule", "artifact": "torch.export",
     "modpact": "0.1.0", "interface": {...Interface.to_dict()...},
     "requires": [...Condition.to_dict()...], "ensures": [...],
     "not_carried": ["<text of a condition that holds Python code>"], "extra": {...}}

Conditions that hold Python code (a lambda, a module) cannot travel: they are
left out and named in ``not_carried``, which the loader exposes, so that no
reader takes a missing check for a passing one. Reading checks the version
first (``FormatVersionError`` naming the file), then the fields
(``extra="forbid"``), then rebuilds the interface and the conditions through
their constructors; nothing in the file is executed.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from modpact._version import __version__
from modpact.contracts import Condition, get_contract, get_guard
from modpact.errors import ExtraMissing, SpecError
from modpact.interfaces import Interface
from modpact.interfaces.jsonread import parse_json
from modpact.interfaces.serialize import check_format_version, validation_problems

__all__ = [
    "PORT_FORMAT_VERSION",
    "EXPORT_HINT",
    "Artifact",
    "PortDocument",
    "document_for",
    "read_document",
    "require_extra",
]

PORT_FORMAT_VERSION: Final = "1"
SUPPORTED: Final = ("1",)
EXPORT_HINT: Final = 'pip install "modpact[export]"'
#: the name of the document inside an artifact (extra file, metadata key)
DOCUMENT_KEY: Final = "modpact.json"

Artifact = Literal["torch.export", "onnx", "checkpoint"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PortModel(_Model):
    format_version: Literal["1"]
    kind: Literal["PortedModule"]
    artifact: Artifact
    modpact: str
    interface: dict[str, Any]
    requires: list[dict[str, Any]] = []
    ensures: list[dict[str, Any]] = []
    not_carried: list[str] = []
    extra: dict[str, Any] = {}


@dataclass
class PortDocument:
    """What travels with a ported artifact, rebuilt."""

    artifact: Artifact
    interface: Interface
    requires: list[Condition] = field(default_factory=list)
    ensures: list[Condition] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)  # conditions that hold Python code: not checked
    extra: dict[str, Any] = field(default_factory=dict)
    modpact: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": PORT_FORMAT_VERSION,
            "kind": "PortedModule",
            "artifact": self.artifact,
            "modpact": self.modpact,
            "interface": json.loads(self.interface.to_json()),
            "requires": [c.to_dict() for c in self.requires],
            "ensures": [c.to_dict() for c in self.ensures],
            "not_carried": list(self.not_carried),
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def document_for(
    module: Any, interface: Interface | None, artifact: Artifact, extra: dict[str, Any] | None = None
) -> PortDocument:
    """The document of ``module``: ``interface`` (default: its guard's) and the
    guard's conditions; those that hold Python code go to ``not_carried``."""
    g = get_guard(module) if isinstance(module, nn.Module) else None
    g = g or get_contract(type(module).forward if isinstance(module, nn.Module) else module)
    iface = interface if interface is not None else getattr(g, "interface", None)
    if not isinstance(iface, Interface):
        raise SpecError(
            f"{artifact}: {type(module).__name__} has no interface: pass interface= or guard it "
            "(mp.guard(module, interface=...))"
        )
    doc = PortDocument(artifact, iface, extra=dict(extra or {}))
    for what in ("requires", "ensures"):
        for c in getattr(g, what, ()) if g is not None else ():
            if c.serializable:
                getattr(doc, what).append(c)
            else:
                doc.not_carried.append(f"{what}({c.text})")
    return doc


def read_document(text: Any, source: str, artifact: Artifact) -> PortDocument:
    """The document in ``text`` (read from ``source``, a file name shown in
    every error): ``FormatVersionError`` for another format version,
    ``SpecError`` for anything malformed, each naming ``source``."""
    where = f"{source}: modpact metadata"
    data = parse_json(text, where)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a JSON object, got {type(data).__name__}")
    check_format_version(data, where, SUPPORTED, f"this modpact ({__version__})")
    try:
        m = PortModel.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{where}: invalid document: {validation_problems(e)}") from None
    if m.artifact != artifact:
        raise SpecError(f"{where}: the document describes a {m.artifact!r} artifact, not a {artifact!r} one")
    try:
        iface = Interface.from_dict(m.interface)
        requires = [Condition.from_dict(c) for c in m.requires]
        ensures = [Condition.from_dict(c) for c in m.ensures]
    except SpecError as e:
        raise type(e)(f"{where}: {e}") from None
    return PortDocument(artifact, iface, requires, ensures, list(m.not_carried), dict(m.extra), m.modpact)


def require_extra(module: str, what: str) -> Any:
    """Import ``module`` (onnx, onnxruntime, safetensors, onnxscript) or raise
    ``ExtraMissing`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExtraMissing(f"{what} needs {module}, which is not installed; run: {EXPORT_HINT}") from None
