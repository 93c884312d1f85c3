"""The Condition protocol, its outcome, the registry, and custom (lambda) conditions.

A condition is evaluated against an *env*: a dict of the call's arguments by
name (defaults applied, ``self`` excluded); for postconditions also
``result``, the interface's named outputs and ``old``. Reserved keys (never
argument names) carry the callable so relational conditions can re-run it:
``env[CALL]`` is the module or bound function, ``env[BINDER]`` knows how to
call it again with some arguments replaced (see :func:`rerun`).

Protocol (the runtime Monitor relies on it):
  name, params, reads, serializable, declared_at, why, text
  device_ok(env) -> 0-dim bool tensor (no host sync) or Python bool
  device_range(env) -> None, a Python bool, or (tensor, lo, hi): the condition
                   holds iff every element of the tensor lies in [lo, hi]
                   (NaN fails); the Monitor then records it as one range
                   check (one reduction into its flag buffer) instead of a
                   verdict. None (the default): use device_ok.
  ok(env)        -> Python bool (may sync; the eager fast path)
  check(env)     -> Outcome (slow path: evidence and value summaries)
  to_dict() / Condition.from_dict(d)
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from modpact.errors import ModpactError, SpecError
from modpact.interfaces.jsonread import check_tree
from modpact.interfaces.summary import describe, summarize

from ._modes import disabled
from .source import callable_text, code_site, user_site

__all__ = [
    "CALL",
    "BINDER",
    "Domain",
    "Condition",
    "ConditionLike",
    "Custom",
    "Outcome",
    "as_bool",
    "as_device_bool",
    "as_condition",
    "register",
    "registry",
    "rerun",
]

CALL = "__call__"
BINDER = "__binder__"


@dataclass
class Outcome:
    """The slow-path result of one condition."""

    ok: bool
    evidence: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    expected: str | None = None
    actual: str | None = None


_REGISTRY: dict[str, type[Condition]] = {}


def register(cls: type[Condition]) -> type[Condition]:
    """Class decorator: make a Condition subclass loadable by ``from_dict``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise SpecError(f"A condition named {cls.name!r} is already registered ({_REGISTRY[cls.name].__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Condition]]:
    """Name -> Condition class, for every serializable built-in."""
    return dict(_REGISTRY)


def as_bool(value: Any) -> bool:
    """A condition's result as a Python bool; TypeError for anything that is
    not a boolean (a float tensor, a tensor with several elements, None...)."""
    if value is True or value is False:
        return value
    if isinstance(value, torch.Tensor):
        _check_bool_tensor(value)
        return bool(value)
    if type(value).__name__ == "bool_":  # numpy.bool_ without importing numpy
        return bool(value)
    raise TypeError(f"returned {describe(value)} (type={type(value).__name__}), not a boolean")


def as_device_bool(value: Any) -> torch.Tensor | bool:
    """Like :func:`as_bool` but keeps a 1-element tensor on its device (0-dim, no sync)."""
    if value is True or value is False:
        return value
    if isinstance(value, torch.Tensor):
        _check_bool_tensor(value)
        return value.reshape(())
    if type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"returned {describe(value)} (type={type(value).__name__}), not a boolean")


def _check_bool_tensor(t: torch.Tensor) -> None:
    if t.dtype != torch.bool:
        raise TypeError(f"returned {describe(t)}, not a boolean (compare it, e.g. `... > 0`)")
    if t.numel() != 1:
        raise TypeError(
            f"returned {describe(t)}, a tensor with {t.numel()} elements, not one boolean "
            "(reduce it with .all() or .any(), or wrap the condition in mostly(...))"
        )


def rerun(env: Mapping[str, Any], **overrides: Any) -> Any:
    """Call the guarded callable again with some arguments replaced, with
    every contract check switched off (so the re-run does not re-check)."""
    fn = env.get(CALL)
    binder = env.get(BINDER)
    if fn is None or binder is None:
        raise TypeError("this condition re-runs the module, but no callable was provided in its env")
    with disabled():
        return binder.call(fn, env, overrides)


