"""``@modpact.given(interface)``: a Hypothesis test over an interface's inputs.

    @mp.given(iface)
    def test_head(x):                 # one keyword argument per input, dims shared
        mp.validate_call(...)

The test receives each input of the interface as a keyword argument (or all
of them as one dict if it has a parameter named ``inputs``); pytest fixtures
keep working for its other parameters (function-scoped fixtures are set up
once per test, not per example: the Hypothesis health check for that is
suppressed). The example count comes from, in order: a ``@settings`` above
the decorator, ``--modpact-examples N`` (pytest plugin), a ``@settings``
below it, the loaded Hypothesis profile.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from modpact.errors import SpecError
from modpact.interfaces.interface import Interface
from modpact.interfaces.strategies import MAX_SIDE, require_hypothesis

__all__ = ["given", "CONFIG", "default_examples"]

#: set by the pytest plugin: {"max_examples": N or None}
CONFIG: dict[str, Any] = {"max_examples": None}


def default_examples(fallback: int = 100) -> int:
    """``--modpact-examples`` when given, else ``fallback``."""
    n = CONFIG.get("max_examples")
    return fallback if n is None else n


def given(
    interface: Interface,
    *,
    dims: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    max_side: int = MAX_SIDE,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a test to run on inputs generated from ``interface``."""
    if not (hasattr(interface, "inputs") and hasattr(interface, "strategy")):
        raise SpecError(f"modpact.given({interface!r}): expected a modpact Interface")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        require_hypothesis("modpact.given")
        from hypothesis import HealthCheck, settings
        from hypothesis import given as hgiven

        names = list(interface.inputs)
        sig = inspect.signature(fn)
        as_dict = "inputs" in sig.parameters
        wanted = ["inputs"] if as_dict else names
        missing = [n for n in wanted if n not in sig.parameters]
        if missing:
            raise SpecError(
                f"modpact.given({interface.name!r}) on {fn.__name__}{sig}: the test takes no parameter "
                f"{', '.join(map(repr, missing))}; name one parameter per input ({', '.join(names)}) "
                "or one parameter 'inputs'"
            )
        strategy = interface.strategy(dims=dims, device=device, max_side=max_side)
        rest = [n for n in sig.parameters if n not in wanted]

        @functools.wraps(fn)
        def wrapper(*args: Any, _modpact_inputs: dict, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            extra = {"inputs": _modpact_inputs} if as_dict else _modpact_inputs
            named = dict(zip(rest, args))  # fixtures may come positionally
            return fn(**named, **kwargs, **extra)

        del wrapper.__wrapped__  # pytest and Hypothesis must see the signature below, not fn's
        params = [p for n, p in sig.parameters.items() if n not in wanted]
        params.append(inspect.Parameter("_modpact_inputs", inspect.Parameter.KEYWORD_ONLY))
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]  # read by inspect
        parent = getattr(fn, "_hypothesis_internal_use_settings", None) or settings.default
        assert parent is not None  # Hypothesis has loaded a profile by now
        for attr in ("_hypothesis_internal_use_settings", "_hypothesis_internal_settings_applied"):
            wrapper.__dict__.pop(attr, None)
        kw: dict[str, Any] = {
            "suppress_health_check": [*parent.suppress_health_check, HealthCheck.function_scoped_fixture]
        }
        if CONFIG.get("max_examples") is not None:
            kw["max_examples"] = CONFIG["max_examples"]
        return settings(parent, **kw)(hgiven(_modpact_inputs=strategy)(wrapper))

    return deco
