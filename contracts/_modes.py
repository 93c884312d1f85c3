"""Modes (raise / warn / record / off), the global switch and the record store.

The global default mode starts from the environment variable
``MODPACT_CONTRACTS`` (read at import) and can be changed with
:func:`set_mode`. A value that is not a mode does not stop the import (so
``modpact --help`` and unrelated code still run): it raises ``SpecError``
where the variable is used, in ``guard``, ``contract`` and ``get_mode``, and
checks run in ``raise`` mode meanwhile. ``disabled()`` skips every check inside a ``with`` block
(context-local, so threads and asyncio tasks do not leak into each other).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal, TypeGuard

from modpact.errors import ContractViolation, SpecError

from .context import ContextFlag

__all__ = [
    "ContractMode",
    "MODES",
    "ContractWarning",
    "set_mode",
    "get_mode",
    "disabled",
    "is_disabled",
    "recorded",
    "recorded_total",
    "clear_recorded",
    "RECORD_LIMIT",
]

#: What a contract does on a violation: raise it, warn with it, record it, or not check at all.
ContractMode = Literal["raise", "warn", "record", "off"]
MODES: tuple[ContractMode, ...] = ("raise", "warn", "record", "off")


class ContractWarning(UserWarning):
    """Issued for a violation in ``warn`` mode; the message is the violation's."""


def is_mode(value: object) -> TypeGuard[ContractMode]:
    return value in MODES


def check_mode(mode: object, what: str = "mode") -> ContractMode | None:
    """``mode`` itself when it is a mode or None; a SpecError naming it otherwise."""
    if mode is None or is_mode(mode):
        return mode
    raise SpecError(f"Expected {what} to be one of {', '.join(map(repr, MODES))} or None, got {mode!r}")


def _mode_from_env() -> ContractMode:
    raw = os.environ.get("MODPACT_CONTRACTS", "").strip().lower()
    if not raw:
        return "raise"
    if raw in ("0", "false", "no", "disabled"):
        return "off"
    if is_mode(raw):
        return raw
    raise SpecError(
        f"MODPACT_CONTRACTS={raw!r} is not a mode; expected one of {', '.join(MODES)} (or 0/false to switch off)"
    )


def _initial_mode() -> ContractMode:
    try:
        return _mode_from_env()
    except SpecError:
        _ENV_ERROR[0] = True
        return "raise"  # the strictest; guard(), contract() and get_mode() raise the error itself


# A one-element list is faster to read on the hot path than a contextvar.
_ENV_ERROR = [False]  # MODPACT_CONTRACTS held no mode at import, and set_mode() has not been called since
_GLOBAL_MODE: list[ContractMode] = [_initial_mode()]
_DISABLED: ContextFlag[bool] = ContextFlag("modpact_contracts_disabled", False)
_RECORDED: list[ContractViolation] = []


def set_mode(mode: ContractMode) -> ContractMode:
    """Set the global default mode (used by guards and decorators whose own
    mode is None); returns the previous one. ``"off"`` here skips checks at
    call time; to remove the wrappers entirely, decorate with ``mode="off"``
    or set ``MODPACT_CONTRACTS=off`` before import."""
    if mode is None:
        raise SpecError("Expected mode to be one of 'raise', 'warn', 'record', 'off', got None")
    check_mode(mode)
    previous = _GLOBAL_MODE[0]
    _GLOBAL_MODE[0] = mode
    _ENV_ERROR[0] = False
    return previous


def get_mode() -> ContractMode:
    """The global default mode (``SpecError`` if ``MODPACT_CONTRACTS`` held
    no mode at import and ``set_mode`` has not been called since)."""
    if _ENV_ERROR[0]:
        _mode_from_env()  # raises, naming the value
    return _GLOBAL_MODE[0]


def is_disabled() -> bool:
    """True inside a ``disabled()`` block."""
    return _DISABLED.get()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Skip every contract check inside the block (context-local)."""
    token = _DISABLED.set(True)
    try:
        yield
    finally:
        _DISABLED.reset(token)


RECORD_LIMIT = 10_000  # violations kept by record mode, in all and per guard; later ones are counted only
_COUNTED = [0]  # violations recorded since the last clear, kept or not


def recorded() -> list[ContractViolation]:
    """Violations collected in ``record`` mode since the last ``clear_recorded()``
    (a copy, in the order they happened): the first ``RECORD_LIMIT`` of them;
    ``recorded_total()`` counts them all."""
    return list(_RECORDED)


def recorded_total() -> int:
    """How many violations ``record`` mode found since the last
    ``clear_recorded()``, including those past ``RECORD_LIMIT`` (not kept)."""
    return _COUNTED[0]


def clear_recorded() -> None:
    """Forget the globally recorded violations (each guard's own
    ``violations`` list is cleared separately)."""
    _RECORDED.clear()
    _COUNTED[0] = 0


def _record(violation: ContractViolation, own: list[ContractViolation]) -> None:
    """Keep ``violation`` globally and in its guard's ``own`` list, each up to
    ``RECORD_LIMIT`` (memory stays bounded in long runs); count it always."""
    _COUNTED[0] += 1
    if len(_RECORDED) < RECORD_LIMIT:
        _RECORDED.append(violation)
    if len(own) < RECORD_LIMIT:
        own.append(violation)
