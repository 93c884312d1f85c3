"""``PortedModule``: a ported artifact (an exported program, an onnxruntime
session) as an ``nn.Module`` whose ``forward`` takes the interface's inputs by
name and that checks the interface, and the conditions that travelled with
it, on every call (``mp.guard``). ``validate`` and ``check_substitutable``
take it like any module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from modpact.contracts import get_guard, guard

from .portdoc import PortDocument

__all__ = ["PortedModule", "ported_module"]


class PortedModule(nn.Module):
    """A ported artifact behind its interface. ``run`` is called with the
    inputs by name; ``document`` is what travelled with it (``not_carried``:
    conditions that could not travel and are therefore not checked)."""

    def __init__(self, run: Callable[..., Any], document: PortDocument, source: str, inner: nn.Module | None = None):
        super().__init__()
        self._run = run
        self.inner = inner  # the exported program's module, when there is one (its parameters show here)
        self.document = document
        self.interface = document.interface
        self.not_carried = list(document.not_carried)
        self.source = source

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        names = list(self.interface.inputs)
        if len(args) > len(names):
            raise TypeError(f"{self.source}: takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{self.source}: input {name!r} given twice")
            kwargs[name] = value
        return self._run(**kwargs)

    def extra_repr(self) -> str:
        return f"{self.interface.name!r} from {self.source}"


def ported_module(
    run: Callable[..., Any], document: PortDocument, source: str, inner: nn.Module | None = None
) -> PortedModule:
    """A guarded ``PortedModule`` whose ``forward`` names the interface's inputs
    (so contracts and validation bind them by name)."""
    names = list(document.interface.inputs)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]

    def forward(self: PortedModule, *args: Any, **kwargs: Any) -> Any:
        return PortedModule.forward(self, *args, **kwargs)

    forward.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # read by inspect.signature
    cls = type("PortedModule", (PortedModule,), {"forward": forward, "__module__": __name__})
    mod = cls(run, document, source, inner)
    guard(
        mod,
        interface=document.interface,
        requires=list(document.requires),
        ensures=list(document.ensures),
        name=document.interface.name,
    )
    g = get_guard(mod)
    if g is not None:  # None when contracts are off (MODPACT_CONTRACTS=off)
        g.declared_at = f"{source} (the interface that travelled with it)"
    return mod
