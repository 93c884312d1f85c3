"""Which checks, passing on a batched group of generated inputs as a whole, pass on each input.

Batched validation concatenates a group of generated inputs along the batch dim
and runs one forward. Checking the concatenated inputs and output once instead
of each input's slice is sound only for checks whose verdict on a concatenation
along dim 0 implies the same verdict on every slice of it:

- the interface (shape, dtype, device, range, finite, indices, labels): each
  holds element by element or row by row, and the group's inputs share every
  dim but the batch dim; a spec's ``simplex`` along dim 0 (the batch dim) is
  the exception: rows summing to 1 across the group say nothing of each input;
- ``finite``, ``in_range``, ``nonnegative``: element by element;
- ``simplex`` along a dim other than dim 0;
- ``norm_at_most`` with ``p >= 0`` (or inf): a slice's norm is at most the norm
  of the whole, along any dim.

Preconditions (``requires``) are not: one input they reject would reject the
group. Conditions with a domain (inferred envelopes) are applied per input, and
any other condition may read the group as a whole. For these the group is
checked input by input, as before. A group whose whole check fails is checked
input by input too, so a failure names one input and says what it was.
"""

from __future__ import annotations

from typing import Any

import torch

from modpact.contracts.condition import Condition
from modpact.contracts.conditions import Finite, InRange, Nonnegative, NormAtMost, Simplex
from modpact.contracts.target import Target
from modpact.interfaces.spec import TensorSpec

__all__ = ["whole_checkable", "whole_safe_now"]

_ELEMENTWISE = (Finite, InRange, Nonnegative)


def whole_checkable(target: Target) -> bool:
    """Whether a group's checks may be decided on the group as a whole (before any call)."""
    g = target.guard
    if g.requires or g.needs_call or g.needs_old:
        return False
    iface = target.interface
    for spec in list(iface.inputs.values()) + list(iface.outputs.values()):
        if not isinstance(spec, TensorSpec) or _simplex_may_be_dim0(spec):
            return False
    return all(_condition_ok(c) for c in g.ensures)


def _simplex_may_be_dim0(spec: TensorSpec) -> bool:
    if spec.simplex is None:
        return False
    if any(d.variadic for d in spec.shape):
        return True  # the rank is not known before the call
    return spec.simplex % max(len(spec.shape), 1) == 0


def _condition_ok(c: Condition) -> bool:
    if c.domain is not None:
        return False
    if type(c) in _ELEMENTWISE or type(c) is Simplex:  # Simplex's dim is checked on the call's tensors
        return True
    if type(c) is NormAtMost:
        return c.p >= 0  # inf included; -inf (the smallest entry) is not monotone
    return False


def whole_safe_now(target: Target, env: dict[str, Any]) -> bool:
    """The checks that depend on the tensors of this call: a ``simplex`` condition whose
    dim is dim 0 of a tensor it reads sums across the group, so it is not decided whole."""
    for c in target.guard.ensures:
        if type(c) is Simplex:
            for n in c.reads:
                v = env.get(n)
                ts = v if isinstance(v, (tuple, list)) else [v]
                for t in ts:
                    if not isinstance(t, torch.Tensor) or t.ndim == 0 or c.dim % t.ndim == 0:
                        return False
    return True
