"""The ``torch.export`` way of ``split``, for models ``torch.fx`` cannot trace
(Hugging Face models, code that reads its inputs' sizes, keyword calls).

The model is exported once (``export_trace.py``: non-strict, every input dim
``Dim.AUTO``), which also tells what graph values each named submodule
returned and in what structure. The graph (``ExportedProgram.module()``,
parameters shared with the model) is cut after the last operation run inside
each named submodule (each node's ``nn_module_stack`` says where it ran).
What crosses a cut: the cut submodule's output in its structure (a tensor,
``(out, (h, c))``, a dict, a ``ModelOutput``), then every other value the
rest of the graph uses (a skip connection, an attention mask built before the
cut, a cache's tensors). A graph size that crosses (a ``sym_size`` read before
the cut, or arithmetic on such sizes) is computed again after the cut from a
tensor that crosses with that size, when there is one; otherwise it crosses as
a Python int. Each stage is a ``GraphStage`` (``graph_stage.py``).

The stages run the ATen operations the model ran when it was exported, in
the same order, so chaining them reproduces the model bit for bit where eager
PyTorch runs the same kernels (``split`` checks it on the example). What
export cannot follow, this way cannot either: data-dependent control flow (a
Python branch on a tensor's values), an output type pytree cannot flatten.
The graph is the one traced: the model's mode (train/eval), the grad mode
(``nn.MultiheadAttention`` picks its fused kernel under ``torch.no_grad``),
the device and the branches taken on the example's structure are fixed in it.
"""

from __future__ import annotations

import inspect
import keyword
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch import nn

from .export_trace import NodeRef, Output, export_model
from .graph_cut import CannotCut, Cut, Refused, assign_stages, check_not_empty, crossing, stage_graph
from .graph_stage import GraphStage

__all__ = ["export_cut"]

_SIZE_OPS = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod, operator.neg}


@dataclass
class _Item:
    """One value a stage hands to the next: a cut submodule's output in its
    structure (``spec``), or a single graph value (``spec`` None)."""

    name: str
    leaves: list[Any]  # graph nodes; constants too in a cut submodule's output
    spec: pytree.TreeSpec | None = None

    def tree(self) -> pytree.TreeSpec:
        return self.spec if self.spec is not None else pytree.treespec_leaf()


@dataclass
class _Boundary:
    """What crosses one cut (``items``, in order) and the graph sizes computed
    again after it (``sizes``: how, in an order that computes what each needs first)."""

    items: list[_Item]
    sizes: dict[fx.Node, tuple[fx.Node, int] | None]


def export_cut(model: nn.Module, at: Sequence[str], args: tuple, kwargs: dict, base: str) -> Cut:
    """Stages of ``model`` cut after each submodule in ``at`` (execution order)."""
    gm, calls = export_model(model, args, kwargs, at)
    for a, found in calls.items():
        if len(found) != 1:
            raise Refused(f"submodule {a!r} is called {len(found)} times in forward; a cut needs exactly one call")
    nodes = list(gm.graph.nodes)
    leaves = {a: _graph_leaves(a, found[0], nodes) for a, found in calls.items()}
    index = {n: i for i, n in enumerate(nodes)}
    ends = {a: max([_last_node_in(nodes, a)] + [index[n] for n in leaves[a] if isinstance(n, fx.Node)]) for a in at}
    cuts = sorted(at, key=ends.__getitem__)
    stage_of = assign_stages(nodes, [ends[c] for c in cuts])
    check_not_empty(nodes, stage_of, cuts)
    boundaries = [_boundary(c, leaves[c], calls[c][0].spec, crossing(nodes, stage_of, k)) for k, c in enumerate(cuts)]
    stages: list[nn.Module] = []
    for k in range(len(cuts) + 1):
        before = boundaries[k - 1] if k else None
        after = boundaries[k] if k < len(cuts) else None
        stages.append(_stage(model, gm, nodes, stage_of, k, before, after, args, kwargs, base))
    return Cut(stages, [[i.name for i in b.items] for b in boundaries], cuts, "export")


def _graph_leaves(path: str, out: Output, nodes: Sequence[fx.Node]) -> list[Any]:
    by_name = {n.name: n for n in nodes}
    missing = [x.name for x in out.leaves if isinstance(x, NodeRef) and x.name not in by_name]
    if missing:
        raise CannotCut(f"torch.export: the output of {path!r} ({', '.join(missing)}) is not in the exported graph")
    return [by_name[x.name] if isinstance(x, NodeRef) else x for x in out.leaves]


def _last_node_in(nodes: Sequence[fx.Node], path: str) -> int:
    """Index of the last node run inside submodule ``path`` (or -1)."""
    last = -1
    for i, n in enumerate(nodes):
        stack = n.meta.get("nn_module_stack") or {}
        if any(v[0] == path for v in stack.values()):
            last = i
    return last


def _identifier(path: str, taken: set[str]) -> str:
    """A parameter name for a cut submodule's output, as fx names a call
    (``encoder.layers.0`` -> ``encoder_layers_0``, ``1`` -> ``_1``)."""
    name = re.sub(r"\W", "_", path)
    name = f"_{name}" if name[0].isdigit() else name
    while name in taken or keyword.iskeyword(name):
        name += "_out"
    return name


