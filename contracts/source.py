"""Where a contract was declared, and a readable text for a Python callable."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_PKG_DIR)  # the folder of the top-level folders (installed: site-packages/modpact)
#: modpact's own code that builds contracts: contracts/, the packages that moved out of it
#: (validation/, inference/), and the top package modpact/ (in the source tree)
_SKIP = (
    _PKG_DIR,
    os.path.join(_ROOT, "validation", ""),
    os.path.join(_ROOT, "inference", ""),
    _ROOT + os.sep + "modpact" + os.sep,
)


def user_site(depth: int = 2) -> str | None:
    """``file:line`` of the first frame outside modpact's own contracts code
    (contracts, validation, inference)."""
    f: FrameType | None
    try:
        f = sys._getframe(depth)
    except ValueError:  # pragma: no cover
        return None
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_SKIP) and "contextlib" not in fn:
            return f"{_short(fn)}:{f.f_lineno}"
        f = f.f_back
    return None


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # different drive (Windows)
        return path
    return rel if not rel.startswith("..") else path


def code_site(fn: Callable[..., Any]) -> str | None:
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return f"{_short(os.path.abspath(code.co_filename))}:{code.co_firstlineno}"


def callable_text(fn: Callable[..., Any]) -> str:
    """The source of a lambda (just the lambda), else the callable's name."""
    name = getattr(fn, "__name__", None)
    if name == "<lambda>":
        text = _lambda_source(fn)
        if text:
            return text
        return "<lambda>"
    if name:
        return name
    return type(fn).__name__


def _lambda_source(fn: Callable[..., Any]) -> str | None:
    try:
        lines, start = inspect.findsource(fn)
    except (OSError, TypeError):
        return None
    code = fn.__code__
    first = code.co_firstlineno - 1
    if not (0 <= first < len(lines)):
        return None
    line = lines[first]
    # The body's first column tells which lambda on the line this is.
    body_col = None
    if sys.version_info >= (3, 11):  # co_positions is new in 3.11
        for lineno, _end, col, _endcol in code.co_positions():
            if lineno == code.co_firstlineno and col is not None and _endcol is not None and _endcol > col:
                body_col = col if body_col is None else min(body_col, col)
    at = line.rfind("lambda", 0, body_col) if body_col else line.find("lambda")
    if at < 0:
        return None
    text = "".join(lines[first : first + 8])[at:]
    return _cut_expression(text, _params_end(text))


def _params_end(text: str) -> int:
    """Index just after the ':' that ends a lambda's parameter list."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return i + 1
    return 0


def _cut_expression(text: str, start: int = 0) -> str:
    depth = 0
    quote = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            break
        elif ch == "\n" and depth == 0:
            break
        elif ch == "#" and depth == 0:
            break
        i += 1
    out = " ".join(text[:i].split())
    return out if len(out) <= 200 else out[:197] + "..."
