"""What declaring dim bounds and a padding convention costs a guarded call (CPU), side by side.

    python bench/interface_bounds.py            # 9 rounds
    python bench/interface_bounds.py --quick    # 3 rounds
    python bench/interface_bounds.py --json out.json   # {interface: {us_per_call, vs_plain}}
    python bench/ab.py --before REV -- bench/interface_bounds.py --quick

One module (an Embedding over ``ids`` times a 0/1 ``mask``, batch 8 x 16), four
interfaces guarded in turn, in alternating rounds within one process:

- ``plain``: ids and mask with shapes, dtypes and the mask's range (0, 1);
- ``bounds``: the same with ``dims={"seq": (1, 512)}`` (the guard then takes the
  interface's own check, which reads the bound, instead of the compiled fast path);
- ``padding``: ``plain`` with ``padding="right"`` on the mask (a value check);
- ``both``: bounds and padding.

Prints microseconds per guarded call (median over rounds, with the spread),
the bare module's, and each interface's ratio to ``plain``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

import modpact as mp
from modpact.interfaces import Interface, TensorSpec

torch.set_num_threads(1)


class Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.emb(ids) * mask[..., None]


def interfaces() -> dict[str, Interface]:
    ids = TensorSpec("batch seq", dtype="int64", range=(0, 99))
    out = {"result": TensorSpec("batch seq 8", dtype="float32")}

    def mask(padding: str | None) -> TensorSpec:
        return TensorSpec("batch seq", dtype="int64", range=(0, 1), padding=padding)

    return {
        "plain": Interface("plain", {"ids": ids, "mask": mask(None)}, out),
        "bounds": Interface("bounds", {"ids": ids, "mask": mask(None)}, out, dims={"seq": (1, 512)}),
        "padding": Interface("padding", {"ids": ids, "mask": mask("right")}, out),
        "both": Interface("both", {"ids": ids, "mask": mask("right")}, out, dims={"seq": (1, 512)}),
    }


def per_call_us(m: nn.Module, ids: torch.Tensor, mask: torch.Tensor, calls: int) -> float:
    with torch.no_grad():
        for _ in range(20):
            m(ids, mask)
        t0 = time.perf_counter()
        for _ in range(calls):
            m(ids, mask)
        return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    rounds, calls = (3, 500) if args.quick else (9, 1000)
    torch.manual_seed(0)
    m = Masked().eval()
    ids = torch.randint(0, 100, (8, 16))
    mask = torch.ones(8, 16, dtype=torch.long)
    mask[::2, 10:] = 0
    ifaces = interfaces()
    times: dict[str, list[float]] = {k: [] for k in ["bare", *ifaces]}
    order = ["bare", *ifaces]
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):  # alternate which goes first
            if name != "bare":
                mp.guard(m, interface=ifaces[name])
            try:
                times[name].append(per_call_us(m, ids, mask, calls))
            finally:
                if name != "bare":
                    mp.unguard(m)
    plain = statistics.median(times["plain"])
    rows: dict[str, dict[str, float]] = {}
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {rounds} rounds x {calls} calls")
    print(f"{'interface':10} {'us/call':>9} {'min..max':>16} {'vs plain':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = med / plain
        rows[name] = {"us_per_call": med, "vs_plain": ratio}
        print(f"{name:10} {med:9.1f} {min(ts):7.1f}..{max(ts):7.1f} {ratio:8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