@dataclass(frozen=True)
class Domain:
    """Inputs near reference rows: a tensor lies inside when each of its batch
    rows is within ``radius`` (per element, broadcasting against one row) of
    one of ``rows`` (``[N, *row]``). With no rows nothing lies inside (the
    reference rows were not kept, e.g. contracts loaded from JSON)."""

    rows: torch.Tensor
    radius: torch.Tensor

    def contains(self, t: Any) -> bool:
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or self.rows.shape[0] == 0:
            return False
        if tuple(t.shape[1:]) != tuple(self.rows.shape[1:]):
            return False
        if t.shape[0] == 0:
            return True
        scale, ref, lo, hi = self._scaled
        x = t.detach().to("cpu", torch.float64).reshape(t.shape[0], -1) / scale
        if not bool(torch.isfinite(x).all()):  # NaN and inf are near no row (cdist does not say so)
            return False
        if bool((x < lo).any() | (x > hi).any()):  # outside the box around every reference row
            return False
        return bool((torch.cdist(x, ref, p=float("inf")).amin(dim=1) <= 1).all())

    @functools.cached_property
    def _scaled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows in units of the radius (L-infinity distance <= 1 is inside), and their box +-1."""
        scale = self.radius.to(torch.float64).clamp_min(1e-12).expand(self.rows.shape[1:]).reshape(1, -1)
        ref = self.rows.to(torch.float64).reshape(self.rows.shape[0], -1) / scale
        return scale, ref, ref.amin(0) - 1, ref.amax(0) + 1


class Condition:
    """Base class of every condition. Subclasses set ``name`` and implement
    ``device_ok`` (and usually ``evidence``)."""

    name: ClassVar[str] = "condition"
    #: True when the condition reads metadata only (device_ok returns a Python bool)
    metadata_only: ClassVar[bool] = False
    #: True when the condition re-runs the callable (needs env[CALL]); mostly() takes its inner condition's
    needs_call: bool = False

    reads: tuple[str, ...] = ()
    serializable: bool = True
    declared_at: str | None = None
    why: str | None = None
    #: The inputs the condition makes a claim about: argument name -> :class:`Domain`; None:
    #: every input. Conditions learned from data (inferred envelopes) have one: property-based
    #: validation checks such a postcondition only on generated inputs inside it (and generates
    #: inputs inside it); guards and the Monitor check it on every call. Not serialized.
    domain: Mapping[str, Domain] | None = None

    def __init__(self, **params: Any):
        self._params = params
        self.declared_at = user_site(2)

    # --- protocol -------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def text(self) -> str:
        """How the condition is shown in messages, e.g. ``finite(logits)``."""
        parts: list[str] = []
        for k, v in self._params.items():
            if isinstance(v, (tuple, list)) and k in ("names",):
                parts.extend(str(x) for x in v)
            elif k in ("name", "in_name") and isinstance(v, str):
                parts.append(v)
            else:
                parts.append(f"{k}={_short_repr(v)}")
        return f"{self.name}({', '.join(parts)})"

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        raise NotImplementedError

    def device_range(self, env: Mapping[str, Any]) -> tuple[torch.Tensor, float, float] | bool | None:
        """The condition as a range check, where it has one (see the module docstring)."""
        return None

    def ok(self, env: Mapping[str, Any]) -> bool:
        return as_bool(self.device_ok(env))

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def check(self, env: Mapping[str, Any]) -> Outcome:
        ok = self.ok(env)
        out = Outcome(ok=ok, values=self.values(env))
        if not ok:
            out.evidence = self.evidence(env)
        return out

    def values(self, env: Mapping[str, Any]) -> dict[str, str]:
        return {n: _summary(env[n]) for n in self.reads if n in env}

    def in_domain(self, env: Mapping[str, Any]) -> bool:
        """Whether the call's inputs in ``env`` lie inside :attr:`domain` (True without one)."""
        return all(d.contains(env.get(name)) for name, d in (self.domain or {}).items())

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        """Per-batch-row booleans (1-D bool tensor), for :func:`mostly`; None if
        the condition has no row form."""
        return None

    # --- building -------------------------------------------------------
    def because(self, why: str | None) -> Condition:
        """A copy carrying the human reason shown in the headline."""
        if why is None:
            return self
        c = copy.copy(self)
        c.why = why
        return c

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "params": {}, "serializable": self.serializable}
        for k, v in self._params.items():
            d["params"][k] = _param_to_json(v)
        if self.why:
            d["why"] = self.why
        if self.declared_at:
            d["declared_at"] = self.declared_at
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Condition:
        """Rebuild a registered condition from ``to_dict()``'s form through its
        constructor (which checks the parameters); ``SpecError`` otherwise."""
        if not isinstance(d, Mapping):
            raise SpecError(f"Condition.from_dict: expected a dict, got {type(d).__name__}")
        check_tree(d, "Condition.from_dict")
        name = d.get("name")
        if not isinstance(d.get("params", {}), Mapping):
            raise SpecError(f"Condition.from_dict: params of {name!r} is not a dict")
        if not d.get("serializable", True):
            raise SpecError(
                f"Condition {name!r} was saved as non-serializable (it holds a Python callable or module); "
                "re-create it in code"
            )
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            known = ", ".join(sorted(_REGISTRY))
            raise SpecError(f"Unknown condition name {name!r} (known: {known})")
        params = {k: _param_from_json(v) for k, v in dict(d.get("params", {})).items()}
        try:
            cond = cls(**params)
        except ModpactError:
            raise
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise SpecError(f"Cannot rebuild condition {name!r} from params {str(params)[:200]}: {e}") from None
        for key in ("why", "declared_at"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise SpecError(f"Condition.from_dict: {key} of {name!r} is a {type(d[key]).__name__}, not a string")
        cond.why = d.get("why")
        cond.declared_at = d.get("declared_at", cond.declared_at)
        return cond

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Condition) or type(other) is not type(self):
            return NotImplemented
        return self._params == other._params and self.why == other.why

    __hash__ = object.__hash__


