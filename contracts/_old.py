"""``old``: cheap snapshots of the arguments, taken before the call.

Tensors are not copied: ``old.x`` is a :class:`TensorSnapshot` with the
tensor's ``_version`` (bumped by every in-place op), shape, dtype and device.
Copies happen only when asked for with ``snapshot={"x": lambda x: x.clone()}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from modpact.interfaces.summary import dtype_abbrev

__all__ = ["Old", "TensorSnapshot"]


class TensorSnapshot:
    __slots__ = ("_version", "shape", "dtype", "device", "data_ptr")

    def __init__(self, t: torch.Tensor):
        self._version = t._version
        self.shape = t.shape
        self.dtype = t.dtype
        self.device = t.device
        self.data_ptr = t.data_ptr() if t.device.type != "meta" else 0

    def __repr__(self) -> str:
        return f"TensorSnapshot({describe_meta(self)} v{self._version})"


def describe_meta(s: TensorSnapshot) -> str:
    dev = "" if s.device.type == "cpu" else f" {s.device}"
    return f"{dtype_abbrev(s.dtype)}[{','.join(map(str, s.shape))}]{dev}"


class Old:
    """Attribute access to the snapshots: ``old.x._version``, ``old.x.shape``,
    ``old.<name>`` for each ``snapshot=`` entry."""

    def __init__(self, env: Mapping[str, Any], names: tuple[str, ...], snapshot: Mapping[str, Any] | None):
        for n in names:
            v = env.get(n)
            object.__setattr__(self, n, TensorSnapshot(v) if isinstance(v, torch.Tensor) else v)
        if snapshot:
            for name, cond in snapshot.items():
                object.__setattr__(self, name, cond._call(env))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("old is read-only")

    def __repr__(self) -> str:
        return "old(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"
