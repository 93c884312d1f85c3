"""``GraphStage``: one stage cut from an exported graph, called with and
returning structured values.

An exported graph computes on flat tensors; the model and its submodules
take and return tuples, dicts and ``ModelOutput``s. A ``GraphStage`` keeps the
structure of the example's inputs and of what it returns (pytree specs),
flattens each call the same way and rebuilds its result, so the stage after a
cut receives the object the cut submodule returned (an LSTM's ``(out, (h, c))``
as one argument, not three).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.fx as fx
import torch.utils._pytree as pytree
from torch import nn

from modpact.errors import SpecError

__all__ = ["GraphStage"]


class GraphStage(nn.Module):
    """One stage cut from an exported graph.

    ``graph_module`` computes on flat values. The stage is called like the part
    of the model it replaces: stage 0 like the model (``signature``), a later
    stage with the values carried into it, by position or by name. It takes
    the arguments named ``arg_names`` (by position in the example) and
    ``kwarg_names`` (by keyword in the example), flattens them, and returns its
    values in their structure (``out_spec``). A call that names other
    arguments than the example did, or whose values have another structure,
    is refused with a ``SpecError`` naming the stage, and so is a call the
    exported graph's guards reject (a size or a constant the trace fixed).

    The graph is the one traced: dropout and batch norm run as they did in the
    model's mode at the time (``traced_training``). The stage takes that mode
    (``training``) and refuses a call after ``train()``/``eval()`` changed it,
    since its graph would not follow; split the model again in the new mode."""

    def __init__(
        self,
        graph_module: fx.GraphModule,
        signature: inspect.Signature,
        arg_names: Sequence[str],
        kwarg_names: Sequence[str],
        in_spec: pytree.TreeSpec,
        out_spec: pytree.TreeSpec,
        name: str,
        *,
        traced_training: bool,
    ):
        super().__init__()
        self.traced_training = traced_training
        self.training = traced_training  # not train(): the graph module's own flag does not matter
        self.graph_module = graph_module
        self.signature = signature
        self.arg_names = list(arg_names)
        self.kwarg_names = list(kwarg_names)
        self._specs = _Specs(in_spec, out_spec)
        self.name = name

    @property
    def in_spec(self) -> pytree.TreeSpec:
        """The structure of ``((args), {kwargs})`` the stage takes (the example's)."""
        return self._specs.inputs

    @property
    def out_spec(self) -> pytree.TreeSpec:
        """The structure of what the stage returns."""
        return self._specs.outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training != self.traced_training:
            raise SpecError(
                f"{self.name}: called in {_mode(self.training)} mode; its graph was traced in "
                f"{_mode(self.traced_training)} mode (dropout and batch norm are fixed in it): split the model again"
            )
        try:
            bound = self.signature.bind(*args, **kwargs).arguments
        except TypeError as e:
            raise SpecError(f"{self.name}: {e}") from None
        var_kw = next((p.name for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
        given = {**bound.pop(var_kw, {}), **bound} if var_kw else dict(bound)
        expected = self.arg_names + self.kwarg_names
        if set(given) != set(expected):
            raise SpecError(
                f"{self.name}: called with {', '.join(map(repr, given)) or 'nothing'}; "
                f"it was cut for {', '.join(map(repr, expected))} (what the example gave)"
            )
        call = (tuple(given[n] for n in self.arg_names), {n: given[n] for n in self.kwarg_names})
        flat, spec = pytree.tree_flatten(call)
        if spec != self.in_spec:
            raise SpecError(
                f"{self.name}: its inputs do not have the structure of the example's: "
                f"expected {pytree.treespec_pprint(self.in_spec)}, got {pytree.treespec_pprint(spec)}"
            )
        try:
            out = self.graph_module(*flat)
        except AssertionError as e:  # the exported graph's guards (_guards_fn)
            if not str(e).startswith("Guard failed"):
                raise
            raise SpecError(
                f"{self.name}: {e}: the call is outside what the graph was exported for "
                "(a size or a constant the model's code fixed on the example); split with an example like this call"
            ) from None
        return pytree.tree_unflatten(list(out) if isinstance(out, (tuple, list)) else [out], self.out_spec)

    def extra_repr(self) -> str:
        return f"{self.name}({', '.join(self.arg_names + self.kwarg_names)})"


def _mode(training: bool) -> str:
    return "train" if training else "eval"


@dataclass(frozen=True)
class _Specs:
    """A stage's input and output structures: immutable, so a deep copy of the
    stage shares them (copying a pytree leaf spec warns in torch 2.13)."""

    inputs: pytree.TreeSpec
    outputs: pytree.TreeSpec

    def __deepcopy__(self, memo: dict) -> _Specs:
        return self
