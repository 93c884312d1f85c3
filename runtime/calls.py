"""The root calls a Monitor sees: their numbering, what is kept of each for a
re-run, their dataflow, and the window of steps that stays at hand.

Calls are numbered per step across threads. A call is kept (its inputs by
reference, their version counters, the RNG state) for a re-run; when it ends,
either every check of it was read and held (on CPU between failures: at
once), and it is let go, or it may be re-run, and what tells whether a
re-run would still be the same call is taken: its autocast regions, the
train/eval modes, the version counters of the model's parameters and
buffers. At most ``MAX_KEPT`` calls wait; older ones give way and the
report says so. A step keeps the dataflow and kept calls of the last
``WINDOW`` steps.
"""

from __future__ import annotations

import torch

from modpact.interfaces.tree import tensors_of_call
from modpact.runtime.recording import Recorder
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.state import CallKey, CallState, KeptCall
from modpact.runtime.violations import Dataflow

__all__ = ["Calls", "MAX_KEPT", "WINDOW", "autocast_state", "autocast_allows"]

_Tensor = torch.Tensor
_CUDA = torch.cuda.is_available()
_DEVICE_TYPES = ("cpu", "cuda") if _CUDA else ("cpu",)
WINDOW = 2  # steps whose dataflow and kept inputs stay at hand
MAX_KEPT = 64  # calls kept for a re-run while their checks are unread (bounds memory without step())


def autocast_state() -> tuple[tuple[str, torch.dtype], ...]:
    """The autocast regions active now: (device type, dtype) for each."""
    if not _CUDA:  # the common case on a CPU machine, without a generator
        return (("cpu", torch.get_autocast_dtype("cpu")),) if torch.is_autocast_enabled("cpu") else ()
    return tuple((d, torch.get_autocast_dtype(d)) for d in _DEVICE_TYPES if torch.is_autocast_enabled(d))


def autocast_allows(in_dtype: torch.dtype, t: torch.Tensor) -> bool:
    """Whether autocast explains a module's dtype change: inside an autocast
    region of ``t``'s device, casts between float32 and the region's dtype
    are what autocast does."""
    device = t.device.type
    if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return False
    allowed = (torch.float32, torch.get_autocast_dtype(device))
    return in_dtype in allowed and t.dtype in allowed


class Calls:
    """Numbering, kept calls, dataflow and the step window (see the module docstring)."""

    def __init__(self, settings: Settings, scope: Scope, recorder: Recorder) -> None:
        self.settings = settings
        self.scope = scope
        self.rec = recorder
        self.step = 0
        self.call = -1
        self.total = 0
        self.kept: dict[CallKey, KeptCall] = {}
        self.dropped = 0  # kept calls that gave way before their checks were read
        self.flow = Dataflow()
        self.graph_edges: set[tuple[str, str]] = set()  # edges of calls that left the window or were let go
        self.raised: set[CallKey] = set()  # calls whose forward raised

    def number(self) -> tuple[int, int, bool]:
        """The next call's (step, call), and whether it is the Monitor's first."""
        with self.rec.lock:
            self.call += 1
            self.total += 1
            return self.step, self.call, self.total == 1

    def keep(self, key: CallKey, args: tuple, kwargs: dict) -> None:
        """Keep what a re-run needs: the inputs, their version counters and
        the RNG state (the rest is taken when the call ends, ``ended``)."""
        kept = self.kept
        if len(kept) >= MAX_KEPT:  # the oldest unread call gives way (it can no longer be re-run)
            del kept[next(iter(kept))]
            self.dropped += 1
        cuda_rng = torch.cuda.get_rng_state_all() if _CUDA and torch.cuda.is_initialized() else None
        if not kwargs and type(args) is tuple and len(args) == 1 and type(args[0]) is _Tensor:
            inputs: tuple = args  # the common call, model(x)
        else:
            inputs = tuple(tensors_of_call(args, kwargs))
        kept[key] = KeptCall(
            args,
            dict(kwargs) if kwargs else {},
            torch.get_rng_state(),
            cuda_rng,
            inputs=inputs,
            input_versions=tuple([t._version for t in inputs]),
        )

    def ended(self, state: CallState, failed: bool = False) -> None:
        """The call ended: let it go if every check of it was read and held,
        else take what tells whether a re-run would be the same call."""
        kept = self.kept.get(state.key)
        if kept is None or kept.versions is not None:
            return
        if not (failed or state.host_failed or not state.buffer.settled):
            # it will never be re-run (its dataflow stays while gradient
            # checks, which read it in backward, may come)
            del self.kept[state.key]
            if not self.settings.backward:
                edges = self.flow.edges.pop(state.key, None)
                if edges:
                    self.graph_edges.update(edges)
            return
        kept.versions = self.scope.versions()
        kept.autocast = autocast_state()
        kept.training = self.scope.training()
        kept.changed_own_inputs = tuple([t._version for t in kept.inputs]) != kept.input_versions

    def next_step(self) -> None:
        """A step ends: dataflow and kept calls older than the window are
        dropped (the edges stay in the report's graph, and the dataflow of
        calls with violations stays for root assignment)."""
        with self.rec.lock:  # (each thread's next call makes its state in the new step)
            step = self.step = self.step + 1
            self.call = -1
        edges = self.flow.edges
        if edges:  # lean calls record none
            old = step - WINDOW - 1
            for key, call_edges in edges.items():
                if key[0] == old:
                    self.graph_edges.update(call_edges)
            self.flow.forget_before(step - WINDOW, keep=self.rec.violated_calls)
        kept = self.kept
        if kept and next(iter(kept))[0] < step - WINDOW:  # kept in call order
            for key in [k for k in kept if k[0] < step - WINDOW]:
                del kept[key]
