"""Train a digits classifier with DDP on 2 processes (gloo, CPU) under the
modpact Monitor, with a fault injected on one rank, and print the report.

    .venv/bin/python examples/ddp_digits.py            # 2 ranks, fault on rank 1
    .venv/bin/python examples/ddp_digits.py --world 4 --faulty-rank 2

At step 5 the faulty rank's batch gets an infinite pixel. Every rank learns
of it at that step's ``mon.step()`` (one all_reduce of per-rank counts) and,
in mode="raise", every rank stops there, before the optimizer applies the
averaged (now NaN) gradient. The report on every rank names the rank and,
since the violation happened on one rank only, points to that rank's data.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import modpact as mp


def worker(rank: int, world: int, init: str, faulty_rank: int, steps: int) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    shard = torch.arange(rank, len(x), world)  # each rank trains on its own slice
    x, y = x[shard], y[shard]
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    mp.guard(
        model[0],
        interface=mp.Interface(
            "digits-encoder",
            inputs={"input": mp.TensorSpec("batch 64", dtype="float32", range=(0, 1))},
            outputs={"h": mp.TensorSpec("batch 64", finite=True)},
        ),
    )
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(rank)
    stopped = None
    try:
        # mode="raise": every rank raises at the step where any rank violated,
        # before the bad gradient is averaged into every replica's weights
        with mp.Monitor(model, "raise", defaults=True, timeout=30) as mon:
            for step in range(steps):
                idx = torch.randint(0, len(x), (32,), generator=gen)
                xb = x[idx].clone()
                if rank == faulty_rank and step == 5:
                    xb[0, 10] = float("inf")  # a corrupted sample on one rank
                loss = nn.functional.cross_entropy(ddp(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                mon.step()  # before opt.step(): the update of a bad step is skipped
                opt.step()
    except mp.MonitorViolation as e:
        stopped, report = step, e.report
    else:
        report = mon.report()
    if rank == 0:
        print(report)
        print(f"\nall {world} ranks stopped at step {stopped}" if stopped is not None else "\nno violation")
    dist.barrier()
    dist.destroy_process_group()
    # End the worker here: about one run in ten, gloo's teardown during the
    # interpreter's own shutdown aborted a worker (SIGABRT, "terminate called
    # without an active exception"), with or without a violation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--faulty-rank", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if not 0 <= args.faulty_rank < args.world:
        ap.error(f"--faulty-rank {args.faulty_rank} is not a rank of a world of {args.world}")
    with tempfile.TemporaryDirectory() as d:
        init = f"file://{os.path.join(d, 'init')}"
        tmp.spawn(worker, args=(args.world, init, args.faulty_rank, args.steps), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
