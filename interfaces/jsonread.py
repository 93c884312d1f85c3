"""Reading JSON documents from users' files, which may be broken or hostile.

Every document modpact loads (interfaces, inferred contracts, diagnosis
reports) goes through ``parse_json`` (text) or ``check_tree`` (data already
parsed), so each fails the same way: a ``SpecError`` that names the problem
and where it is (``violations[3].evidence.x: nested more than 64 levels
deep``), never a ``ValueError``, ``RecursionError`` or ``OverflowError``
from the layers below. ``read_text`` reads a file and raises ``LoadError``
when it cannot. Nothing is executed: the text is parsed by ``json.loads``
and the result walked without recursion.

The bounds: at most ``MAX_DEPTH`` levels of nesting, and integers of at most
64 bits, signed or unsigned (``abs(n) < 2**64``): a step, a count, an index
or a value of an integer tensor; nothing larger is meaningful, and larger
ones overflow where they meet floats or tensors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from modpact.errors import LoadError, SpecError

__all__ = ["MAX_DEPTH", "MAX_INT", "parse_json", "check_tree", "read_text", "field_path"]

MAX_DEPTH = 64  # a report nests about 5 levels, an inferred contract's bounds 3 + the tensor's dims
MAX_INT = 2**64 - 1  # uint64's largest; int64's smallest is within -MAX_INT


def field_path(parts: tuple | list) -> str:
    """``("violations", 0, "step")`` as ``violations[0].step`` (``<root>`` when empty)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out if len(out) <= 120 else f"{out[:60]}...{out[-50:]}" if out else "<root>"


def parse_json(text: Any, what: str, *, invalid: str | None = None, check: bool = True) -> Any:
    """``json.loads(text)``, then ``check_tree`` (unless ``check`` is false:
    for a caller that checks the data itself). ``what`` starts each message
    (``"Interface.from_json"``); ``invalid`` replaces the start of the message
    for text that is not JSON (default: ``"<what>: not valid JSON"``)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(f"{what}: not UTF-8 text (byte 0x{text[e.start]:02x} at offset {e.start})") from None
    if not isinstance(text, str):
        raise SpecError(f"{what}: expected JSON text (str or bytes), got {type(text).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        lead = invalid or f"{what}: not valid JSON"
        raise SpecError(f"{lead}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise SpecError(f"{what}: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # an integer of more than sys.get_int_max_str_digits() digits
        raise SpecError(f"{what}: {_first_sentence(e)}") from None
    if check:
        check_tree(data, what, strings=bool(_SURROGATE.search(text)) or "\\ud" in text or "\\uD" in text)
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_tree(data: Any, what: str, *, strings: bool = False) -> None:
    """Walk parsed JSON (dicts, lists, scalars) without recursion: at most
    ``MAX_DEPTH`` levels deep, integers of at most 64 bits, keys strings;
    with ``strings``, every string valid Unicode (no lone surrogate, which
    no UTF-8 file can hold: ``"\\ud800"`` in JSON text)."""
    if not isinstance(data, (dict, list, tuple)):
        _check_int(data, what, None)
        _check_str(data, what, None, strings)
        return
    # a frame is (node, depth, (parent frame, key)): the path is rebuilt only for a message
    stack: list[tuple[Any, int, Any]] = [(data, 0, None)]
    while stack:
        frame = stack.pop()
        node, depth, _ = frame
        if depth >= MAX_DEPTH:
            raise SpecError(f"{what}: {field_path(_path(frame))}: nested more than {MAX_DEPTH} levels deep")
        is_dict = isinstance(node, dict)
        for k, v in node.items() if is_dict else enumerate(node):
            if is_dict and type(k) is not str:
                raise SpecError(f"{what}: {field_path(_path(frame))}: key {k!r} is not a string")
            if strings:
                _check_str(k, what, (frame, k), True)
            t = type(v)
            if t is dict or t is list or t is tuple or (t not in _SCALARS and isinstance(v, (dict, list, tuple))):
                stack.append((v, depth + 1, (frame, k)))
            elif t is int and not -MAX_INT <= v <= MAX_INT:
                _check_int(v, what, (frame, k))
            elif strings and t is str:
                _check_str(v, what, (frame, k), True)


_SCALARS = (str, float, int, bool, type(None))


def _check_int(v: Any, what: str, at: Any) -> None:
    if type(v) is int and not -MAX_INT <= v <= MAX_INT:
        path = field_path(_path((None, 0, at))) if at is not None else "<root>"
        raise SpecError(f"{what}: {path}: integer {_int_text(v)} does not fit in 64 bits")


def _check_str(v: Any, what: str, at: Any, strings: bool) -> None:
    if strings and isinstance(v, str) and _SURROGATE.search(v):
        path = field_path(_path((None, 0, at))) if at is not None else "<root>"
        raise SpecError(f"{what}: {path}: a string holds a lone surrogate, which is not Unicode text")


def _path(frame: Any) -> list:
    parts = []
    link = frame[2]
    while link is not None:
        parent, key = link
        parts.append(key)
        link = parent[2]
    return parts[::-1]


def read_text(path: Any, what: str) -> str:
    """The text of the file at ``path``; ``LoadError`` naming the file and
    the reason when it cannot be read as UTF-8."""
    try:
        p = Path(path)
    except TypeError:
        raise LoadError(f"{what}: expected a file path, got {type(path).__name__}") from None
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise LoadError(f"{p} is a directory, not a {what} file") from None
    except UnicodeDecodeError as e:
        raise LoadError(f"{p}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise LoadError(f"cannot read {p}: {reason}") from None


def _int_text(n: int) -> str:
    if n.bit_length() <= 100:
        return str(n)
    return f"of about {int(n.bit_length() * 0.30103) + 1} digits"  # str() of a huge int is slow or refused


def _first_sentence(e: Exception) -> str:
    text = str(e)
    if "integer string conversion" in text:
        return "a number has more digits than Python converts (sys.get_int_max_str_digits())"
    return text.split(";")[0]
