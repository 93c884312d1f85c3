"""The checker extension point.

Guard hooks and decorated functions never check by themselves: they bind the
call's arguments into an *env* and hand it to the current checker::

    state = checker.check_pre(guard, env)      # before the call
    result = forward(...)
    env["result"] = result                      # plus named outputs, see Guard
    checker.check_post(guard, env, state)      # after the call

The default :class:`EagerChecker` evaluates each condition synchronously and
raises / warns / records according to the guard's mode. The runtime Monitor
installs its own checker with :func:`use_checker` (a contextvar, so it is
local to the thread / task) to write device-side flags instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from modpact.errors import Problem, SpecError
from modpact.interfaces.bindings import Bindings

from ._boundary import Boundary
from ._violations import condition_violation, contract_error, interface_violation, report
from .context import ContextFlag

__all__ = ["Checker", "EagerChecker", "current_checker", "use_checker"]


class Checker:
    """Base class (and protocol) of checkers.

    ``check_pre(guard, env)`` runs before the call and returns a state object
    (anything) that is passed back to ``check_post(guard, env, state)`` after
    it. ``env`` maps argument names to values (defaults applied, ``self``
    excluded); in ``check_post`` it also holds ``result``, the interface's named
    outputs and, when a postcondition asks for it, ``old``. The guard (a
    :class:`Boundary`: a ``Guard``, attached or not) carries ``interface``,
    ``requires``, ``ensures``, ``name``, ``mode``, ``producer`` and the
    helpers ``input_values(env)`` / ``output_values(env)``.

    ``transient``: the checker belongs to something running now (a runtime
    Monitor's); a copy of a guard (``copy.deepcopy(model)``, pickle) does
    not keep it and checks through the context's current checker.
    """

    transient: bool = False

    def check_pre(self, guard: Boundary, env: dict[str, Any]) -> Any:
        raise NotImplementedError

    def check_post(self, guard: Boundary, env: dict[str, Any], state: Any) -> None:
        raise NotImplementedError


class EagerChecker(Checker):
    """Evaluate conditions now, on the host; raise, warn or record per mode.

    Fast path: ``Interface.input_problems`` / ``output_problems`` and each
    condition's ``ok(env)``; evidence (``check``) is collected only for a
    condition that failed.
    """

    def check_pre(self, guard: Boundary, env: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        failed = False
        bindings: dict[str, int] | Bindings | None = None  # plain ints from the fast path
        iface = guard.interface
        if iface is not None:
            bindings = guard.fast_input_binds(env)
            if bindings is None:
                problems, bindings = iface.input_problems(guard.input_values(env), values_too=False)
            else:
                problems = []
            if not problems and guard.in_value_specs:
                problems = _value_problems(guard.in_value_specs, guard.input_leaves(env), "inputs")
            if problems:
                failed = True
                if type(bindings) is dict:  # fast-path ints: rebuild with "bound by" for the message
                    _, bindings = iface.input_problems(guard.input_values(env), values_too=False)
                report(
                    guard, interface_violation(guard, problems, bindings, side="input", values=guard.input_values(env))
                )
        for c in guard.requires:
            try:
                ok = c.ok(env)
            except Exception as e:
                failed = True
                report(guard, contract_error(guard, c, env, e, post=False))
                continue
            if not ok:
                failed = True
                report(guard, condition_violation(guard, c, env, bindings, post=False))
        return (bindings, failed)

    def check_post(self, guard: Boundary, env: dict[str, Any], state: Any) -> None:
        __tracebackhide__ = True
        bindings, pre_failed = state
        iface = guard.interface
        if iface is not None:
            result = env["result"]
            problems: list[Problem]
            if guard.fast_outputs_ok(result, bindings):
                problems = []
            else:
                if type(bindings) is dict or bindings is None:  # the fast path bound plain ints: redo in full
                    _, bindings = iface.input_problems(guard.input_values(env), values_too=False)
                problems, bindings = iface.output_problems(result, bindings, values_too=False)
            if not problems and guard.out_value_specs:
                problems = _value_problems(guard.out_value_specs, guard.output_leaves(result), "outputs")
            if problems:
                if type(bindings) is dict:  # fast-path ints: rebuild with "bound by" for the message
                    _, bindings = iface.input_problems(guard.input_values(env), values_too=False)
                    iface.output_problems(result, bindings, values_too=False)
                report(
                    guard,
                    interface_violation(
                        guard,
                        problems,
                        bindings,
                        side="output",
                        pre_failed=pre_failed,
                        values=guard.named_outputs(result),
                    ),
                )
        for c in guard.ensures:
            try:
                ok = c.ok(env)
            except Exception as e:
                report(guard, contract_error(guard, c, env, e, post=True))
                continue
            if not ok:
                report(guard, condition_violation(guard, c, env, bindings, post=True, pre_failed=pre_failed))


def _value_problems(specs: Any, named: Mapping[str, Any], side: str) -> list:
    """Value-domain problems: the cheap device form first, evidence only on failure."""
    problems: list = []
    for k, spec in specs:
        t = named.get(k)
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            ok = spec.value_ok(t)
            if ok is not None and not bool(ok):
                problems += spec.value_problems(t, f"{side}.{k}")
    return problems


_EAGER = EagerChecker()
_CHECKER: ContextFlag[Checker] = ContextFlag("modpact_checker", _EAGER)


def current_checker() -> Checker:
    """The checker guards and decorated functions call (default: EagerChecker)."""
    return _CHECKER.get()


@contextlib.contextmanager
def use_checker(checker: Checker) -> Iterator[Checker]:
    """Install ``checker`` for the duration of the block (context-local)."""
    if not (hasattr(checker, "check_pre") and hasattr(checker, "check_post")):
        raise SpecError(f"Expected a checker with check_pre/check_post, got {checker!r}")
    token = _CHECKER.set(checker)
    try:
        yield checker
    finally:
        _CHECKER.reset(token)
