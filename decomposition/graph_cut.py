"""Cutting one fx graph into sequential stage graphs; shared by both ways
``split`` gets a graph (``fx_cut.py``: ``torch.fx`` symbolic tracing,
``export_cut.py``: ``torch.export``).

The nodes keep their order. Stage ``k`` holds the nodes after the end of stage
``k - 1`` up to its own end (an index in the graph); placeholders belong to
stage 0, the output node to the last stage, and ``get_attr`` nodes (parameters,
buffers) are copied into every stage that reads them. A value defined in a
stage and used in a later one crosses every cut in between: it is an output
of each stage before and an input of each stage after, so the stages run the
very operations of the graph in the very order of the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch.fx as fx
from torch import nn

__all__ = ["Cut", "CannotCut", "Refused", "spread", "assign_stages", "crossing", "stage_graph", "check_not_empty"]

_NOT_COMPUTE = ("placeholder", "get_attr", "output")


class CannotCut(Exception):
    """This way of getting a graph does not work on this model (``reason`` says
    why); ``split`` then tries the other way. A refusal that no way can get
    around (a cut after a submodule called twice) is ``Refused`` instead."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """A refusal no way of cutting can get around (``reason`` says why); ``split``
    raises it as a ``SpecError`` that names the cuts and the model."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Cut:
    """What a way of cutting hands to ``split``: the stages, the names of the
    values each stage hands to the next (``carried[k]``: several values are
    returned as a tuple, one value as itself), the cuts in execution order,
    and how the graph was obtained (``"fx"`` or ``"export"``)."""

    stages: list[nn.Module]
    carried: list[list[str]]
    cuts: list[str]
    method: Literal["fx", "export"]
    notes: list[str] = field(default_factory=list)


def spread(out: Any, names: Sequence[str]) -> tuple:
    """A stage's result as the next stage's arguments: several values come as a
    tuple, one value as itself (even when it is a tuple, like an LSTM's output)."""
    return tuple(out) if len(names) > 1 else (out,)


def assign_stages(nodes: Sequence[fx.Node], ends: Sequence[int]) -> dict[fx.Node, int]:
    """Stage of each node; ``ends[k]`` is the index of the last node of stage
    ``k`` (increasing), the last stage runs to the end."""
    stage_of: dict[fx.Node, int] = {}
    s = 0
    for i, n in enumerate(nodes):
        while s < len(ends) and i > ends[s]:
            s += 1
        stage_of[n] = 0 if n.op == "placeholder" else len(ends) if n.op == "output" else s
    return stage_of


def check_not_empty(nodes: Sequence[fx.Node], stage_of: dict[fx.Node, int], cuts: Sequence[str]) -> None:
    """Refuse a cut after which the next stage would compute nothing."""
    for k, c in enumerate(cuts):
        if not any(stage_of[n] == k + 1 for n in nodes if n.op not in _NOT_COMPUTE):
            raise Refused(f"the cut after {c!r} leaves stage {k + 1} empty; cut before the last operation")


def crossing(nodes: Sequence[fx.Node], stage_of: dict[fx.Node, int], k: int) -> list[fx.Node]:
    """The values defined in stages <= k and used in stages > k, in graph order."""
    return [
        n
        for n in nodes
        if n.op not in ("get_attr", "output") and stage_of[n] <= k and any(stage_of[u] > k for u in n.users)
    ]


def stage_graph(
    root: nn.Module,
    nodes: Sequence[fx.Node],
    stage_of: dict[fx.Node, int],
    k: int,
    inputs: Sequence[fx.Node | None],
    outputs: Any,
    class_name: str,
    *,
    input_names: Sequence[str] | None = None,
    derived: Callable[[fx.Graph, dict[fx.Node, fx.Node]], None] | None = None,
) -> fx.GraphModule:
    """The graph of stage ``k`` as a ``GraphModule`` sharing ``root``'s parameters.

    Stage 0 takes the graph's placeholders; a later stage takes ``inputs`` (one
    placeholder each, named ``input_names`` or after the node; ``None`` for a
    constant the stage is handed but does not read). ``outputs`` is
    what the stage returns, an fx argument (a node, or a tuple of nodes and
    constants) written with the original nodes; ``None`` copies the graph's own
    output node. ``derived(graph, env)`` may add nodes after the placeholders
    (values recomputed in the stage instead of crossing the cut)."""
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    if k == 0:
        for n in nodes:
            if n.op == "placeholder":
                env[n] = g.node_copy(n, env.__getitem__)
    else:
        for i, m in enumerate(inputs):  # None: a constant no node reads
            p = g.placeholder(input_names[i] if input_names else m.name if m else f"constant{i}")
            if m is not None:
                env[m], p.meta = p, dict(m.meta)
    if derived is not None:
        derived(g, env)

    def arg(m: fx.Node) -> fx.Node:
        if m not in env and m.op == "get_attr":
            env[m] = g.node_copy(m, lambda _: None)  # get_attr has no node arguments
        return env[m]

    for n in nodes:
        if stage_of[n] == k and n.op not in _NOT_COMPUTE:
            env[n] = g.node_copy(n, arg)
    if outputs is None:
        g.node_copy(next(n for n in nodes if n.op == "output"), arg)
    else:
        g.output(fx.map_arg(outputs, arg))
    g.lint()
    return fx.GraphModule(root, g, class_name)
