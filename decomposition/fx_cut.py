"""The ``torch.fx`` way of ``split``: symbolic tracing with the named
submodules kept as leaves, a cut after each one's call.

The stages are ``fx.GraphModule``s whose ``call_module`` nodes call the
model's own submodules. The value a cut submodule returns crosses the cut as
it is (a tensor, or the tuple an LSTM returns, or a dict): the code after the
cut unpacks it exactly as the model's code does. Tracing fails on
data-dependent control flow and on code fx cannot follow (Hugging Face
models among them); ``CannotCut`` says so and ``split`` tries ``torch.export``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.fx as fx
from torch import nn

from .graph_cut import CannotCut, Cut, Refused, assign_stages, check_not_empty, crossing, stage_graph

__all__ = ["fx_cut"]


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaves:
            return True
        if any(a.startswith(f"{qualname}.") for a in self.leaves):  # trace into torch.nn modules that hold a cut
            return False
        return super().is_leaf_module(m, qualname)


def _trace(model: nn.Module, at: Sequence[str]) -> fx.GraphModule:
    try:
        graph = _Tracer(set(at)).trace(model)
    except Exception as e:  # data-dependent control flow and the like
        raise CannotCut(f"torch.fx could not trace {type(model).__name__}: {e}") from None
    return fx.GraphModule(model, graph, type(model).__name__)


def fx_cut(model: nn.Module, at: Sequence[str], base: str) -> Cut:
    """Stages of ``model`` cut after each submodule in ``at`` (execution order)."""
    gm = _trace(model, at)
    nodes = list(gm.graph.nodes)
    calls = {a: [n for n in nodes if n.op == "call_module" and n.target == a] for a in at}
    for a, found in calls.items():
        if not found:  # called from code fx did not follow, or never: torch.export tells
            raise CannotCut(f"torch.fx saw no call of {a!r} in {type(model).__name__}")
        if len(found) != 1:
            raise Refused(f"submodule {a!r} is called {len(found)} times in forward; a cut needs exactly one call")
    cut_nodes = sorted((calls[a][0] for a in at), key=nodes.index)
    cuts = [str(n.target) for n in cut_nodes]
    stage_of = assign_stages(nodes, [nodes.index(n) for n in cut_nodes])
    check_not_empty(nodes, stage_of, cuts)
    boundaries = [crossing(nodes, stage_of, k) for k in range(len(cuts))]
    stages: list[nn.Module] = []
    for k in range(len(cuts) + 1):
        if k < len(cuts):
            outs = boundaries[k]
            outputs = outs[0] if len(outs) == 1 else tuple(outs)
        else:
            outputs = None
        inputs = boundaries[k - 1] if k else []
        stages.append(stage_graph(gm, nodes, stage_of, k, inputs, outputs, f"{base}_stage{k}"))
    return Cut(stages, [[n.name for n in b] for b in boundaries], cuts, "fx")
