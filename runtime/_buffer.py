"""Device-side flag buffer: value checks without host-device syncs.

Each value check records one cheap reduction on the tensor's device and the
bounds it must satisfy; nothing is read back on the host while the model runs:

* range-style checks (finite, in_range, nonnegative, integer labels) record
  ``torch.aminmax(t)``: one pass, no full-size temporary, and NaN/Inf
  propagate into min/max. Measured on the 2-core CPU: 3 us for a 64x256
  tensor against 35 us for ``torch.isfinite(t).all()``.
* finite-only checks on floating tensors (the Monitor's default
  ``finite(output)``) record ``t.sum()`` instead: half the cost of
  ``aminmax`` on the CPU, and any NaN or Inf makes the sum NaN or Inf.
  Half-precision tensors are summed in float32, so their sum cannot
  overflow; a float32 (or bfloat16) tensor whose elements are all finite but
  so large that their sum overflows (|x| of about 1e33 and more) is
  reported as a violation too, a false alarm about values that are about
  to overflow anyway.
* other conditions record the 0-dim bool tensor they computed (``device_ok``).

``aminmax`` writes into a preallocated [2, capacity] tensor per (dtype,
device) through 0-dim views made once (``out=``), so recording allocates
nothing. At ``flush()`` the predicates of all checks of one dtype are
evaluated in three vectorised ops (``(mins >= lo) & (maxs <= hi)``; NaN
compares false, so it fails every bound), concatenated, and copied to (pinned, on CUDA)
host memory with ``non_blocking=True``; a CUDA event marks when the copy is
done. ``poll()`` reads only copies whose event has completed, so the host
never waits for the device in the steady state (one step late is fine).

**CUDA graphs.** Checks recorded while a CUDA stream is being captured
(``torch.cuda.graph``, ``make_graphed_callables``) would run again at each
replay, but no Python runs then: nothing would tell the Monitor to read their
verdicts, and a NaN in a replay would go unreported. So recording a deferred
check (a CUDA tensor, or ``host_compare=False``) while the current stream is
capturing raises ``MonitorError`` (``refuse_capture``); the model's own pre
hook refuses a captured call before it starts.

On the CPU a read is not a sync, and three tensor ops cost more than the
comparisons themselves: there the mins and maxs are read with one
``tolist()`` each and compared with the bounds in Python, and a sum is read
(``item()``) as soon as it is recorded (``host_compare``; the tests run both
paths on the CPU).
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

GROUP_CAPACITY = 1024  # range checks per (dtype, device) before a partial flush


class _Group:
    """Range checks of one (dtype, device). ``aminmax`` writes each check's
    min and max straight into preallocated tensors through 0-dim views made
    once, so recording allocates nothing and a flush reads two tensors
    instead of stacking many small ones."""

    __slots__ = ("vmin", "vmax", "mins", "maxs", "finite_bounds", "los", "his", "events", "deferred")

    def __init__(
        self, dtype: torch.dtype, device: torch.device, capacity: int = GROUP_CAPACITY, deferred: bool = True
    ) -> None:
        self.deferred = deferred  # read after a flush (not compared on the host at once): refused under capture
        with torch.inference_mode(False):  # written to inside and outside inference mode
            self.vmin = torch.zeros(capacity, dtype=dtype, device=device)
            self.vmax = torch.zeros(capacity, dtype=dtype, device=device)
        self.mins = self.vmin.unbind()
        self.maxs = self.vmax.unbind()
        self.finite_bounds = _bounds_for(dtype, None, None, True)
        self.los: list = []
        self.his: list = []
        self.events: list = []


@dataclass
class Pending:
    """One flushed batch of checks on its way to the host."""

    host: torch.Tensor  # bool, one entry per event: True = the check held
    events: list  # events aligned with ``host``
    done: Any  # torch.cuda.Event or None (CPU: ready at once)

    def ready(self) -> bool:
        return self.done is None or self.done.query()


class FlagBuffer:
    """Events are opaque to the buffer: whatever the caller passes comes back
    from ``poll`` when its check failed."""

    def __init__(self, host_compare: bool = True) -> None:
        self.host_compare = host_compare  # compare CPU groups in Python (see the module docstring)
        self._ready: list = []  # events of violated checks already read on the host
        self._groups: dict[tuple[torch.dtype, torch.device], _Group] = {}
        self._oks: dict[torch.device, tuple[list, list]] = {}
        self._sums: dict[tuple[torch.dtype, torch.device], tuple[list, list]] = {}
        self._bound_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
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
        key = (t.dtype, t.device)
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(t.dtype, t.device, deferred=not self._on_host(t.device))
        i = len(g.events)
        if g.deferred:
            refuse_capture("a range check")
        if t.requires_grad:
            t = t.detach()
        torch.aminmax(t, out=(g.mins[i], g.maxs[i]))
        if lo is None and hi is None and finite:
            b_lo, b_hi = g.finite_bounds
        else:
            b_lo, b_hi = _bounds_for(t.dtype, lo, hi, finite)
        g.los.append(b_lo)
        g.his.append(b_hi)
        g.events.append(event)
        self.size += 1
        if i + 1 == GROUP_CAPACITY:
            self.size -= len(g.events)
            self._drain(g)
        return True

    def _add_sum(self, t: torch.Tensor, event: Any) -> bool:
        """A finite-only check on a floating tensor: its sum (see the module docstring)."""
        if t.requires_grad:
            t = t.detach()
        acc = _SUM_DTYPE[t.dtype]
        total = t.sum() if acc is None else t.sum(dtype=acc)
        if t.is_cpu and self.host_compare:  # a read is not a sync here: keeping the sum costs more
            if not cmath.isfinite(total.item()):
                self._ready.append(event)
            return True
        device = t.device
        key = (total.dtype, device)
        refuse_capture("a finite check")
        entry = self._sums.get(key)
        if entry is None:
            entry = self._sums[key] = ([], [])
        entry[0].append(total)
        entry[1].append(event)
        self.size += 1
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
    def _bounds(self, g: _Group) -> tuple[torch.Tensor, torch.Tensor]:
        """The group's lower and upper bounds as tensors (cached: the same
        checks recur every step)."""
        key = (tuple(g.los), tuple(g.his), g.vmin.dtype, g.vmin.device)
        cached = self._bound_cache.get(key)
        if cached is None:
            dtype, device = g.vmin.dtype, g.vmin.device
            cmp_dtype = torch.float64 if dtype.is_floating_point else torch.int64
            if device.type != "cpu" and cmp_dtype == torch.float64:
                cmp_dtype = torch.float32
            host = torch.tensor([g.los, g.his], dtype=cmp_dtype)
            if device.type != "cpu":
                host = host.to(device, non_blocking=True)
            cached = (host[0], host[1])
            if len(self._bound_cache) > 256:
                self._bound_cache.clear()
            self._bound_cache[key] = cached
        return cached

    def _evaluate(self, g: _Group) -> torch.Tensor:
        """Which of the group's checks held: three ops on the device (NaN
        compares false, so it fails both bounds)."""
        n = len(g.events)
        lo, hi = self._bounds(g)
        return (g.vmin[:n] >= lo) & (g.vmax[:n] <= hi)

    def _on_host(self, device: torch.device) -> bool:
        """Whether checks on ``device`` are compared in Python (CPU, host_compare)."""
        on = self._host_devices.get(device)
        if on is None:
            on = self._host_devices[device] = self.host_compare and device.type == "cpu"
        return on

    def _drain(self, g: _Group) -> None:
        """Read a full group at once (CPU, host_compare) or start its copy."""
        if self._on_host(g.vmin.device):
            self._compare_on_host(g)
        else:
            self.push(self._evaluate(g), g.events)
        g.los, g.his, g.events = [], [], []

    def _compare_on_host(self, g: _Group) -> None:
        """CPU: read the mins and maxs once and compare in Python (NaN
        compares false, so it fails both bounds)."""
        n = len(g.events)
        mins = g.vmin[:n].tolist()
        maxs = g.vmax[:n].tolist()
        self._ready.extend(
            e for e, lo, hi, a, b in zip(g.events, g.los, g.his, mins, maxs) if not (a >= lo and b <= hi)
        )

    def flush(self) -> None:
        """Evaluate every recorded predicate and start the copy to the host:
        one small vector per device."""
        if not self.size:
            return
        by_device: dict[torch.device, tuple[list, list]] = {}
        for (_dtype, device), g in self._groups.items():
            if not g.events:
                continue
            if self._on_host(device):
                self._compare_on_host(g)
            else:
                oks, evs = by_device.setdefault(device, ([], []))
                oks.append(self._evaluate(g))
                evs.extend(g.events)
            g.los, g.his, g.events = [], [], []
        for (_, device), (sums, events) in self._sums.items():
            if not events:
                continue
            oks, evs = by_device.setdefault(device, ([], []))
            oks.append(torch.isfinite(torch.stack(sums)))
            evs.extend(events)
            sums.clear()
            events.clear()
        for device, (verdicts, events) in self._oks.items():
            oks, evs = by_device.setdefault(device, ([], []))
            oks.append(torch.stack(verdicts))
            evs.extend(events)
        for oks, evs in by_device.values():
            self.push(torch.cat(oks) if len(oks) > 1 else oks[0], evs)
        self._oks.clear()
        self.size = 0

    def push(self, ok: torch.Tensor, events: list) -> None:
        """Start the copy of a bool 'check held' vector to the host (pinned
        and non-blocking on CUDA, with an event that says when it has arrived)."""
        if ok.device.type == "cuda":
            host = torch.empty(ok.shape, dtype=torch.bool, pin_memory=True)
            host.copy_(ok, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            host, done = ok, None
        self.pending.append(Pending(host, events, done))

    def poll(self, block: bool = False) -> list[tuple]:
        """Event ids of violated checks among the copies that have arrived.
        With ``block=True`` waits for every copy (used by report())."""
        bad, self._ready = self._ready, []
        still: list[Pending] = []
        for p in self.pending:
            if block and p.done is not None:
                p.done.synchronize()
            if p.ready():
                flags = p.host.tolist()
                bad.extend(e for e, held in zip(p.events, flags) if not held)
            else:
                still.append(p)
        self.pending = still
        return bad
