"""``modpact.strategies``: Hypothesis strategies built from specs and interfaces
(the same objects as ``modpact.interfaces.strategies``). Importing this module
does not import Hypothesis; building a strategy does.

    import modpact as mp
    mp.strategies.tensors(mp.TensorSpec("batch 10", dtype="float32", range=(0, 1)))
"""

from modpact.interfaces.strategies import (
    INSTALL_HINT,
    MAX_SIDE,
    HypothesisMissing,
    dim_sizes,
    interface_inputs,
    require_hypothesis,
    tensors,
)

__all__ = [
    "tensors",
    "interface_inputs",
    "dim_sizes",
    "require_hypothesis",
    "HypothesisMissing",
    "INSTALL_HINT",
    "MAX_SIDE",
]