def _boundary(path: str, leaves: list[Any], spec: pytree.TreeSpec, across: list[fx.Node]) -> _Boundary:
    """What crosses the cut after submodule ``path``: its output (``leaves`` in
    structure ``spec``), then the other values used after the cut (``across``)."""
    others = [n for n in across if not any(n is x for x in leaves)]
    tensors = [n for n in leaves + others if isinstance(n, fx.Node) and _is_tensor(n)]
    sizes: dict[fx.Node, tuple[fx.Node, int] | None] = {}
    kept = [n for n in others if not _size_plan(n, tensors, sizes)]
    cut_output = _Item(_identifier(path, {n.name for n in kept}), leaves, spec)
    return _Boundary([cut_output] + [_Item(n.name, [n]) for n in kept], sizes)


def _is_tensor(n: fx.Node) -> bool:
    return isinstance(n.meta.get("val"), torch.Tensor)


def _size_plan(n: fx.Node, tensors: Sequence[fx.Node], plan: dict[fx.Node, tuple[fx.Node, int] | None]) -> bool:
    """Can the graph size ``n`` be computed again after the cut, from ``tensors``?
    If so ``plan`` gets how (after what it needs): ``(tensor, dim)`` reads a size
    equal to it, ``None`` repeats its arithmetic on sizes computed so."""
    if n in plan:
        return True
    v = n.meta.get("val")
    if not isinstance(v, torch.SymInt):
        return False
    for t in tensors:
        shape = t.meta["val"].shape
        for d, size in enumerate(shape):
            if isinstance(size, torch.SymInt) and size.node.expr == v.node.expr:
                plan[n] = (t, d)
                return True
    if n.op == "call_function" and n.target in _SIZE_OPS:
        if all(_size_plan(a, tensors, plan) for a in n.all_input_nodes):
            plan[n] = None
            return True
    return False


def _stage(
    model: nn.Module,
    gm: fx.GraphModule,
    nodes: list[fx.Node],
    stage_of: dict[fx.Node, int],
    k: int,
    before: _Boundary | None,
    after: _Boundary | None,
    args: tuple,
    kwargs: dict,
    base: str,
) -> GraphStage:
    """Stage ``k``: takes the model's inputs (``before`` None) or what crosses
    ``before``, returns the model's output (``after`` None) or what crosses ``after``."""
    if before is None:
        sig, arg_names, kw_names = _model_call(model, args, kwargs)
        in_spec = _spec(gm, "_in_spec")
        if pytree.tree_structure((args, kwargs)) != in_spec:
            raise CannotCut("torch.export changed the structure of the example's inputs")
        inputs: list[fx.Node | None] = []
        input_names = None
    else:
        items = before.items
        sig = inspect.Signature([inspect.Parameter(i.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in items])
        arg_names, kw_names = [i.name for i in items], []
        in_spec = pytree.treespec_tuple([pytree.treespec_tuple([i.tree() for i in items]), pytree.treespec_dict()])
        inputs = [x if isinstance(x, fx.Node) else None for i in items for x in i.leaves]
        input_names = [f"{i.name}_{j}" if i.spec else i.name for i in items for j in range(len(i.leaves))]
    if after is None:
        outputs, out_spec = None, _spec(gm, "_out_spec")
    else:
        outputs = tuple(x for i in after.items for x in i.leaves)
        trees = [i.tree() for i in after.items]
        out_spec = trees[0] if len(trees) == 1 else pytree.treespec_tuple(trees)
    sizes = before.sizes if before else {}

    def derived(g: fx.Graph, env: dict[fx.Node, fx.Node]) -> None:
        for n, src in sizes.items():
            if src is None:
                env[n] = g.node_copy(n, env.__getitem__)
            else:
                env[n] = g.call_function(torch.ops.aten.sym_size.int, (env[src[0]], src[1]))
                env[n].meta = dict(n.meta)

    graph = stage_graph(
        gm, nodes, stage_of, k, inputs, outputs, f"{base}_stage{k}", input_names=input_names, derived=derived
    )
    name = f"{base}.stage{k}"
    return GraphStage(graph, sig, arg_names, kw_names, in_spec, out_spec, name, traced_training=model.training)


def _spec(gm: fx.GraphModule, attr: str) -> pytree.TreeSpec:
    """The input or output structure ``ExportedProgram.module()`` keeps on the module."""
    spec = gm.__dict__.get(attr)
    if not isinstance(spec, pytree.TreeSpec):
        raise CannotCut(f"torch.export: the exported module has no {attr}")
    return spec


def _model_call(model: nn.Module, args: tuple, kwargs: dict) -> tuple[inspect.Signature, list[str], list[str]]:
    """The model's signature, and the names the example gives by position and by keyword."""
    sig = inspect.signature(model.forward)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p.name for p in sig.parameters.values() if p.kind in kinds]
    if len(args) > len(positional):
        raise CannotCut(f"{type(model).__name__}.forward takes *args; give the example by keyword")
    return sig, positional[: len(args)], list(kwargs)
