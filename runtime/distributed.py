"""Monitoring across processes (torch.distributed): one collective per step.

Each rank checks its own modules with device-side flags as usual. At
``Monitor.step()`` (every ``sync_every`` steps) the ranks exchange how many
violations each has found since the last exchange: one ``all_reduce`` of a
vector with one entry per rank, so no per-violation messages and no
home-made transport. Only when some entry is non-zero are the violating
ranks' records gathered (``all_gather_object``), so every rank ends up with
the same diagnosis and, in mode="raise", every rank raises at the same step
instead of the healthy ones waiting forever in the next collective.

Cross-rank blame: the same violation (same step, call, module, check,
tensor) found on several ranks is reported once with the list of ranks. A
root cause present on every rank points to the module (it misbehaves on
every replica); present on some ranks only, it points to the data those
ranks were fed.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from modpact.errors import MonitorError
from modpact.runtime.records import ViolationRecord

__all__ = ["DEFAULT_TIMEOUT", "active", "exchange_counts", "gather", "merge_ranks"]

DEFAULT_TIMEOUT = datetime.timedelta(seconds=60)


def active(group: Any = None) -> bool:
    """Whether a process group is initialised (checked at each step, so a
    Monitor made before ``init_process_group`` joins in once it exists)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def _device_for(group: Any) -> torch.device:
    backend = dist.get_backend(group)
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def exchange_counts(local: int, group: Any = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> list[int]:
    """All ranks' violation counts, by rank: one all_reduce of a vector with
    one entry per rank. Raises MonitorError when a rank does not join in
    within ``timeout`` (it died or hangs)."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    counts = torch.zeros(world, dtype=torch.int64, device=_device_for(group))
    counts[rank] = local
    try:
        work = dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group, async_op=True)
        if not work.wait(timeout=timeout):  # some backends return False instead of raising
            raise TimeoutError("wait() returned False")
    except Exception as e:  # gloo/NCCL raise RuntimeError/DistBackendError subclasses
        raise MonitorError(
            f"Monitor.step() on rank {rank}: the exchange of violation flags across {world} ranks did not "
            f"complete within {timeout.total_seconds():g} s; another rank has probably died or hangs "
            f"(it must call Monitor.step() at the same steps). Backend said: {type(e).__name__}: {e}"
        ) from e
    return [int(c) for c in counts.tolist()]


def gather(records: list[ViolationRecord], group: Any = None) -> list[list[ViolationRecord]]:
    """Every rank's records (only called after a successful exchange that
    found a violation, so every rank is alive and participates)."""
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, records, group=group)
    return [list(r or []) for r in out]


def merge_ranks(violations: Sequence[ViolationRecord]) -> list[ViolationRecord]:
    """One record per violation with the ranks it occurred on (``ranks``)."""
    merged: dict[tuple, ViolationRecord] = {}
    for v in violations:
        key = (v.step, v.phase, v.call, v.seq, v.module, v.check, v.tensor)
        first = merged.get(key)
        if first is None:
            merged[key] = v
            v.ranks = [v.rank] if v.rank is not None else []
        elif v.rank is not None and v.rank not in first.ranks:
            first.ranks.append(v.rank)
            first.rank = min(first.ranks)
    for v in merged.values():
        v.ranks.sort()
    return list(merged.values())
