"""What ``torch.export.load`` would unpickle from a ``.pt2`` archive, checked
before it is loaded.

``torch.export.load`` reads most of an archive as JSON and raw tensor bytes,
but unpickles some entries with Python's full unpickler: weights and tensor
constants saved with ``use_pickle`` (``torch.load(..., weights_only=False)``),
custom and opaque objects among the constants (``pickle.loads``), and, when
torch's weights-only unpickler refuses them, the sample inputs and the legacy
``.pt`` files (a fallback to ``weights_only=False``). A crafted archive runs
code there.

``unsafe_entries`` finds every such entry and tries it with torch's
weights-only unpickler (``torch.load(..., weights_only=True)``: tensors,
containers and an allowlist of torch types; no other Python object is
built and no other callable is called). An entry it refuses, and every
pickled Python object, is named as a problem; ``load_exported`` refuses the
file with them listed. When none is found, the full unpickler that torch
then uses only reads streams that the weights-only one accepted.

The archive's layout is torch's (``torch.export.pt2_archive``); the names
are taken from its constants module where it has them.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import zipfile
from pathlib import Path

import torch

__all__ = ["unsafe_entries"]

# the archive's layout in torch 2.11-2.13; ``_layout`` reads torch's own names when the archive is read
# (importing torch.export costs seconds and pulls in sympy, so not at import)
_WEIGHTS_DIR, _CONSTANTS_DIR = "data/weights/", "data/constants/"
_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")
_DATA = "data/"
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f]")


def unsafe_entries(path: str | Path) -> list[str]:
    """Every entry of the archive at ``path`` that ``torch.export.load`` would
    unpickle and torch's weights-only unpickler refuses, or that is a pickled
    Python object; ``[]`` when there is none. Raises ``zipfile.BadZipFile`` /
    ``OSError`` when the file is not a readable zip (the caller names the file)."""
    weights_dir, constants_dir, object_prefixes = _layout()
    problems: list[str] = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        raw: set[str] = set()  # entries torch reads as raw bytes, never unpickled
        pickled: list[tuple[str, str]] = []  # (entry, what it is)
        for name in names:
            rel = _relative(name)
            if rel is None or not rel.endswith(".json"):
                continue
            folder = posixpath.dirname(rel) + "/"
            if folder not in (weights_dir, constants_dir):
                continue
            try:
                config = json.loads(z.read(name)).get("config", {})
            except (ValueError, AttributeError, UnicodeDecodeError):
                problems.append(f"{name}: not a weights/constants table torch.export.load can read")
                continue
            if not isinstance(config, dict):
                problems.append(f"{name}: 'config' is not a table")
                continue
            root = name[: len(name) - len(rel)]
            for fqn, meta in config.items():
                file = meta.get("path_name") if isinstance(meta, dict) else None
                if not isinstance(file, str):
                    problems.append(f"{name}: entry {fqn!r} has no path_name")
                    continue
                entry = root + folder + file
                if folder == constants_dir and file.startswith(object_prefixes):
                    problems.append(
                        f"{entry}: a pickled Python object (constant {fqn!r}); torch.export.load unpickles it "
                        "with Python's full unpickler, which can run code"
                    )
                elif meta.get("use_pickle"):
                    pickled.append((entry, f"{'weight' if folder == weights_dir else 'constant'} {fqn!r}"))
                else:
                    raw.add(entry)
        for name in names:  # sample inputs and the legacy weights/constants files: torch.save output
            rel = _relative(name)
            if rel is not None and rel.startswith(_DATA) and rel.endswith(".pt") and name not in raw:
                pickled.append((name, "a torch.save file"))
        for entry, what in pickled:
            if entry not in names:
                problems.append(f"{entry}: missing ({what})")
                continue
            try:
                torch.load(io.BytesIO(z.read(entry)), weights_only=True, map_location="cpu")
            except Exception as e:  # the weights-only unpickler's refusal, whatever its type
                problems.append(
                    f"{entry}: {what} that torch's weights-only unpickler refuses ({_reason(e)}); "
                    "torch.export.load would unpickle it with Python's full unpickler, which can run code"
                )
    return problems


def _layout() -> tuple[str, str, tuple[str, ...]]:
    """torch's names for the weights and constants folders and the pickled-object prefixes."""
    try:
        from torch.export.pt2_archive import constants as c
    except ImportError:  # pragma: no cover - a torch without the module: the layout above
        return _WEIGHTS_DIR, _CONSTANTS_DIR, _OBJECT_PREFIXES
    prefixes = (
        getattr(c, "CUSTOM_OBJ_FILENAME_PREFIX", _OBJECT_PREFIXES[0]),
        getattr(c, "OPAQUE_OBJ_FILENAME_PREFIX", _OBJECT_PREFIXES[1]),
    )
    return getattr(c, "WEIGHTS_DIR", _WEIGHTS_DIR), getattr(c, "CONSTANTS_DIR", _CONSTANTS_DIR), prefixes


def _reason(e: Exception) -> str:
    """The line of torch's refusal that says why (``Unsupported global: GLOBAL os.system``), without
    its terminal escapes."""
    lines = [_ESCAPES.sub("", ln).strip() for ln in str(e).splitlines()]
    why = next((ln for ln in lines if "WeightsUnpickler error:" in ln), next((ln for ln in lines if ln), ""))
    why = why.split("WeightsUnpickler error:", 1)[-1].strip()
    why = why.split(". ", 1)[0].rstrip(".")  # the first sentence; torch's advice follows
    return why[:200] or type(e).__name__


def _relative(name: str) -> str | None:
    """``a/data/weights/weight_0`` -> ``data/weights/weight_0`` (the archive's root folder dropped)."""
    _, sep, rest = name.partition("/")
    return rest if sep else None
