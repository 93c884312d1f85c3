"""Inferred envelopes on every leaf of a full-width ResNet-50 (bench/zoo.py's), on the CPU.

    .venv/bin/python bench/envelopes_resnet50.py [--batch 8] [--side 64] [--rounds 3] [--calls 5]

The compute-heavy counterpart of bench/inferred.py's digits MLP: contracts
inferred by ``infer_contracts`` on one random batch (eval mode; every leaf
gets envelopes on its inputs and outputs), then that batch's forward (eval,
no grad) bare and under a Monitor with the contracts installed (a step per
forward), alternating in the same rounds; CPU time of this process, one
thread. Prints each round's ratio, the median, and how many monitored steps
were flagged (0 expected: the data the envelopes came from).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import ResNet50  # noqa: E402

import modpact as mp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--side", type=int, default=64, help="image side (224 is ImageNet's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=5, help="forwards per variant and round")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ResNet50().eval()
    x = torch.randn(args.batch, 3, args.side, args.side)
    with torch.no_grad():
        ic = mp.infer_contracts(model, x)
        conditions = sum(len(r) + len(e) for r, e in ic.conditions().values())
        print(
            f"ResNet-50 (bench/zoo.py), batch {args.batch} x 3x{args.side}x{args.side}, eval, no grad, CPU time, "
            f"1 thread, torch {torch.__version__}; {len(ic.conditions())} modules, {conditions} conditions"
        )

        def bare() -> float:
            t = time.process_time()
            for _ in range(args.calls):
                model(x)
            return (time.process_time() - t) / args.calls

        def monitored() -> tuple[float, int]:
            ic.install()
            try:
                with mp.Monitor(model) as mon:
                    model(x)  # warm-up, kept out of the timing
                    mon.step()
                    t = time.process_time()
                    for _ in range(args.calls):
                        model(x)
                        mon.step()
                    dt = (time.process_time() - t) / args.calls
                    flagged = len({v.step for v in mon.report().violations})
            finally:
                ic.uninstall()
            return dt, flagged

        ratios, flagged = [], 0
        for _ in range(args.rounds):
            b = bare()
            m, f = monitored()
            flagged += f
            ratios.append(m / b)
            print(f"bare {b * 1e3:.1f} ms, envelopes {m * 1e3:.1f} ms: {m / b:.3f}x")
    print(f"median {statistics.median(ratios):.3f}x over {args.rounds} rounds; steps flagged: {flagged} (0 expected)")


if __name__ == "__main__":
    main()
