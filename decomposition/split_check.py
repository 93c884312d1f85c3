"""Does a split reproduce its model? Chaining the stages on the example must give
what the model gives, ``torch.equal`` on every tensor of the output (caches
included), from the same random state (dropout in training mode draws the
same masks). ``split`` runs this on each way's stages before it takes them.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from modpact.interfaces import describe
from modpact.interfaces.tree import named_tensors

from .graph_cut import Cut, Refused, spread

__all__ = ["differs", "example_failed", "rng_kept"]


def example_failed(k: int, args: tuple, kwargs: dict, error: Exception) -> Refused:
    """The refusal for a stage that cannot run the example (the example does not fit the model)."""
    shown = ", ".join(describe(t) for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor))
    return Refused(f"stage {k} failed on the example ({shown}): {error}")


def rng_kept(args: tuple, kwargs: dict) -> contextlib.AbstractContextManager:
    """The random state (CPU, and the CUDA devices of the example's tensors) put back on exit."""
    leaves = pytree.tree_leaves((args, kwargs))
    cuda = sorted({t.device.index or 0 for t in leaves if isinstance(t, torch.Tensor) and t.is_cuda})
    return torch.random.fork_rng(devices=cuda)


def _run(fn: Any, args: tuple, kwargs: dict) -> Any:
    """``fn`` on the example from a fixed random state (the same dropout masks for the model and
    its stages), the caller's random state left as it was."""
    with rng_kept(args, kwargs):
        torch.manual_seed(0)
        return fn(*args, **kwargs)


def differs(model: nn.Module, cut: Cut, args: tuple, kwargs: dict, base: str) -> str | None:
    """Why chaining the stages does not reproduce the model on the example (None: it does, bit for bit)."""

    def chain(*a: Any, **kw: Any) -> Any:
        out = a
        for k, stage in enumerate(cut.stages):
            try:
                out = stage(*a, **kw) if k == 0 else stage(*spread(out, cut.carried[k - 1]))
            except Exception as e:
                raise _StageFailed(k, e) from None
        return out

    try:
        got = _run(chain, args, kwargs)
    except _StageFailed as f:
        try:
            _run(model, args, kwargs)
        except Exception:  # the example does not fit the model: say so now
            raise example_failed(f.k, args, kwargs, f.error) from None
        return f"fail on the example: stage {f.k}: {f.error}"
    want = _run(model, args, kwargs)
    return _difference(got, want)


class _StageFailed(Exception):
    def __init__(self, k: int, error: Exception):
        super().__init__(k, error)
        self.k, self.error = k, error


def _tensors(obj: Any) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of a result: pytree's leaves (caches included where registered), and the
    tensors modpact's walk finds in a leaf pytree does not open; named by leaf number."""
    out: list[tuple[str, torch.Tensor]] = []
    for i, leaf in enumerate(pytree.tree_leaves(obj)):
        out += named_tensors(leaf, f"output leaf {i}")
    return out


def _difference(got: Any, want: Any) -> str | None:
    if pytree.tree_structure(got) != pytree.tree_structure(want):
        return f"return a {type(got).__name__} where the model returns a {type(want).__name__} of another structure"
    a, b = _tensors(got), _tensors(want)
    if len(a) != len(b):
        return f"return {len(a)} tensors where the model returns {len(b)}"
    for (name, x), (_, y) in zip(a, b):
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"differ from the model on the example: {name} is {describe(x)}, not {describe(y)}"
        if not torch.equal(x, y):
            diff = (x.double() - y.double()).abs().max().item()
            return f"differ from the model on the example: {name} ({describe(x)}) differs by up to {diff:.3g}"
    return None
