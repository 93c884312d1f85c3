"""``check_composition(producer, consumer)``: generated producer inputs ->
producer -> the consumer's input interface and preconditions. Catches a
producer that keeps its own contract but breaks its consumer's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modpact.contracts.checking import EagerChecker
from modpact.contracts.target import REJECTED, Target
from modpact.errors import ContractViolation
from modpact.interfaces.compat import check_compatible
from modpact.interfaces.interface import Interface
from modpact.interfaces.strategies import MAX_SIDE, interface_inputs, require_hypothesis

from .testing import default_examples
from .validation import _failure, _Found, call_or_found, pre_or_found, run_hypothesis

__all__ = ["check_composition", "CompositionResult"]

_EAGER = EagerChecker()


@dataclass
class CompositionResult:
    """Figures of ``check_composition``: generated producer inputs, how many
    outputs the consumer accepted, and the static compatibility check."""

    producer: str
    consumer: str
    examples: int = 0
    rejected: int = 0
    compatibility: Any = None
    seed: int | None = None

    @property
    def ok(self) -> bool:
        return True

    def __str__(self) -> str:
        return (
            f"{self.producer} -> {self.consumer}: {self.examples} generated producer inputs, every output met "
            f"the consumer's preconditions (seed={self.seed})"
        )


def _consumer_inputs(prod: Target, cons: Target, result: Any) -> dict[str, Any]:
    named = prod.guard.named_outputs(result) or {"result": result}
    want = list(cons.interface.inputs)
    if set(want) <= set(named):
        return {k: named[k] for k in want}
    vals = list(named.values())
    if len(vals) == len(want):
        return dict(zip(want, vals))
    return {want[0]: result} if len(want) == 1 else dict(zip(want, vals))


def check_composition(
    producer: nn.Module | Callable[..., Any],
    consumer: nn.Module | Callable[..., Any],
    *,
    producer_interface: Interface | None = None,
    consumer_interface: Interface | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    max_side: int = MAX_SIDE,
) -> CompositionResult:
    """Generated producer inputs -> producer -> the consumer's input interface and
    preconditions. A producer output that breaks its own contract is reported
    against the producer; one that keeps it but breaks the consumer's
    preconditions is reported against the wiring (naming both, with the static
    ``check_compatible`` reasons). Raises :class:`ValidationFailure`."""
    __tracebackhide__ = True
    require_hypothesis("modpact.check_composition")
    max_examples = default_examples() if max_examples is None else max_examples
    prod = Target(producer, producer_interface, what="check_composition")
    cons = Target(consumer, consumer_interface, what="check_composition")
    res = CompositionResult(prod.name, cons.name, compatibility=check_compatible(prod.interface, cons.interface))

    def body(inputs):
        env = pre_or_found(prod, inputs)
        if env is REJECTED:
            from hypothesis import reject

            res.rejected += 1
            reject()
        out = call_or_found(prod, inputs)
        bad = next(((n, v) for n, v in prod.post(env, out) if v is not None), None)
        if bad is not None:
            raise _Found(bad[0], bad[1], inputs, note=f"{prod.name} breaks its own contract")
        feed = _consumer_inputs(prod, cons, out)
        cenv = cons.guard.binder.bind((), cons.kwargs(feed))
        try:
            _EAGER.check_pre(cons.guard, cenv)
        except ContractViolation as v:
            raise _Found(
                "consumer precondition",
                v,
                inputs,
                note=f"{prod.name} keeps its own contract but its output breaks {cons.name}'s preconditions",
            ) from None
        res.examples += 1

    strategy = interface_inputs(prod.interface, device=device, max_side=max_side)
    try:
        res.seed = run_hypothesis(body, strategy, max_examples=max_examples, seed=seed, what="check_composition")
    except _Found as found:
        if found.check == "consumer precondition":
            head = f"check_composition: {prod.name} -> {cons.name}: the producer's output breaks the consumer's input"
            err = _failure("check_composition", found, prod.interface.name, res, headline=head)
            err.blame = f"the wiring {prod.name} -> {cons.name}"
            err.blame_reason = "the producer kept its own contract"
            if not res.compatibility.ok:
                err.evidence["static check"] = "; ".join(res.compatibility.reasons)
            err.args = (err.render(),)
        else:
            err = _failure("check_composition", found, prod.interface.name, res)
        raise err from None
    return res
