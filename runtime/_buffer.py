"""Device-side flag buffer: value checks without host-device syncs.

Each value check writes one cheap reduction of its tensor into a cell of a
preallocated tensor on the tensor's device (``out=``, through 0-dim views
made once, so recording allocates nothing and launches one kernel); nothing
is read back on the host while the model runs:

* range-style checks (finite, in_range, nonnegative, integer labels) write
  ``torch.aminmax(t)`` into a [capacity, 2] tensor per (dtype, device): one
  pass, no full-size temporary, and NaN/Inf propagate into min/max.
  Measured on the 2-core CPU: 3 us for a 64x256 tensor against 35 us for
  ``torch.isfinite(t).all()``.
* finite-only checks on floating tensors (the Monitor's default
  ``finite(output)``) write ``t.sum()`` into a [capacity] tensor per
  (accumulation dtype, device): half the cost of ``aminmax`` on the CPU,
  and any NaN or Inf makes the sum NaN or Inf. Half-precision tensors are
  summed in float32, so their sum cannot overflow; a float32 (or bfloat16)
  tensor whose elements are all finite but so large that their sum
  overflows (|x| of about 1e33 and more) is reported as a violation too, a
  false alarm about values that are about to overflow anyway.
* other conditions record the 0-dim bool tensor they computed (``device_ok``).

**Reading (``flush``/``poll``).** A flush starts one copy per group of its
filled cells (``vals[:n]``) to host memory, pinned on CUDA and taken from a
small pool of the group's own, with ``non_blocking=True``, and records a CUDA
event (also pooled) that says when the copy has arrived; condition verdicts
are stacked into one vector and copied the same way. That is one device op per
group and step, and no allocation once the pool is warm. ``poll()`` reads only
copies whose event has completed, so the host never waits for the device in
the steady state (one step late is fine), and compares on the host: a sum
must be finite, a min and max must lie within the check's bounds (NaN
compares false, so it fails every bound). The host copy goes back to its
pool when it has been read. Checks and the flush are taken to run on one
stream (the model's forward and ``step()`` normally do): the copy is
ordered after the reductions on that stream.

**The API other parts use.** ``add_range(t, event, lo, hi, finite)`` and
``add_ok(verdict, event)`` record a check; ``push(ok, events)`` hands over a
bool vector of verdicts already computed on the device (True: the check held),
one event per entry (compiled code's per-slot flags come this way);
``flush()`` starts the copies; ``poll(block)`` returns the events of the
checks that failed among the copies that have arrived. An event is opaque
to the buffer.

**CUDA graphs.** Checks recorded while a CUDA stream is being captured
(``torch.cuda.graph``, ``make_graphed_callables``) would run again at each
replay, but no Python runs then: nothing would tell the Monitor to read their
verdicts, and a NaN in a replay would go unreported. So recording a deferred
check (a CUDA tensor, or ``host_compare=False``) while the current stream is
capturing raises ``MonitorError`` (``refuse_capture``); the model's own pre
hook refuses a captured call before it starts.

On the CPU a read is not a sync, and copying costs more than the comparisons
themselves: there (``host_compare``, the default) the mins and maxs are read
with one ``tolist()`` when the group is read, and a sum is read (``item()``)
as soon as it is recorded. ``host_compare=False`` runs the CUDA logic
(cells, copies, pool) on the CPU; the tests run both paths on the CPU.
"""

from __future__ import annotations

import cmath
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from modpact.errors import MonitorError
from modpact.interfaces.values import stored_values

__all__ = ["FlagBuffer", "Pending", "checkable", "range_violated", "capturing", "refuse_capture", "CAPTURE_REFUSED"]

CAPTURE_REFUSED = (
    "a monitored call is being captured into a CUDA graph: the Monitor's checks would run at each replay "
    "with no Python to read their verdicts, so a NaN in a replay would go unreported; capture the model "
    "outside the Monitor (exit it first), or run it without the graph while monitoring"
)


_CUDA_BUILT = torch.backends.cuda.is_built()  # a CPU-only build never captures: one bool per call


