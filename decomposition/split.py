"""Structural split: cut a model into sequential stages after named submodules.

Two ways of getting a graph to cut, tried in this order:

1. ``torch.fx`` symbolic tracing, the named submodules kept as leaves
   (``fx_cut.py``): stages are ``fx.GraphModule``s that call the model's own
   submodules. Works on models whose ``forward`` fx can follow.
2. ``torch.export`` (non-strict, every input dim ``Dim.AUTO``;
   ``export_cut.py``), when fx cannot trace the model (Hugging Face models,
   code that reads its inputs' sizes or takes keyword-only inputs) or its
   stages do not reproduce the model: stages are ``GraphStage``s running the
   ATen operations the model ran.

Either way the graph is cut after each named submodule, in execution order.
Every value that crosses a cut becomes an output of the stage before and an
input of the stage after: the cut submodule's output, in the structure it
returned (a tensor, an LSTM's ``(out, (h, c))``, a dict, a ``ModelOutput``),
and any other value the rest of the model uses (a skip connection, an
attention mask built before the cut). A stage returns one value as itself
and several as a tuple; ``Split.carried[k]`` names them. The stages run the
model's operations in the model's order, so chaining them reproduces its
outputs bit for bit; ``split`` checks that on the example (``torch.equal``
on every tensor of the output) before it returns: when the fx stages fail
the check the export way is tried, and when no way passes ``SpecError``
gives every reason.

Each stage gets an interface inferred by ``infer_interface`` from the example
and from the same example with one more row, so dims that follow the batch
size become the symbolic ``batch``. A value an interface cannot describe (a
nested tuple, a cache object, a Python number) is listed in
``Split.undescribed[k]`` and in the interface's description, never dropped
silently. The model's buffers and the random state are put back after the
example runs.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from modpact.errors import SpecError
from modpact.interfaces import Interface, check_compatible

from .export_cut import export_cut
from .fx_cut import fx_cut
from .graph_cut import CannotCut, Cut, Refused, spread
from .split_check import differs, rng_kept
from .stage_interfaces import stage_interfaces

__all__ = ["split", "Split"]


class Split(nn.Module):
    """Stages of a split model; calling it chains the stages.

    ``stages`` (``nn.ModuleList``: ``fx.GraphModule``s, or ``GraphStage``s when
    ``method == "export"``), ``interfaces`` (one ``Interface`` per stage),
    ``cuts`` (the submodule names, in execution order), ``carried`` (for each
    cut, the names of the values the stage before hands to the stage after),
    ``method`` (``"fx"`` or ``"export"``: how the graph was obtained) and
    ``undescribed`` (for each stage, the inputs and outputs its interface does
    not describe). ``training`` is the model's mode at the split; fx stages
    hold the model's own submodules, so ``train()``/``eval()`` sets theirs,
    while exported stages refuse a call in another mode than the traced one.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        interfaces: Sequence[Interface],
        cuts: Sequence[str],
        *,
        carried: Sequence[Sequence[str]] | None = None,
        method: Literal["fx", "export"] = "fx",
        undescribed: Sequence[Sequence[str]] | None = None,
    ):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.interfaces = list(interfaces)
        self.cuts = list(cuts)
        self.carried = [list(c) for c in carried] if carried is not None else [list(i.outputs) for i in interfaces[:-1]]
        self.method = method
        self.undescribed = [list(u) for u in undescribed] if undescribed is not None else [[] for _ in stages]

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, i: int) -> nn.Module:
        return self.stages[i]

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.stages)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.stages[0](*args, **kwargs)
        for k in range(1, len(self.stages)):
            out = self.stages[k](*spread(out, self.carried[k - 1]))
        return out

    def edges(self) -> list:
        """``check_compatible`` between consecutive stages (each truthy here by construction)."""
        return [check_compatible(a, b) for a, b in zip(self.interfaces, self.interfaces[1:])]

    def extra_repr(self) -> str:
        return f"cuts={self.cuts}, method={self.method!r}"


