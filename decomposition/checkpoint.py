"""Checkpoints that carry their interface: a module's weights in a
safetensors file, the interface and contracts in its metadata (the key
``modpact.json``). Loading reads tensors only (safetensors holds no pickle)
and refuses, with every reason listed, a module whose parameters or
interface differ from the checkpoint's.

    save_checkpoint(stage, "stage.safetensors")            # interface: the guard's, or interface=
    load_checkpoint(stage2, "stage.safetensors")           # PortError listing every difference
    read_checkpoint_document("stage.safetensors")          # the interface and contracts alone

Needs ``modpact[export]`` (safetensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from modpact.contracts import get_guard
from modpact.errors import LoadError, PortError, SpecError
from modpact.interfaces import Interface, TensorSpec
from modpact.interfaces.summary import describe

from .portdoc import DOCUMENT_KEY, PortDocument, document_for, read_document, require_extra

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_document", "interface_differences"]


def save_checkpoint(module: nn.Module, path: str | Path, interface: Interface | None = None) -> Path:
    """Write ``module``'s parameters and buffers (tied ones once) to ``path``
    with its interface (``interface``, else its guard's) and serializable
    contracts in the metadata."""
    st = require_extra("safetensors.torch", "save_checkpoint")
    if not isinstance(module, nn.Module):
        raise SpecError(f"save_checkpoint: expected an nn.Module, got {describe(module)}")
    doc = document_for(module, interface, "checkpoint")
    doc.extra["tensors"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in _state(module).items()}
    p = Path(path)
    try:
        st.save_model(module, str(p), metadata={DOCUMENT_KEY: doc.to_json()})
    except OSError as e:
        raise LoadError(f"cannot write {p}: {e.strerror or e}") from None
    return p


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def read_checkpoint_document(path: str | Path) -> PortDocument:
    """The interface and contracts a checkpoint carries: ``LoadError`` naming
    the file when it is no safetensors file or carries no modpact document,
    ``FormatVersionError`` / ``SpecError`` naming it for another version or a
    malformed document."""
    require_extra("safetensors", "read_checkpoint_document")
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {p}" if not p.exists() else f"{p} is not a file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors' SafetensorError and the OS's: name the file, never a traceback
        raise LoadError(f"{p}: not a safetensors file ({str(e).splitlines()[0][:200]})") from None
    if DOCUMENT_KEY not in meta:
        raise LoadError(f"{p}: a safetensors file without a modpact interface (no {DOCUMENT_KEY} in its metadata)")
    return read_document(meta[DOCUMENT_KEY], str(p), "checkpoint")


def load_checkpoint(module: nn.Module, path: str | Path, interface: Interface | None = None) -> PortDocument:
    """Load the weights at ``path`` into ``module`` after checking that the
    module's interface (``interface``, else its guard's, else none to compare)
    equals the checkpoint's and that every parameter and buffer has the
    checkpoint's name, shape and dtype. ``PortError`` lists every difference;
    nothing is loaded then. Returns the checkpoint's document."""
    st = require_extra("safetensors.torch", "load_checkpoint")
    if not isinstance(module, nn.Module):
        raise SpecError(f"load_checkpoint: expected an nn.Module, got {describe(module)}")
    doc = read_checkpoint_document(path)
    p = Path(path)
    mine = interface if interface is not None else getattr(get_guard(module), "interface", None)
    reasons = [] if mine is None else interface_differences(doc.interface, mine)
    reasons += _tensor_differences(module, p, st)
    if reasons:
        raise PortError(f"load_checkpoint: {p} does not fit {type(module).__name__}", reasons)
    try:
        st.load_model(module, str(p), strict=True)
    except Exception as e:  # a file changed since it was checked, or torn: name it
        raise LoadError(f"{p}: cannot load the weights ({str(e).splitlines()[0][:200]})") from None
    return doc


def _tensor_differences(module: nn.Module, p: Path, st: Any) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            saved = {k: f.get_slice(k) for k in f.keys()}
            shapes = {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in saved.items()}
    except Exception as e:
        raise LoadError(f"{p}: not a safetensors file ({str(e).splitlines()[0][:200]})") from None
    state = _state(module)
    reasons = []
    tied = _tied_to_saved(state, shapes)
    for k, t in state.items():
        if k not in shapes:
            if k not in tied:
                reasons.append(f"{k}: in the module ({describe(t)}), not in the checkpoint")
            continue
        shape, dtype = shapes[k]
        if tuple(t.shape) != shape:
            reasons.append(f"{k}: shape in the checkpoint {list(shape)}, in the module {list(t.shape)}")
        if _st_dtype(t.dtype) != dtype:
            reasons.append(f"{k}: dtype in the checkpoint {dtype}, in the module {_st_dtype(t.dtype)}")
    reasons += [f"{k}: in the checkpoint, not in the module" for k in shapes if k not in state]
    return reasons


def _tied_to_saved(state: dict[str, torch.Tensor], shapes: dict[str, Any]) -> set[str]:
    """Names of the module's tensors that share storage with a saved one (saved once)."""
    by_storage: dict[Any, list[str]] = {}
    for k, t in state.items():
        if t.device.type != "meta" and t.numel():
            by_storage.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)), []).append(k)
    out: set[str] = set()
    for names in by_storage.values():
        if any(n in shapes for n in names):
            out.update(n for n in names if n not in shapes)
    return out


_ST_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _st_dtype(dt: torch.dtype) -> str:
    return _ST_DTYPES.get(dt, str(dt).replace("torch.", ""))


def interface_differences(saved: Interface, mine: Interface) -> list[str]:
    """Every field in which two interfaces differ, as ``inputs.x: shape: the
    checkpoint says 'batch 64', the module 'batch 32'``."""
    out = []
    for field in ("name", "version"):
        a, b = getattr(saved, field), getattr(mine, field)
        if a != b:
            out.append(f"interface {field}: the checkpoint says {a!r}, the module {b!r}")
    for side in ("inputs", "outputs"):
        sa, sb = getattr(saved, side), getattr(mine, side)
        out += [f"{side}.{k}: in the checkpoint's interface, not in the module's" for k in sa if k not in sb]
        out += [f"{side}.{k}: in the module's interface, not in the checkpoint's" for k in sb if k not in sa]
        for k in sa:
            if k in sb and sa[k] != sb[k]:
                out += [f"{side}.{k}: {r}" for r in _spec_differences(sa[k], sb[k])]
    return out


def _spec_differences(a: TensorSpec, b: TensorSpec) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    out = [
        f"{f}: the checkpoint says {_shown(da.get(f))}, the module {_shown(db.get(f))}"
        for f in da
        if f not in ("format_version", "kind") and da.get(f) != db.get(f)
    ]
    return out or ["the specs differ"]


def _shown(v: Any) -> str:
    if isinstance(v, dict) and "labels" in v and "name" in v:
        return f"label space {v['name']!r} ({len(v['labels'])} labels)"
    return repr(v)
