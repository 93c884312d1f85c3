"""The contracts of a model as written, for reports and ``modpact inspect``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from torch import nn

from modpact.contracts import get_contract, get_guard
from modpact.runtime.records import ConditionRecord, ModuleContracts

__all__ = ["guard_of", "module_contracts", "model_contracts"]


def guard_of(mod: nn.Module) -> Any:
    """The contracts Guard of a module: attached with guard(), or on a
    @contract-decorated class/forward; None if it has none."""
    return get_guard(mod) or get_contract(type(mod).forward)


def _plain(d: dict) -> dict:
    """JSON types only (tuples become lists), so a report equals itself loaded back."""
    return json.loads(json.dumps(d))


def _conditions(conds: Iterable[Any]) -> list[ConditionRecord]:
    return [ConditionRecord(text=c.text, declared_at=c.declared_at, why=c.why) for c in conds]


def module_contracts(path: str, mod: nn.Module, guard: Any = None, defaults: Iterable[str] = ()) -> ModuleContracts:
    """One module's contracts: its guard's interface and conditions, plus the
    names of default contracts a Monitor added."""
    iface = getattr(guard, "interface", None) if guard is not None else None
    return ModuleContracts(
        module=path or "<model>",
        type=type(mod).__name__,
        interface=_plain(iface.to_dict()) if iface is not None and hasattr(iface, "to_dict") else None,
        requires=_conditions(guard.requires) if guard is not None else [],
        ensures=_conditions(guard.ensures) if guard is not None else [],
        defaults=list(defaults),
    )


def model_contracts(model: nn.Module) -> list[ModuleContracts]:
    """The guarded modules of ``model`` (execution-independent: module order)."""
    out = []
    for path, mod in model.named_modules():
        g = guard_of(mod)
        if g is not None:
            out.append(module_contracts(path, mod, g))
    return out
