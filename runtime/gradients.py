"""Gradient checks (``Monitor(backward=True)``, ``grad_norm=``).

In backward, a tensor hook on each monitored module's output checks the
gradient arriving there; a non-finite one blames the modules that consumed
the output (their backward produced it), read from the call's dataflow. At
``step()``, each module's parameter gradients get one ``_foreach_norm``:
finite, and within ``grad_norm`` when it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from modpact.runtime.calls import Calls
from modpact.runtime.recording import Lane, Recorder
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.state import CallState

__all__ = ["Gradients"]


class Gradients:
    """Sets the backward hooks and checks parameter gradients."""

    def __init__(
        self, settings: Settings, scope: Scope, recorder: Recorder, calls: Calls, lane: Callable[[], Lane]
    ) -> None:
        self.settings = settings
        self.scope = scope
        self.rec = recorder
        self.calls = calls
        self.lane = lane  # () -> the calling thread's lane

    def watch(self, state: CallState, path: str, t: torch.Tensor) -> None:
        """Check the gradient that arrives at ``t`` (an output of ``path``) in backward."""
        rec = self.rec
        slot = rec.slot(path, "gradient", "finite(grad)", "grad(output)", phase="backward")
        step, call = state.step, state.call
        flow = self.calls.flow

        def on_grad(g: torch.Tensor) -> None:
            # the consumers ran after this hook was set: read them now, in backward.
            # Edges into path's own children come from code inside its forward,
            # not from its output, so they are not consumers.
            edges = flow.edges.get((step, call), ())
            consumers = sorted({b for (a, b) in edges if a == path and not b.startswith(path + ".")})
            blame = ", ".join(consumers) if consumers else "the loss (computed outside the model)"
            reason = f"their backward produced a non-finite gradient for {path or '<model>'}'s output"
            lane = self.lane()  # autograd may run this in a thread of its own
            with lane.busy:
                lane.buffer.add_range(g, rec.grad_event(lane, slot, step, call, blame, reason))

        t.register_hook(on_grad)

    def check_params(self) -> None:
        """Gradient contracts on parameters, one foreach reduction per module and step."""
        rec = self.rec
        grad_norm = self.settings.grad_norm
        lo, hi = grad_norm if grad_norm else (None, None)
        check = f"grad_norm in [{lo}, {hi}]" if grad_norm else "finite(grad)"
        lane = self.lane()
        step, call = self.calls.step, self.calls.call
        for mod, path in self.scope.paths.items():
            grads = [(n, p.grad) for n, p in mod.named_parameters(recurse=False) if p.grad is not None]
            if not grads:
                continue
            norms = torch._foreach_norm([g for _, g in grads])
            for (name, _), norm in zip(grads, norms):
                slot = rec.slot(path, "gradient", check, f"{name}.grad", lo=lo, hi=hi, phase="step")
                event = rec.grad_event(
                    lane, slot, step, call, path or "<model>", "its parameter gradient left the bound"
                )
                lane.buffer.add_range(norm, event, lo, hi, True)
