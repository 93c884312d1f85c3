"""Exporting a model for ``split``, and reading, while it is exported, what
each named submodule returned.

``torch.export.export(..., strict=False)`` runs the model's own Python code on
fake tensors and records every ATen operation it dispatches. Every dim of
every input tensor is ``Dim.AUTO``, so other batch sizes and sequence lengths
run where the model's code allows (a dim it specializes, like the sequence
length of an ``nn.LSTM``, stays fixed, and the exported graph's guard says
so). A forward hook on each named submodule records, during the trace, the
graph node behind each tensor of its output (``proxy_tensor.get_proxy_slot``,
the lookup torch's own tracer uses) and the output's structure.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch import nn
from torch.export import Dim
from torch.fx.experimental import proxy_tensor

from .graph_cut import CannotCut

__all__ = ["Output", "NodeRef", "export_model"]


@dataclass(frozen=True)
class NodeRef:
    """The exported graph's node (by name) that computed one tensor."""

    name: str


@dataclass
class Output:
    """What one call of a cut submodule returned: a ``NodeRef`` or a constant
    (no tensor: None, a number, a string) per leaf, and the structure."""

    leaves: list[Any]
    spec: pytree.TreeSpec


class _Outputs:
    """Forward hooks that record each call's ``Output`` of the named submodules
    while the model is exported."""

    def __init__(self, model: nn.Module, at: Sequence[str]):
        self.calls: dict[str, list[tuple[int, Output]]] = {a: [] for a in at}
        self.problems: list[str] = []
        self.handles = [model.get_submodule(a).register_forward_hook(self._hook(a)) for a in at]

    def _hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            mode = proxy_tensor.get_proxy_mode()
            if mode is None:  # a call outside the trace
                return
            leaves, spec = pytree.tree_flatten(output)
            refs: list[Any] = []
            for leaf in leaves:
                if isinstance(leaf, torch.Tensor):
                    slot = proxy_tensor.get_proxy_slot(leaf, mode.tracer, None)
                    if slot is None:
                        self.problems.append(f"{path!r} returned a tensor the trace does not know")
                        return
                    refs.append(NodeRef(slot.proxy.node.name))
                elif leaf is None or isinstance(leaf, (bool, int, float, str)):
                    refs.append(leaf)
                else:
                    self.problems.append(
                        f"{path!r} returned a {type(leaf).__name__}, which cannot be carried across a cut "
                        "(register its type with torch.utils._pytree to carry the tensors it holds)"
                    )
                    return
            self.calls[path].append((id(mode.tracer), Output(refs, spec)))

        return hook

    def of_last_trace(self) -> dict[str, list[Output]]:
        """Each submodule's calls in the last trace (export may trace more than once)."""
        last = [t for calls in self.calls.values() for t, _ in calls]
        tracer = last[-1] if last else None
        return {a: [o for t, o in calls if t == tracer] for a, calls in self.calls.items()}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _auto(x: Any) -> Any:
    return dict.fromkeys(range(x.dim()), Dim.AUTO) if isinstance(x, torch.Tensor) else None


def _dynamic_shapes(model: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Every dim of every input tensor ``Dim.AUTO``, keyed like ``forward``'s parameters."""
    sig = inspect.signature(model.forward)
    shapes: dict[str, Any] = {}
    for name, value in sig.bind(*args, **kwargs).arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            shapes[name] = {k: pytree.tree_map(_auto, v) for k, v in value.items()}
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            shapes[name] = tuple(pytree.tree_map(_auto, v) for v in value)
        else:
            shapes[name] = pytree.tree_map(_auto, value)
    return shapes


def _register_hf_caches(model: nn.Module) -> None:
    """Hugging Face caches (the ``DynamicCache`` in GPT-2's output) must be pytree
    nodes to be exported; this registers them as transformers' own export helpers
    do (once per process). Nothing happens for other models."""
    if not type(model).__module__.startswith("transformers."):
        return
    for module, fn in (
        ("transformers.exporters.exporter_dynamo", "register_cache_pytrees_for_model"),
        ("transformers.integrations.executorch", "register_dynamic_cache_export_support"),
    ):
        try:
            register = getattr(importlib.import_module(module), fn)
        except (ImportError, AttributeError):
            continue
        register(*([model] if fn == "register_cache_pytrees_for_model" else []))
        return


def why(e: Exception) -> str:
    """torch.export's long error in one line: its first line, and where in the model's code."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if "data-dependent" in text:
        first = f"data-dependent control flow ({first})"
    where = re.search(r'The following call raised this error:\n\s*File "([^"]+)", line (\d+), in (\w+)\n\s*(.+)', text)
    if where:
        file, line, fn, code = where.groups()
        first += f" at {file.rsplit('/', 1)[-1]}:{line} in {fn}: {code.strip()}"
    return first[:500]


def export_model(
    model: nn.Module, args: tuple, kwargs: dict, at: Sequence[str]
) -> tuple[fx.GraphModule, dict[str, list[Output]]]:
    """The exported model (``ExportedProgram.module()``: parameters shared with
    ``model``) and, for each submodule in ``at``, what each of its calls returned."""
    _register_hf_caches(model)
    hooks = _Outputs(model, at)
    printed = io.StringIO()  # torch.export prints the partial graph of a failed export to stderr
    try:
        shapes = _dynamic_shapes(model, args, kwargs)
        with contextlib.redirect_stderr(printed):
            ep = torch.export.export(model, args, kwargs, dynamic_shapes=shapes, strict=False)
    except Exception as e:
        raise CannotCut(f"torch.export could not export {type(model).__name__}: {why(e)}") from None
    finally:
        hooks.remove()
    sys.stderr.write(printed.getvalue())  # what a successful export printed (warnings) is kept
    if hooks.problems:
        raise CannotCut(f"torch.export: {hooks.problems[0]}")
    return ep.module(), hooks.of_last_trace()