def _short_repr(v: Any) -> str:
    if isinstance(v, torch.nn.Module):
        return type(v).__name__
    if callable(v) and not isinstance(v, type):
        return callable_text(v)
    if isinstance(v, Condition):
        return v.text
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _param_to_json(v: Any) -> Any:
    if isinstance(v, Condition):
        return {"condition": v.to_dict()}
    if isinstance(v, tuple):
        return [_param_to_json(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, list):
        return [_param_to_json(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return {"non_serializable": _short_repr(v)}


def _param_from_json(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"condition"}:
        return Condition.from_dict(v["condition"])
    if isinstance(v, list):
        return tuple(_param_from_json(x) for x in v)
    return v


def _summary(v: Any) -> str:
    if isinstance(v, (tuple, list)) and v and all(isinstance(x, torch.Tensor) for x in v):
        return "(" + ", ".join(summarize(x) for x in v) + ")"
    return summarize(v)


class Custom(Condition):
    """A Python callable used as a condition. Its parameters name what it reads."""

    name = "custom"
    serializable = False

    def __init__(self, fn: Callable[..., Any], *, declared_at: str | None = None):
        if not callable(fn):
            raise SpecError(f"Expected a Condition or a callable, got {fn!r} (type={type(fn).__name__})")
        self.fn = fn
        self._params = {}
        # a lambda is declared where it is written; a named function where it is attached
        lam = getattr(fn, "__name__", "") == "<lambda>"
        self.declared_at = (code_site(fn) if lam else None) or declared_at or code_site(fn) or user_site(2)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as e:
            raise SpecError(f"Cannot read the parameters of condition {fn!r}: {e}") from None
        names: list[str] = []
        optional: set[str] = set()
        self.takes_any = False
        positional = True
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                self.takes_any = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                raise SpecError(
                    f"Condition {callable_text(fn)} takes *{p.name}; a condition names the arguments it reads"
                )
            if p.kind is p.POSITIONAL_ONLY:
                raise SpecError(
                    f"Condition {callable_text(fn)} has positional-only parameter {p.name!r}; "
                    "conditions are called with arguments by name"
                )
            if p.kind is p.KEYWORD_ONLY:
                positional = False
            if p.default is not p.empty:
                optional.add(p.name)
                positional = False
            names.append(p.name)
        self.reads = tuple(names)
        self.optional = frozenset(optional)
        self._positional = positional and not self.takes_any
        self._text = callable_text(fn)

    @property
    def text(self) -> str:
        return self._text

    def _call(self, env: Mapping[str, Any]) -> Any:
        if self._positional:
            return self.fn(*[env[n] for n in self.reads])
        kw = {n: env[n] for n in self.reads if n in env}
        if self.takes_any:
            for k, v in env.items():
                if not k.startswith("__") and k not in kw:
                    kw[k] = v
        return self.fn(**kw)

    def _missing(self, env: Mapping[str, Any]) -> list[str]:
        """The names it reads that this call did not pass (a function taking
        ``**kw`` may be called without them)."""
        return [n for n in self.reads if n not in env and n not in self.optional]

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        try:
            return as_device_bool(self._call(env))
        except KeyError:
            if self._missing(env):
                return False  # a name it reads was not passed: the precondition does not hold
            raise

    def ok(self, env: Mapping[str, Any]) -> bool:
        try:
            return as_bool(self._call(env))
        except KeyError:
            if self._missing(env):
                return False
            raise

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        missing = self._missing(env)
        if missing:
            return {"not passed": ", ".join(missing)}
        return super().evidence(env)

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        r = self._call(env)
        if isinstance(r, torch.Tensor) and r.dtype == torch.bool and r.ndim == 1:
            return r
        raise TypeError(f"returned {describe(r)}; inside mostly(...) a condition returns one boolean per batch row")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "source": self.text, "serializable": False}
        if self.why:
            d["why"] = self.why
        if self.declared_at:
            d["declared_at"] = self.declared_at
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Custom):
            return NotImplemented
        return self.fn is other.fn and self.why == other.why

    __hash__ = object.__hash__


#: A condition as ``requires``/``ensures`` take it: a Condition, a callable whose
#: parameters name the arguments it reads, or either with its reason, ``(condition, "why")``.
ConditionLike = Condition | Callable[..., Any] | tuple[Condition | Callable[..., Any], str]


def as_condition(c: Any, *, why: str | None = None, declared_at: str | None = None) -> Condition:
    """A Condition from a Condition or a callable (with an optional reason)."""
    if isinstance(c, Condition):
        return c.because(why)
    if isinstance(c, str):
        raise SpecError(
            f"Expected a Condition or a callable, got the string {c!r}; "
            "did you pass the reason first? Use requires(condition, 'why')"
        )
    if not callable(c):
        raise SpecError(f"Expected a Condition or a callable, got {c!r} (type={type(c).__name__})")
    return Custom(c, declared_at=declared_at).because(why)