def capturing() -> bool:
    """Whether the current CUDA stream is being captured into a CUDA graph
    (False without CUDA, and without initialising it: a capture needs it)."""
    return _CUDA_BUILT and torch.cuda.is_initialized() and torch.cuda.is_current_stream_capturing()


def refuse_capture(where: str) -> None:
    """Raise ``MonitorError`` if the current CUDA stream is capturing (see the module docstring)."""
    if capturing():
        raise MonitorError(f"Monitor: {where}: {CAPTURE_REFUSED}")


@functools.lru_cache(maxsize=1024)
def _bounds_for(dtype: torch.dtype, lo: float | None, hi: float | None, finite: bool) -> tuple[float, float]:
    """Numeric bounds; 'finite' becomes the dtype's largest finite magnitude."""
    if dtype.is_floating_point:
        big = torch.finfo(dtype).max if finite else math.inf
    else:
        info = torch.iinfo(dtype)
        big = float(max(abs(info.min), info.max))
    return (-big if lo is None else lo, big if hi is None else hi)


_DTYPE_OK: dict[torch.dtype, bool] = {}


def _dtype_ok(dtype: torch.dtype) -> bool:
    ok = _DTYPE_OK.get(dtype)
    if ok is None:
        ok = _DTYPE_OK[dtype] = not (dtype == torch.bool or dtype.is_complex)
    return ok


def checkable(t: torch.Tensor) -> bool:
    """Whether ``t`` has values a range check can read (metadata only)."""
    return _dtype_ok(t.dtype) and t.numel() > 0 and not t.is_meta


def range_violated(t: torch.Tensor, lo: float | None, hi: float | None, finite: bool) -> torch.Tensor:
    """0-dim bool: ``t`` leaves [lo, hi] (or is not finite). Evaluated at once,
    for code traced by torch.compile; eager checks defer it to ``flush``."""
    b_lo, b_hi = _bounds_for.__wrapped__(t.dtype, lo, hi, finite)  # no lru_cache under dynamo
    mn, mx = torch.aminmax(t.detach())
    return ~((mn >= b_lo) & (mx <= b_hi))


# finite-only checks read the sum, accumulated in this dtype (None: the tensor's own)
_SUM_DTYPE: dict[torch.dtype, torch.dtype | None] = {
    torch.float32: None,
    torch.float64: None,
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
    torch.complex64: None,
    torch.complex128: None,
}
_ALL_DIMS = [tuple(range(n)) for n in range(65)]  # sum(dim=...) over every dim, by ndim

GROUP_CAPACITY = 1024  # checks per group (kind, dtype, device) before a partial flush
RANGE, SUM, VERDICT = "range", "sum", "verdict"  # what a group's cells (and a Pending's host copy) hold


class _Group:
    """Checks of one kind (``RANGE``: min and max; ``SUM``) on one (dtype,
    device). Each check writes its reduction straight into its cell of
    ``vals`` through 0-dim views made once (``cells``), so recording
    allocates nothing, and a flush copies ``vals[:n]`` at once. ``free``
    holds host copies (with their CUDA events) ready for reuse."""

    __slots__ = ("kind", "vals", "cells", "finite_bounds", "los", "his", "events", "deferred", "free")

    def __init__(
        self, kind: str, dtype: torch.dtype, device: torch.device, capacity: int = GROUP_CAPACITY, deferred: bool = True
    ) -> None:
        self.kind = kind
        self.deferred = deferred  # read after a flush (not compared on the host at once): refused under capture
        shape = (capacity, 2) if kind == RANGE else (capacity,)
        with torch.inference_mode(False):  # written to inside and outside inference mode
            self.vals = torch.zeros(shape, dtype=dtype, device=device)
        self.cells: Any = (
            tuple(zip(self.vals[:, 0].unbind(), self.vals[:, 1].unbind())) if kind == RANGE else self.vals.unbind()
        )
        self.finite_bounds = _bounds_for(dtype, None, None, True) if kind == RANGE else (0.0, 0.0)
        self.los: list = []
        self.his: list = []
        self.events: list = []
        self.free: list[tuple[torch.Tensor, Any]] = []


