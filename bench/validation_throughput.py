"""Validation throughput: generated examples checked per second by
``modpact.validate`` with batched evaluation (several generated inputs in one
forward) and without (one forward per input), side by side in one run.

    .venv/bin/python bench/validation_throughput.py [--examples 200] [--rounds 3] [--threads 1]
    .venv/bin/python bench/ab.py --before REV -- bench/validation_throughput.py   # before vs after

Rounds alternate batched / unbatched runs so that both see the same machine
state. The figure is the median over rounds of examples / wall time of the
whole ``validate`` call: generation, forwards and checks included. Batched
runs use ``validate``'s default ``group``. ``--threads`` sets torch's intra-op
threads (1 by default: on a shared 2-core machine, two threads make each small
forward wait for the other jobs, and the figures then measure the load).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch
from torch import nn

import modpact as mp

DIGITS = mp.LabelSpace("digits", [str(i) for i in range(10)])


def cases():
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    mlp_if = mp.Interface(
        "mlp",
        inputs={"x": mp.TensorSpec("batch 64", dtype="float32", range=(0, 16))},
        outputs={"logits": mp.TensorSpec("batch 10", finite=True, labels=DIGITS)},
    )
    conv = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    conv_if = mp.Interface(
        "conv",
        inputs={"x": mp.TensorSpec("batch 3 16 16", dtype="float32", range=(-1, 1))},
        outputs={"logits": mp.TensorSpec("batch 10", finite=True)},
    )
    return [
        ("MLP 64-256-256-10, interface only", mlp, mlp_if, []),
        ("MLP + in_range(logits)", mlp, mlp_if, [mp.in_range("logits", -1e4, 1e4)]),
        ("ConvNet 3x16x16, interface only", conv, conv_if, []),
    ]


def run(module, iface, contracts, batch, examples, seed):
    res = mp.validate(module, iface, contracts=contracts, max_examples=examples, seed=seed, batch=batch)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200, help="Hypothesis examples per validate() call")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--json", help="also write the figures to this file (for bench/ab.py)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    out: dict[str, dict[str, float]] = {}
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"examples={args.examples}, rounds={args.rounds}"
    )
    print("| case | mode | inputs checked | forwards | s | inputs/s |")
    print("|---|---|---:|---:|---:|---:|")
    for name, module, iface, contracts in cases():
        run(module, iface, contracts, True, 10, 0)  # warm up
        figures = {True: [], False: []}
        last = {}
        for r in range(args.rounds):
            for batch in (True, False):
                res = run(module, iface, contracts, batch, args.examples, seed=r)
                figures[batch].append(res.examples / res.seconds)
                last[batch] = res
        for batch in (True, False):
            res = last[batch]
            mode = f"batched (group {res.group})" if batch else "one input per forward"
            print(
                f"| {name} | {mode} | {res.examples} | {res.forwards} | {res.seconds:.2f} | "
                f"{statistics.median(figures[batch]):.0f} |"
            )
        ratio = statistics.median(figures[True]) / statistics.median(figures[False])
        print(f"| {name} | **batched / unbatched** | | | | **{ratio:.2f}x** |")
        out[name.split(",")[0]] = {
            "batched/s": statistics.median(figures[True]),
            "unbatched/s": statistics.median(figures[False]),
            "ratio": ratio,
            "group": last[True].group,
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
