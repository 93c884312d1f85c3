"""Which modules carry a non-finite value from their input to their output.

Two facts the Monitor uses to skip checks that cannot find anything new:

* ``FINITE_PRESERVING``: the output is finite whenever the input is, so a
  default ``finite(output)`` check is skipped when every input came from a
  module this Monitor already checked.
* ``propagates_non_finite(mod)``: a non-finite element anywhere in the input
  always makes some output element non-finite (every input element reaches
  an output element through +, * or a mean; inf * 0 is NaN). A default
  ``finite(output)`` check on a tensor consumed by such a module is covered by
  the check on that module's output, so it can be elided. ReLU (-inf -> 0),
  sigmoid, tanh, softmax, max pooling and strided convolutions (which skip
  input positions) absorb values and do not propagate.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "FINITE_PRESERVING", "propagates_non_finite"]

# elementwise activations: finite in, finite out (shared with scope.py's list of mode-free modules)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh)

FINITE_PRESERVING = (
    *ACTIVATIONS,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)

_PROPAGATING = (
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def propagates_non_finite(mod: nn.Module) -> bool:
    """Whether a non-finite element anywhere in ``mod``'s input always makes
    some element of its output non-finite (checked per instance: a subclass
    that overrides ``forward`` is not trusted)."""
    for base in _PROPAGATING + _DROPOUT + _CONV + (nn.LeakyReLU,):
        if isinstance(mod, base):
            if type(mod).forward is not base.forward:
                return False
            if isinstance(mod, _CONV):  # base is one of them
                return all(s == 1 for s in mod.stride) and all(d == 1 for d in mod.dilation)
            if isinstance(mod, _DROPOUT):
                return mod.p < 1
            if isinstance(mod, nn.LeakyReLU):
                return mod.negative_slope > 0
            return True
    return False