def _check_at(model: nn.Module, at: Sequence[str]) -> None:
    model_name = type(model).__name__
    if isinstance(at, str) or not isinstance(at, Sequence) or not at or not all(isinstance(a, str) for a in at):
        raise SpecError(f"split(at={at!r}): expected a non-empty list of names of submodules of {model_name}")
    twice = sorted({a for a in at if at.count(a) > 1})
    if twice:
        raise SpecError(f"split(at={list(at)!r}): {', '.join(map(repr, twice))} named twice; name each cut once")
    names = [n for n, _ in model.named_modules() if n]
    unknown = [a for a in at if a not in names]
    if unknown:
        raise SpecError(f"split(at={list(at)!r}): {model_name} has {'; '.join(_no_such(a, names) for a in unknown)}")
    for a in at:
        for b in at:
            if b.startswith(a + "."):
                raise SpecError(
                    f"split(at={list(at)!r}): in {model_name}, {b!r} is inside {a!r}; cut after one of them"
                )


def _no_such(name: str, names: Sequence[str]) -> str:
    """``no submodule named 'x'`` and the closest names (all of them when there are few)."""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"no submodule named {name!r}; did you mean {', '.join(map(repr, close))}?"
    shown = ", ".join(names)
    shown = shown if len(shown) <= 300 else shown[:300].rsplit(", ", 1)[0] + f", ... ({len(names)} in all)"
    return f"no submodule named {name!r}; submodules are: {shown}"


def _call_of(example: Any) -> tuple[tuple, dict]:
    """The example as a call: a tuple's items by position, a dict's (or a ``BatchEncoding``'s)
    items by keyword, anything else (a tensor, a list) as the one argument."""
    if isinstance(example, Mapping):
        return (), dict(example)
    if isinstance(example, tuple):
        return example, {}
    return (example,), {}


@contextlib.contextmanager
def _buffers_kept(model: nn.Module) -> Iterator[None]:
    """Running the example must not move a BatchNorm's running statistics."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)


def split(model: nn.Module, at: Sequence[str], example: Any, *, name: str | None = None) -> Split:
    """Cut ``model`` after each submodule named in ``at``.

    ``example`` is one call's input: a tensor or a tuple of them (``model(*example)``)
    or a dict of keyword arguments (``model(**example)``, e.g. a Hugging Face batch),
    batch on dim 0. The ``torch.fx`` way is tried first, then ``torch.export``
    (see the module docstring); ``SpecError`` names the model, the cuts and every
    reason when neither gives stages that reproduce the model on the example."""
    _check_at(model, at)
    args, kwargs = _call_of(example)
    base = name or type(model).__name__
    try:
        with _buffers_kept(model), rng_kept(args, kwargs):
            cut = _cut(model, at, args, kwargs, base)
            interfaces, undescribed = stage_interfaces(cut, args, kwargs, base)
    except Refused as e:
        raise SpecError(f"split(at={list(at)!r}): cannot cut {type(model).__name__}: {e.reason}") from None
    parts = Split(cut.stages, interfaces, cut.cuts, carried=cut.carried, method=cut.method, undescribed=undescribed)
    parts.training = model.training  # the model's mode; train() would recurse into the model's own submodules
    return parts


def _cut(model: nn.Module, at: Sequence[str], args: tuple, kwargs: dict, base: str) -> Cut:
    reasons = []
    for way in ("fx", "export"):
        try:
            cut = fx_cut(model, at, base) if way == "fx" else export_cut(model, at, args, kwargs, base)
        except CannotCut as e:
            reasons.append(e.reason)
            continue
        problem = differs(model, cut, args, kwargs, base)
        if problem is None:
            return cut
        if way == "export" and not torch.is_grad_enabled():
            problem += " (under torch.no_grad eager modules such as nn.MultiheadAttention may run fused kernels "
            problem += "the traced graph does not: split with gradients enabled)"
        reasons.append(f"the torch.{way} stages {problem}")
    raise SpecError(
        f"split(at={list(at)!r}): cannot cut {type(model).__name__}: {'; '.join(reasons)}; "
        "cut at submodules whose forward torch.fx or torch.export can follow "
        "(no Python branch on a tensor's values, no state the forward changes)"
    )
