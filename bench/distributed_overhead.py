"""Per-step cost of the Monitor's cross-rank exchange (gloo, CPU).

For world sizes 2 and 4, every rank runs the same small monitored MLP step
(forward, backward, ``mon.step()``) with the exchange on (``sync_every=1``:
one all_reduce of per-rank violation counts per step) and off
(``sync_every=0``), alternating rounds in one run; rank 0 prints the
medians and the difference, which is the exchange's cost per step, next to
a plain ``all_reduce`` of the same small vector timed on its own.

Usage:  .venv/bin/python bench/distributed_overhead.py [--steps 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch import nn

import modpact as mp


def worker(rank: int, world: int, init: str, steps: int, rounds: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    x = torch.rand(64, 64)
    times: dict[int, list[float]] = {1: [], 0: []}
    for _ in range(rounds):
        for sync in (1, 0):
            with mp.Monitor(model, defaults=True, replay=False, sync_every=sync) as mon:
                dist.barrier()
                t0 = time.perf_counter()
                for _ in range(steps):
                    model(x).sum().backward()
                    mon.step()
                times[sync].append((time.perf_counter() - t0) / steps * 1e6)
    # reference: the collective alone, a plain all_reduce of one int64 per rank
    bare = []
    for _ in range(rounds):
        flags = torch.zeros(world, dtype=torch.int64)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            dist.all_reduce(flags)
        bare.append((time.perf_counter() - t0) / steps * 1e6)
    if rank == 0:
        on, off = statistics.median(times[1]), statistics.median(times[0])
        with open(out, "w") as f:
            f.write(f"{world:5d} {off:12.1f} {on:12.1f} {on - off:10.1f} {statistics.median(bare):14.1f}\n")
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, gloo on CPU, 1 thread per rank, {os.cpu_count()} cores")
    print(f"{'world':>5s} {'step us off':>12s} {'step us on':>12s} {'cost us':>10s} {'all_reduce us':>14s}")
    for world in (2, 4):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "result")
            tmp.spawn(worker, args=(world, f"file://{d}/init", args.steps, args.rounds, out), nprocs=world)
            print(open(out).read(), end="", flush=True)


if __name__ == "__main__":
    main()
