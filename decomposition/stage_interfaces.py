"""The interface of each stage of a split, inferred by ``infer_interface``.

Each stage runs on the example and on the example with one more row, so dims
that follow the batch size become the symbolic ``batch``. Stage 0's inputs
are named after the model's parameters, the values crossing a cut after
``Split.carried`` (the outputs of the stage before and the inputs of the stage
after, so ``check_compatible`` pairs them), the last stage's outputs as
``infer_interface`` names a result. A value crossing a cut is described on
the later stage's side as the earlier stage's output describes it (the same
object crosses; a claim inferred on one side only, such as a 0/1 mask's range
read from the example's inputs, would make the edge fail). A value no spec can describe (a nested
tuple, a ``ModelOutput``, a cache, a Python number) is listed with the tensors
it holds, in the stage's ``undescribed`` list and in its interface's
description, instead of being dropped.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from modpact.interfaces import Interface, describe, infer_interface
from modpact.interfaces.tree import named_tensors

from .graph_cut import Cut, spread
from .graph_stage import GraphStage
from .split_check import example_failed

__all__ = ["stage_interfaces"]


def _grown(x: Any) -> Any:
    """The example with its first row repeated at the end (batch + 1)."""
    return pytree.tree_map(lambda t: torch.cat([t, t[:1]]) if isinstance(t, torch.Tensor) and t.dim() > 0 else t, x)


class _Named(nn.Module):
    """A stage whose values for the next stage come back by name (how ``infer_interface`` names outputs)."""

    def __init__(self, stage: nn.Module, names: Sequence[str]):
        super().__init__()
        self.stage, self.names = stage, list(names)

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(zip(self.names, spread(self.stage(*args, **kwargs), self.names)))


def _by_name(stage: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any] | tuple:
    """Stage 0's example by parameter name (a tuple when the names are not known)."""
    if isinstance(stage, GraphStage):
        names = stage.arg_names
    else:
        params = inspect.signature(stage.forward).parameters.values()
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) < len(args) or (args and kwargs):
        return args
    return {**dict(zip(names, args)), **kwargs}


def _grown_call(cut: Cut, args: tuple, kwargs: dict) -> tuple[tuple[tuple, dict] | None, str]:
    """The example with one more row, if the stages run it (a graph exported with
    a batch size its code fixes does not); else None and why."""
    grown = (_grown(args), _grown(kwargs))
    try:
        with torch.no_grad():
            out = cut.stages[0](*grown[0], **grown[1])
            for k in range(1, len(cut.stages)):
                out = cut.stages[k](*spread(out, cut.carried[k - 1]))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"; the example with one more row fails ({first[:160]}), so every dim is fixed"
    return grown, ""


def stage_interfaces(cut: Cut, args: tuple, kwargs: dict, base: str) -> tuple[list[Interface], list[list[str]]]:
    """One interface per stage, and what each cannot describe."""
    grown, note = _grown_call(cut, args, kwargs)
    calls = [(args, kwargs)] + ([grown] if grown else [])
    interfaces: list[Interface] = []
    undescribed: list[list[str]] = []
    last = len(cut.stages) - 1
    for k, stage in enumerate(cut.stages):
        module = _Named(stage, cut.carried[k]) if k < last else stage
        examples = [_by_name(stage, a, kw) if k == 0 else dict(zip(cut.carried[k - 1], a)) for a, kw in calls]
        try:
            iface = infer_interface(module, *examples, name=f"{base}.stage{k}")
            with torch.no_grad():
                outs = [module(*a, **kw) for a, kw in calls]
        except Exception as e:
            raise example_failed(k, *calls[0], e) from None
        missing = _not_described("inputs", examples[0], iface.inputs) + _not_described(
            "outputs", _output_names(outs[0]), iface.outputs
        )
        if k > 0:  # a crossing value is what the stage before returned: described as its output is
            before = interfaces[k - 1].outputs
            same = [n for n in iface.inputs if n in before]
            notes = [p for p in iface.description.split("; ") if not any(p.startswith(f"inputs.{n}:") for n in same)]
            iface = Interface(
                iface.name,
                {n: before.get(n, s) for n, s in iface.inputs.items()},
                iface.outputs,
                description="; ".join(notes)
                + (f"; inputs as stage {k - 1}'s outputs: {', '.join(same)}" if same else ""),
            )
        if missing or note:
            described = f"{iface.description}{note}" + (f"; not described: {'; '.join(missing)}" if missing else "")
            iface = Interface(iface.name, iface.inputs, iface.outputs, description=described)
        interfaces.append(iface)
        undescribed.append(missing)
        if k < last:
            calls = [(tuple(o.values()), {}) for o in outs]
    return interfaces, undescribed


def _output_names(out: Any) -> dict[str, Any]:
    """A result named as ``infer_interface`` names it."""
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return {f"result{i}": v for i, v in enumerate(out)}
    return {"result": out}


def _not_described(side: str, values: Any, specs: Mapping[str, Any]) -> list[str]:
    """The values (by name) no spec describes, each with the tensors it holds."""
    if not isinstance(values, Mapping):
        values = {f"x{i}": v for i, v in enumerate(values)}
    out = []
    for name, v in values.items():
        if name in specs or v is None:
            continue
        held = [t for t in pytree.tree_leaves(v) if isinstance(t, torch.Tensor)] or [t for _, t in named_tensors(v, "")]
        shown = ", ".join(describe(t) for t in held[:4]) + (", ..." if len(held) > 4 else "")
        what = f"{type(v).__name__} of {len(held)} tensor(s): {shown}" if held else f"{type(v).__name__} {v!r:.40}"
        out.append(f"{side}.{name} ({what})")
    return out
