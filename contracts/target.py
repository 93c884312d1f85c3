"""A callable checked one call at a time: its interface and conditions
gathered into one Guard (raise mode, never attached), and the pre/post checks
of one call, with the contracts' own blame. ``modpact.validation`` runs its
generated inputs through it.

``Target.pre`` binds generated inputs and checks the preconditions (a failure
means the input is rejected, not that the module is wrong); ``Target.post``
runs every postcondition separately so each gets its own pass count.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from modpact.errors import (
    ContractError,
    ContractViolation,
    InterfaceViolation,
    PreconditionViolation,
    SpecError,
)
from modpact.interfaces.interface import Interface

from ._modes import disabled
from ._old import Old
from ._violations import condition_violation, contract_error, interface_violation
from .binding import Binder
from .checking import EagerChecker
from .condition import BINDER, CALL, ConditionLike
from .decorators import get_contract
from .guard import Guard, _conditions, get_guard

__all__ = ["Target", "REJECTED", "existing_guard", "ExtraContracts"]

#: What ``contracts=`` takes (``validate``): postconditions, one or several, or
#: ``{"requires": ..., "ensures": ...}``.
ExtraContracts = ConditionLike | Iterable[ConditionLike] | Mapping[str, ConditionLike | Iterable[ConditionLike]]

REJECTED = "rejected"
_EAGER = EagerChecker()


def existing_guard(fn: Any) -> Guard | None:
    """The Guard ``fn`` already has: attached with ``guard`` (a module), or
    declared with ``@contract`` on it or its class; None if it has none."""
    if isinstance(fn, nn.Module):
        return get_guard(fn) or get_contract(type(fn))
    return get_contract(fn)


def _binder(fn: Any, what: str) -> Binder:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    if not callable(target):
        raise SpecError(f"{what}: expected an nn.Module or a callable, got {fn!r} (type={type(fn).__name__})")
    try:
        return Binder(inspect.signature(target))
    except (TypeError, ValueError) as e:
        raise SpecError(f"{what}: cannot read the signature of {fn!r}: {e}") from None


def _split_contracts(contracts: Any, what: str) -> tuple[Any, Any]:
    """``contracts``: postconditions (a condition or a list), or {"requires": [...], "ensures": [...]}."""
    if contracts is None:
        return (), ()
    if isinstance(contracts, Mapping):
        unknown = set(contracts) - {"requires", "ensures"}
        if unknown:
            raise SpecError(f"{what}(contracts=...): unknown keys {sorted(unknown)}; expected 'requires' and 'ensures'")
        return contracts.get("requires", ()) or (), contracts.get("ensures", ()) or ()
    return (), contracts


class Target:
    """``fn`` with the interface and conditions it is validated against."""

    def __init__(
        self,
        fn: nn.Module | Callable[..., Any],
        interface: Interface | None = None,
        contracts: ExtraContracts | None = None,
        name: str | None = None,
        what: str = "validate",
    ):
        existing = existing_guard(fn)
        iface = interface if interface is not None else getattr(existing, "interface", None)
        label = name or getattr(existing, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
        if iface is None:
            raise SpecError(
                f"{what}({label}): no interface to generate inputs from; pass interface=... or guard "
                "the module with one (mp.guard(module, interface=...))"
            )
        if not (hasattr(iface, "inputs") and hasattr(iface, "input_problems")):
            raise SpecError(f"{what}(interface={iface!r}): expected a modpact Interface")
        binder = existing.binder if existing is not None else _binder(fn, what)
        req, ens = _split_contracts(contracts, what)
        site = getattr(existing, "declared_at", None)
        self.fn = fn
        self.interface = iface
        self.guard = Guard(
            interface=iface,
            requires=tuple(getattr(existing, "requires", ())) + _conditions(req, "requires", site),
            ensures=tuple(getattr(existing, "ensures", ())) + _conditions(ens, "ensures", site),
            name=label,
            mode="raise",
            producer="the generated inputs",
            binder=binder,
            owner=f"{label}.forward" if isinstance(fn, nn.Module) else label,
            declared_at=site,
        )
        self.checks = [f"interface {iface.name!r}"] + [c.text for c in self.guard.ensures]

    @property
    def name(self) -> str:
        return self.guard.name

    def kwargs(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Interface input name -> argument name."""
        return {arg: inputs[k] for k, arg in self.guard._in_pairs}

    def call(self, inputs: Mapping[str, torch.Tensor]) -> Any:
        """Run the callable with every contract check off (validation checks itself)."""
        with disabled(), torch.no_grad():
            return self.fn(**self.kwargs(inputs))

    def pre(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, Any] | str:
        """The call's env when the preconditions hold; REJECTED when they do not.
        A precondition that cannot be evaluated raises its ContractError."""
        env = self.pre_checked(inputs)
        return REJECTED if isinstance(env, ContractViolation) else env

    def pre_checked(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, Any] | ContractViolation:
        """``pre``, with the violation (input interface or precondition) instead of REJECTED."""
        g = self.guard
        env = g.binder.bind((), self.kwargs(inputs))
        if g.needs_call:
            env[CALL] = self.fn
            env[BINDER] = g.binder
        if g.needs_old:
            env["old"] = Old(env, g.binder.all_names, g.snapshot)
        try:
            _EAGER.check_pre(g, env)
        except ContractError:
            raise
        except (PreconditionViolation, InterfaceViolation) as v:
            return v
        return env

    def post(self, env: dict[str, Any], result: Any) -> list[tuple[str, ContractViolation | None]]:
        """Each postcondition (the output interface first) with its violation or None."""
        g = self.guard
        env["result"] = result
        args = g.binder.all_names
        named = g.named_outputs(result)
        for k, v in named.items():
            if k not in args:
                env[k] = v
        iface = self.interface
        _, bindings = iface.input_problems(g.input_values(env), values_too=False)
        problems, bindings = iface.output_problems(result, bindings)
        out: list[tuple[str, ContractViolation | None]] = [
            (
                self.checks[0],
                interface_violation(g, problems, bindings, side="output", values=named) if problems else None,
            )
        ]
        for c in g.ensures:
            try:
                ok = c.ok(env)
            except Exception as e:
                out.append((c.text, contract_error(g, c, env, e, post=True)))
                continue
            out.append((c.text, None if ok else condition_violation(g, c, env, bindings, post=True)))
        return out
