"""Provenance of non-finite values, finer than modules, while diagnosing only.

During the re-run of a failing call (never in the steady state) a
``TorchFunctionMode`` sees every torch function the model calls: ``F.linear``,
``torch.add`` from a residual ``x + y``, ``F.multi_head_attention_forward``
(whose ``out_proj`` is never called as a module), ``Tensor.add_``. For each
call it checks, on the host, whether its floating operands and results are
finite, and keeps for every non-finite result an ``Origin``: where the bad
value began. A result whose non-finite operand already has an origin
inherits it; otherwise the call itself is the origin, of one of four kinds:

* ``parameter``: a non-finite operand is a parameter or buffer of the model
  (its owner is blamed: the module whose own attribute it is);
* ``input``: a non-finite operand is one of the model's inputs;
* ``operand``: a non-finite operand that no traced call produced and that is
  neither a parameter, a buffer nor an input (a plain tensor attribute);
* ``computed``: every operand was finite (overflow, 0/0, log(0)).

Each origin names the innermost module whose ``forward`` was running, the
function, and the first source line outside torch that led to it. A check
that later finds a non-finite tensor asks ``origin_of(t)``, which is how a
LayerNorm after a residual add learns that the NaN came from the add in its
parent's ``forward``, not from itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from modpact.interfaces.summary import describe
from modpact.interfaces.tree import tensors, tensors_of_call
from modpact.interfaces.values import stored_values

__all__ = ["Origin", "Provenance"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))  # the Monitor's own hooks


@dataclass
class Origin:
    """Where a non-finite value began (see the module docstring)."""

    id: int
    kind: str  # parameter | input | operand | computed
    op: str  # the torch function, e.g. "torch.add", "F.linear"
    module: str  # innermost module whose forward ran it ("" is the model)
    module_type: str
    site: str | None  # first source line outside torch, "file.py:27 in forward"
    seq: int  # execution order, comparable with the re-run's checks
    owner: str | None = None  # kind "parameter": module owning the tensor
    name: str | None = None  # kind "parameter": its attribute name; kind "input": which input
    operand: str | None = None  # summary of the non-finite operand
    tensor_id: int | None = None  # kind "parameter": id() of the parameter or buffer
    result: str = ""  # summary of the result
    record: Any = field(default=None, repr=False)  # the violation record made for it (once)

    @property
    def blamed(self) -> str:
        """The module this origin puts the fault in."""
        return self.owner if self.kind == "parameter" and self.owner is not None else self.module

    def describe(self) -> str:
        where = f"{self.module or '<model>'} ({self.module_type}.forward{', ' + self.site if self.site else ''})"
        if self.kind == "parameter":
            return f"{self.op} in {where} used {self.owner or '<model>'}.{self.name} = {self.operand}"
        if self.kind == "input":
            return f"{self.op} in {where} used the model input {self.name} = {self.operand}"
        if self.kind == "operand":
            return f"{self.op} in {where} used a non-finite tensor {self.operand} that no traced operation produced"
        return f"{self.op} in {where} computed {self.result} from finite operands"


_IN_PLACE = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__", "copy_"}


def out_has_values(out: Any) -> bool:
    """Whether a result holds a floating or complex tensor (cheap)."""
    if isinstance(out, torch.Tensor):
        return out.is_floating_point() or out.is_complex()
    if isinstance(out, (tuple, list)) or hasattr(out, "items"):
        return any(t.is_floating_point() or t.is_complex() for t in tensors(out))
    return False


def _finite(t: torch.Tensor) -> bool:
    """Whether every value ``t`` holds is finite (True where it cannot tell:
    the tracer never breaks the model's forward)."""
    if not (t.is_floating_point() or t.is_complex()) or t.is_meta:
        return True
    try:
        values, _ = stored_values(t)
        return values.numel() == 0 or bool(torch.isfinite(values).all())
    except Exception:  # a layout or backend without isfinite
        return True


def _op_name(func: Callable) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    mod = getattr(func, "__module__", "") or ""
    if name.startswith("TensorBase.") or name.startswith("Tensor."):
        return "Tensor." + name.split(".", 1)[1]
    if name.startswith("_VariableFunctionsClass."):
        return "torch." + name.split(".", 1)[1]
    if mod.startswith("torch.nn.functional") or mod == "torch._C._nn":
        return "F." + name
    if mod == "torch" or mod.startswith("torch._C"):
        return "torch." + name
    return f"{mod}.{name}" if mod else name


def source_line() -> str | None:
    """The model's own source line that led to the torch call being traced:
    the innermost frame outside torch. None when the model's code is all
    torch's (an ``nn.Sequential`` of PyTorch modules): the next frame out is
    the Monitor's re-run."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:  # the tracer itself
        frame = frame.f_back
    while frame is not None:
        fname = frame.f_code.co_filename
        if fname.startswith(_RUNTIME_DIR):
            return None
        if not fname.startswith(_TORCH_DIR) and not fname.startswith("<"):
            return f"{os.path.basename(fname)}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return None


class Provenance(TorchFunctionMode):
    """Tracks where non-finite values begin while one call is re-run.

    ``stack()`` gives the modules running now (innermost last) as
    (path, module) pairs; ``owners`` maps id(parameter or buffer) to the
    (module path, attribute name) pairs that hold it; ``inputs`` maps
    id(model input tensor) to its name; ``next_seq()`` numbers an origin in
    the re-run's execution order."""

    def __init__(
        self,
        stack: Callable[[], list[tuple[str, Any]]],
        owners: dict[int, list[tuple[str, str]]],
        inputs: dict[int, str],
        next_seq: Callable[[], int],
    ) -> None:
        super().__init__()
        self._stack = stack
        self._owners = owners
        self._inputs = inputs
        self._next_seq = next_seq
        self._origins: dict[int, tuple[weakref.ref, Origin]] = {}
        self._paused = 0
        self.origins: list[Origin] = []

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The Monitor's own work (checks, evidence) is not traced."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def origin_of(self, t: torch.Tensor) -> Origin | None:
        entry = self._origins.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return None

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self._paused:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        in_place = name.endswith("_") and not name.endswith("__") or name in _IN_PLACE
        if in_place:  # its operands' values before it ran
            bad_in = [t for t in tensors_of_call(args, kwargs) if not _finite(t)]
        out = func(*args, **kwargs)
        if name == "__get__" or not out_has_values(out):
            return out
        bad_out = [t for t in tensors(out) if not _finite(t)]
        if bad_out:
            if not in_place:
                bad_in = [t for t in tensors_of_call(args, kwargs) if not _finite(t)]
            origin = None
            for t in bad_in:
                origin = self.origin_of(t)
                if origin is not None:
                    break
            if origin is None:
                origin = self._new_origin(func, bad_in, bad_out[0])
            for t in bad_out:
                self._origins[id(t)] = (weakref.ref(t), origin)
        return out

    def _new_origin(self, func: Callable, bad_in: list[torch.Tensor], result: torch.Tensor) -> Origin:
        running = self._stack()
        path, mod = running[-1] if running else ("", None)
        kind, owner, name, operand, tensor_id = "computed", None, None, None, None
        for t in bad_in:
            holders = self._owners.get(id(t))
            if holders:
                kind = "parameter"
                # a tied weight: the holder that is running now, else the first
                on_stack = {p for p, _ in running}
                owner, name = next(((p, n) for p, n in holders if p in on_stack), holders[0])
                operand, tensor_id = describe_values(t), id(t)
                break
            if id(t) in self._inputs:
                kind, name, operand = "input", self._inputs[id(t)], describe_values(t)
                break
        else:
            if bad_in:
                kind, operand = "operand", describe_values(bad_in[0])
        origin = Origin(
            id=len(self.origins),
            kind=kind,
            op=_op_name(func),
            module=path,
            module_type=type(mod).__name__ if mod is not None else "",
            site=source_line(),
            seq=self._next_seq(),
            owner=owner,
            name=name,
            operand=operand,
            result=describe_values(result),
            tensor_id=tensor_id,
        )
        self.origins.append(origin)
        return origin


def describe_values(t: torch.Tensor) -> str:
    """``f32[3,4] nan=2 inf=0`` (counts of non-finite values; synchronous)."""
    with torch.no_grad():
        x, _ = stored_values(t.detach())
        if x.is_complex():
            x = torch.view_as_real(x)
        nan = int(torch.isnan(x).sum()) if x.is_floating_point() else 0
        inf = int(torch.isinf(x).sum()) if x.is_floating_point() else 0
    return f"{describe(t)} nan={nan} inf={inf}"
