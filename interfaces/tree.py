"""The tensors inside a value as it is passed between modules.

Arguments and results are rarely a bare tensor: tuples (an LSTM's
``(out, (h, c))``), dicts and mapping-like batches (``{"input_ids": ...}``,
Hugging Face ``BatchEncoding``), dataclasses and ``ModelOutput`` objects.
``named_tensors`` walks all of them in a fixed order and names each tensor by
its place (``inputs[0]``, ``output.logits``, ``output[1][0]``); ``tensors``
is the same walk without names, for hot paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["named_tensors", "tensors", "tensors_of_call", "input_names", "named_numbers"]

_Tensor = torch.Tensor


def named_tensors(obj: Any, prefix: str) -> list[tuple[str, torch.Tensor]]:
    """Every tensor in ``obj`` with its name, in order; fast for a bare tensor
    and a one-tensor tuple."""
    if isinstance(obj, _Tensor):
        return [(prefix, obj)]
    if type(obj) is tuple and len(obj) == 1 and isinstance(obj[0], _Tensor):
        return [(f"{prefix}[0]", obj[0])]
    return list(_walk(obj, prefix))


def tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor in ``obj``, in the order of ``named_tensors`` (hot path)."""
    if type(obj) is tuple:
        if not obj:
            return []
        if len(obj) == 1 and type(obj[0]) is _Tensor:
            return [obj[0]]
    elif type(obj) is _Tensor:
        return [obj]
    return [t for _, t in _walk(obj, "")]


def tensors_of_call(args: tuple, kwargs: Mapping[str, Any] | None) -> list[torch.Tensor]:
    """The tensors a call was given, positional first, then keywords."""
    items = tensors(args)
    if kwargs:
        items = items + tensors(kwargs)
    return items


def input_names(args: tuple, kwargs: Mapping[str, Any] | None) -> list[tuple[str, torch.Tensor]]:
    """The tensors a call was given, named ``inputs[0]`` (positional) and
    ``inputs.name`` (keyword)."""
    out = named_tensors(args, "inputs")
    if kwargs:
        out = out + named_tensors(kwargs, "inputs")
    return out


def named_numbers(obj: Any, prefix: str) -> list[tuple[str, float | complex]]:
    """The Python floats and complex numbers in ``obj`` (not in tensors), named
    like ``named_tensors`` names tensors."""
    out: list[tuple[str, float | complex]] = []
    _numbers(obj, prefix, out)
    return out


def _numbers(obj: Any, prefix: str, out: list) -> None:
    if isinstance(obj, (float, complex)):
        out.append((prefix, obj))
    elif isinstance(obj, (_Tensor, str, bytes, int)):
        return
    elif isinstance(obj, (tuple, list)):
        for i, x in enumerate(obj):
            _numbers(x, f"{prefix}[{i}]", out)
    elif isinstance(obj, Mapping):
        for k, x in obj.items():
            _numbers(x, f"{prefix}.{k}", out)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _numbers(getattr(obj, f.name, None), f"{prefix}.{f.name}", out)


def _walk(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, _Tensor):
        yield prefix, obj
    elif isinstance(obj, (tuple, list)):
        for i, x in enumerate(obj):
            yield from _walk(x, f"{prefix}[{i}]")
    elif isinstance(obj, Mapping):  # dicts, ModelOutput, BatchEncoding
        for k, x in obj.items():
            yield from _walk(x, f"{prefix}.{k}")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name, None), f"{prefix}.{f.name}")