@dataclass
class Pending:
    """One flushed batch of checks on its way to the host.

    ``host`` holds, per event, what the device computed: a bool verdict
    (``VERDICT``, True: the check held), a sum (``SUM``) or a [min, max]
    pair (``RANGE``, with the bounds in ``los``/``his``)."""

    host: torch.Tensor
    events: list  # events aligned with ``host``
    done: Any  # torch.cuda.Event or None (CPU: ready at once)
    kind: str = VERDICT
    los: list | None = None
    his: list | None = None
    release: list | None = None  # the pool ``(host, done)`` goes back to once read

    def ready(self) -> bool:
        return self.done is None or self.done.query()

    def failed(self) -> list:
        """The events whose check failed (the copy has arrived)."""
        n = len(self.events)
        values = self.host[:n].tolist()
        if self.kind == SUM:
            if cmath.isfinite(sum(values)):  # NaN or Inf anywhere makes the total non-finite
                return []
            return [e for e, v in zip(self.events, values) if not cmath.isfinite(v)]
        if self.kind == RANGE:
            assert self.los is not None and self.his is not None
            return [
                e for e, (a, b), lo, hi in zip(self.events, values, self.los, self.his) if not (a >= lo and b <= hi)
            ]
        return [e for e, held in zip(self.events, values) if not held]


