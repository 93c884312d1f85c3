"""Structural split: cut a model into sequential stages after named submodules.

The model is traced with ``torch.fx`` (the named submodules are kept as leaves);
the graph is cut after each named call, in execution order. Every value that
crosses a cut (one tensor, or several for a skip connection) becomes an
output of the stage before and an input of the stage after, named after the
fx node. Stages run the very same operations in the same order, so chaining
them reproduces the model's outputs bit for bit. Stages share parameters with
the model (deepcopy the model first for independent stages).

Each stage gets an interface inferred by ``infer_interface`` from the example
inputs and from the same inputs with one more row, so dims that follow the
batch size become the symbolic ``batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.fx as fx
from torch import nn

from modpact.errors import SpecError
from modpact.interfaces import Interface, check_compatible, describe, infer_interface

__all__ = ["split", "Split"]


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


class Split(nn.Module):
    """Stages of a split model; calling it chains the stages.

    ``stages`` (``nn.ModuleList`` of ``fx.GraphModule``), ``interfaces`` (one
    ``Interface`` per stage), ``cuts`` (the submodule names, in order).
    """

    def __init__(self, stages: Sequence[fx.GraphModule], interfaces: Sequence[Interface], cuts: Sequence[str]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.interfaces = list(interfaces)
        self.cuts = list(cuts)

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, i: int) -> fx.GraphModule:
        return cast(fx.GraphModule, self.stages[i])  # the stages are GraphModules

    def __iter__(self):
        return iter(self.stages)

    def forward(self, *args: Any) -> Any:
        ins: tuple = args
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            out = stage(*ins)
            if i < last:  # a stage returns a tuple only when several values cross its cut
                ins = out if len(self.interfaces[i].outputs) > 1 else (out,)
        return out

    def edges(self) -> list:
        """``check_compatible`` between consecutive stages (each truthy here by construction)."""
        return [check_compatible(a, b) for a, b in zip(self.interfaces, self.interfaces[1:])]

    def extra_repr(self) -> str:
        return f"cuts={self.cuts}"


def _trace(model: nn.Module, at: Sequence[str]) -> fx.GraphModule:
    names = dict(model.named_modules())
    unknown = [a for a in at if a not in names or a == ""]
    if unknown:
        shown = ", ".join(n for n in names if n)[:400]
        raise SpecError(
            f"split(at={list(at)!r}): no submodule named {', '.join(map(repr, unknown))}; submodules are: {shown}"
        )
    try:
        graph = _Tracer(set(at)).trace(model)
    except Exception as e:  # data-dependent control flow and the like
        raise SpecError(
            f"split: torch.fx could not trace {type(model).__name__}: {e}; cut at submodules whose forward is traceable"
        ) from None
    return fx.GraphModule(model, graph, type(model).__name__)


def _batch_grown(ex: Any) -> Any:
    if isinstance(ex, torch.Tensor):
        return torch.cat([ex, ex[:1]]) if ex.dim() > 0 else ex
    return tuple(_batch_grown(e) for e in ex)


def split(model: nn.Module, at: Sequence[str], example: Any, *, name: str | None = None) -> Split:
    """Cut ``model`` after each submodule named in ``at``; ``example`` is one
    input batch (a tensor or a tuple of tensors, batch on dim 0)."""
    if isinstance(at, str) or not at:
        raise SpecError(f"split(at={at!r}): expected a non-empty list of submodule names")
    if len(set(at)) != len(at):
        raise SpecError(f"split(at={list(at)!r}): a submodule is named twice")
    gm = _trace(model, at)
    nodes = list(gm.graph.nodes)
    calls = {a: [n for n in nodes if n.op == "call_module" and n.target == a] for a in at}
    for a, found in calls.items():
        if len(found) != 1:
            raise SpecError(
                f"split(at=[..., {a!r}, ...]): submodule {a!r} is called {len(found)} times in forward; "
                "a cut needs exactly one call"
            )
    cut_nodes = sorted((calls[a][0] for a in at), key=nodes.index)
    cuts = [n.target for n in cut_nodes]
    # stage of each node: increments after each cut
    stage_of: dict[fx.Node, int] = {}
    s = 0
    for n in nodes:
        stage_of[n] = s if n.op != "output" else len(cuts)
        if n in cut_nodes:
            s += 1
    compute = [n for n in nodes if n.op not in ("placeholder", "get_attr", "output")]
    for i, c in enumerate(cut_nodes):
        if not any(stage_of[n] == i + 1 for n in compute):
            raise SpecError(
                f"split(at=...): the cut after {c.target!r} leaves stage {i + 1} empty; cut before the last operation"
            )
    n_stages = len(cuts) + 1

    def crossing(k: int) -> list[fx.Node]:  # defined in stages <= k, used in stages > k
        return [
            n
            for n in nodes
            if n.op not in ("get_attr", "output") and stage_of[n] <= k and any(stage_of[u] > k for u in n.users)
        ]

    boundaries = [crossing(k) for k in range(n_stages - 1)]
    stages = []
    for k in range(n_stages):
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        if k == 0:
            for n in nodes:
                if n.op == "placeholder":
                    env[n] = g.node_copy(n, env.__getitem__)
        else:
            for n in boundaries[k - 1]:
                env[n] = g.placeholder(n.name)

        def arg(m: fx.Node, env: dict[fx.Node, fx.Node] = env, g: fx.Graph = g) -> fx.Node:
            if m not in env and m.op == "get_attr":
                env[m] = g.node_copy(m, lambda _: None)
            return env[m]

        for n in nodes:
            if stage_of[n] == k and n.op not in ("placeholder", "output", "get_attr"):
                env[n] = g.node_copy(n, arg)
        if k == n_stages - 1:
            out = next(n for n in nodes if n.op == "output")
            g.node_copy(out, arg)
        else:
            outs = [env[n] for n in boundaries[k]]
            g.output(outs[0] if len(outs) == 1 else tuple(outs))
        g.lint()
        stages.append(fx.GraphModule(gm, g, f"{name or type(model).__name__}_stage{k}"))
    interfaces = _interfaces(stages, boundaries, example, name or type(model).__name__)
    return Split(stages, interfaces, cuts)


def _interfaces(stages, boundaries, example, base) -> list[Interface]:
    ex1 = example if isinstance(example, tuple) else (example,)
    ex2 = _batch_grown(ex1)
    out = []
    for k, stage in enumerate(stages):
        try:
            iface = infer_interface(stage, ex1, ex2, name=f"{base}.stage{k}")
        except Exception as e:
            shown = ", ".join(describe(t) for t in ex1 if isinstance(t, torch.Tensor))
            raise SpecError(f"split: stage {k} of {base} failed on the example ({shown}): {e}") from None
        if k < len(boundaries):  # name boundary outputs after the values, like the next stage's inputs
            names = [n.name for n in boundaries[k]]
            iface = Interface(
                iface.name, iface.inputs, dict(zip(names, iface.outputs.values())), description=iface.description
            )
        out.append(iface)
        with torch.no_grad():
            r1, r2 = stage(*ex1), stage(*ex2)
        ex1 = r1 if isinstance(r1, tuple) else (r1,)
        ex2 = r2 if isinstance(r2, tuple) else (r2,)
    return out