class FlagBuffer:
    """Device-side verdicts of value checks, read on the host when they
    arrive (see the module docstring for the API and how it reads).

    Events are opaque to the buffer: whatever the caller passes comes back
    from ``poll`` when its check failed."""

    def __init__(self, host_compare: bool = True) -> None:
        self.host_compare = host_compare  # compare CPU groups in Python (see the module docstring)
        self._ready: list = []  # events of violated checks already read on the host
        self._groups: dict[tuple[str, torch.dtype, torch.device], _Group] = {}  # (kind, the checked dtype, device)
        self._oks: dict[torch.device, tuple[list, list]] = {}
        self._host_devices: dict[torch.device, bool] = {}
        self.pending: list[Pending] = []
        self.size = 0

    @property
    def has_ready(self) -> bool:
        """Violated checks already read on the host, waiting for ``poll``."""
        return bool(self._ready)

    @property
    def settled(self) -> bool:
        """Every recorded check has been read on the host and held (the CPU
        between failures: sums are read as they are recorded)."""
        return not (self.size or self.pending or self._ready)

    # -- recording (hot path: no sync, no host reads of data) -------------
    def add_range(
        self, t: torch.Tensor, event: Any, lo: float | None = None, hi: float | None = None, finite: bool = True
    ) -> bool:
        """Record that ``t`` must lie in [lo, hi] (and be finite). Sparse and
        nested tensors are checked on their stored values; complex ones by
        their sum when only finiteness is asked. Returns False when the
        tensor has no values to check (empty, bool, complex with bounds, meta)."""
        if t.layout is not torch.strided or t.is_nested:
            t, zeros = stored_values(t)
            if zeros and not ((lo is None or lo <= 0) and (hi is None or hi >= 0)):
                self.add_ok(False, event)  # an unstored element is 0, outside the bounds
                return True
        if finite and lo is None and hi is None and t.dtype in _SUM_DTYPE and t.numel() and not t.is_meta:
            return self._add_sum(t, event)
        if not checkable(t):
            return False
        key = (RANGE, t.dtype, t.device)
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(RANGE, t.dtype, t.device, deferred=not self._on_host(t.device))
        i = len(g.events)
        if g.deferred:
            refuse_capture("a range check")
        if t.requires_grad:
            t = t.detach()
        torch.aminmax(t, out=g.cells[i])
        if lo is None and hi is None and finite:
            b_lo, b_hi = g.finite_bounds
        else:
            b_lo, b_hi = _bounds_for(t.dtype, lo, hi, finite)
        g.los.append(b_lo)
        g.his.append(b_hi)
        g.events.append(event)
        self.size += 1
        if i + 1 == GROUP_CAPACITY:
            self._drain(g)
        return True

    def _add_sum(self, t: torch.Tensor, event: Any) -> bool:
        """A finite-only check on a floating tensor: its sum (see the module docstring)."""
        if t.requires_grad:
            t = t.detach()
        acc = _SUM_DTYPE[t.dtype]
        if t.is_cpu and self.host_compare:  # a read is not a sync here: keeping the sum costs more
            total = t.sum() if acc is None else t.sum(dtype=acc)
            if not cmath.isfinite(total.item()):
                self._ready.append(event)
            return True
        refuse_capture("a finite check")
        key = (SUM, t.dtype, t.device)  # the tensor's dtype decides the sum's
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(SUM, t.dtype if acc is None else acc, t.device)
        i = len(g.events)
        torch.sum(t, _ALL_DIMS[t.ndim], dtype=acc, out=g.cells[i])
        g.events.append(event)
        self.size += 1
        if i + 1 == GROUP_CAPACITY:
            self._drain(g)
        return True

    def add_ok(self, ok: torch.Tensor | bool, event: Any) -> None:
        """Record a condition's own device-side verdict (0-dim bool tensor)."""
        if not isinstance(ok, torch.Tensor):
            ok = torch.tensor(bool(ok))
        dev = ok.device
        if not self._on_host(dev):
            refuse_capture("a condition's verdict")
        oks, evs = self._oks.setdefault(dev, ([], []))
        oks.append(ok.detach().reshape(()).to(torch.bool))
        evs.append(event)
        self.size += 1

    # -- flushing ----------------------------------------------------------
    def _on_host(self, device: torch.device) -> bool:
        """Whether checks on ``device`` are compared in Python at once (CPU, host_compare)."""
        on = self._host_devices.get(device)
        if on is None:
            on = self._host_devices[device] = self.host_compare and device.type == "cpu"
        return on

    def _drain(self, g: _Group) -> None:
        """Read a group (CPU, host_compare) or start its copy to the host; empty it."""
        self.size -= len(g.events)
        if g.deferred:
            self._ship(g)
        else:
            self._compare_on_host(g)
        g.los, g.his, g.events = [], [], []

    def _compare_on_host(self, g: _Group) -> None:
        """CPU: read the mins and maxs once and compare in Python (NaN
        compares false, so it fails both bounds)."""
        n = len(g.events)
        pairs = g.vals[:n].tolist()
        self._ready.extend(e for e, lo, hi, (a, b) in zip(g.events, g.los, g.his, pairs) if not (a >= lo and b <= hi))

    def _ship(self, g: _Group) -> None:
        """Start the copy of the group's filled cells to the host: one copy
        into a pooled host tensor (pinned on CUDA), and an event that says
        when it has arrived."""
        n = len(g.events)
        cuda = g.vals.device.type == "cuda"
        if g.free:
            host, done = g.free.pop()
        else:
            host = torch.empty(g.vals.shape, dtype=g.vals.dtype, pin_memory=cuda)
            done = torch.cuda.Event() if cuda else None
        host[:n].copy_(g.vals[:n], non_blocking=cuda)
        if done is not None:
            done.record()
        self.pending.append(Pending(host, g.events, done, g.kind, g.los, g.his, g.free))

    def flush(self) -> None:
        """Start the copy of every recorded check to the host: one copy per
        group, and one stacked vector of condition verdicts per device."""
        if not self.size:
            return
        for g in self._groups.values():
            if g.events:
                self._drain(g)
        for verdicts, events in self._oks.values():
            self.push(torch.stack(verdicts), events)
        self._oks.clear()
        self.size = 0

    def push(self, ok: torch.Tensor, events: list) -> None:
        """Start the copy of a bool 'check held' vector to the host (pinned
        and non-blocking on CUDA, with an event that says when it has arrived),
        one event per entry."""
        if ok.device.type == "cuda":
            host = torch.empty(ok.shape, dtype=torch.bool, pin_memory=True)
            host.copy_(ok, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            host, done = ok, None
        self.pending.append(Pending(host, events, done))

    def poll(self, block: bool = False) -> list:
        """Events of violated checks among the copies that have arrived.
        With ``block=True`` waits for every copy (used by report())."""
        bad, self._ready = self._ready, []
        still: list[Pending] = []
        for p in self.pending:
            if block and p.done is not None:
                p.done.synchronize()
            if p.ready():
                bad.extend(p.failed())
                if p.release is not None:
                    p.release.append((p.host, p.done))
            else:
                still.append(p)
        self.pending = still
        return bad
