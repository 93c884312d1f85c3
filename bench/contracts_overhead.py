"""Per-call overhead of modpact contracts on a small CPU module, side by side.

    python bench/contracts_overhead.py            # full run (~60 s)
    python bench/contracts_overhead.py --quick    # fewer and shorter rounds

Measures nn.Linear(64, 10) on a batch of 8 (float32, CPU, no_grad):
  bare module; the same with two empty ``with_kwargs`` forward hooks (a pre
  and a post hook, as ``guard`` registers: the floor of any hook-based
  check); the same hooks doing ``math.isfinite(t.sum().item())`` on the
  input and the output (the floor of a finite check: one reduction and one
  host read per tensor); guard() with a metadata-only interface (shape +
  dtype); the same plus finite(...) on input and output; @contract on forward with the same
  interface; and jaxtyping+beartype on the same annotations.

Times are this thread's CPU time by default (``--clock cpu``; the model
runs on one thread), so that other processes on a shared machine do not
inflate them; ``--clock wall`` times elapsed time instead.

Each round times every row in blocks of calls, the rows taking turns block by
block (so drift hits all of them alike), and takes each row's median block
and its overhead against the bare module *of that round*. The table gives, per row, the median over rounds of
its time and overhead, the spread (min-max) of the overhead, and the ratios
that the goals are stated in, each computed per round: overhead / the
jaxtyping+beartype overhead, and the finite check's cost over the
shape/dtype guard.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import torch
from torch import Tensor, nn

import modpact.contracts as mc
from modpact.interfaces import Interface, TensorSpec

torch.set_num_threads(1)

BARE, HOOKS, SUMS, GUARD, FINITE, CONTRACT, JAX = (
    "bare",
    "empty pre+post hooks (floor)",
    "hooks: sum().item() in, out",
    "guard: shape/dtype",
    "guard: shape/dtype + finite",
    "@contract: shape/dtype",
    "jaxtyping+beartype",
)


def _read(t: Tensor) -> None:
    math.isfinite(t.sum().item())


def build() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    meta = Interface(
        "linear-64-10",
        inputs={"x": TensorSpec("batch 64", dtype="float32")},
        outputs={"result": TensorSpec("batch 10", dtype="float32")},
    )
    base = nn.Linear(64, 10)

    def clone() -> nn.Linear:
        m = nn.Linear(64, 10)
        m.load_state_dict(base.state_dict())
        return m

    models: dict[str, nn.Module] = {BARE: clone()}
    hooked = clone()
    hooked.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True)
    hooked.register_forward_hook(lambda module, args, kwargs, output: None, with_kwargs=True)
    models[HOOKS] = hooked
    summed = clone()  # the floor of a finite check on the input and the output: one reduction and one read each
    summed.register_forward_pre_hook(lambda module, args, kwargs: _read(args[0]), with_kwargs=True)
    summed.register_forward_hook(lambda module, args, kwargs, output: _read(output), with_kwargs=True)
    models[SUMS] = summed
    models[GUARD] = mc.guard(clone(), interface=meta)
    models[FINITE] = mc.guard(clone(), interface=meta, requires=[mc.finite("input")], ensures=[mc.finite("result")])

    class Decorated(nn.Linear):
        @mc.contract(interface=meta)
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x)

    d = Decorated(64, 10)
    d.load_state_dict(base.state_dict())
    models[CONTRACT] = d

    try:
        from beartype import beartype
        from jaxtyping import Float, jaxtyped

        class Jax(nn.Linear):
            @jaxtyped(typechecker=beartype)
            def forward(self, x: Float[Tensor, "batch 64"]) -> Float[Tensor, "batch 10"]:
                return super().forward(x)

        j = Jax(64, 10)
        j.load_state_dict(base.state_dict())
        models[JAX] = j
    except ImportError:  # pragma: no cover
        print("jaxtyping/beartype not installed: skipping that row", file=sys.stderr)
    return models


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def measure(models: dict[str, nn.Module], seconds: float, clock: str = "cpu") -> dict[str, float]:
    """One round: microseconds per call of each row, the median over blocks of calls.

    The rows take turns block by block (every row runs one block, then the
    next block of each, ...), so a slow stretch of the machine hits every row
    alike; a block is as many calls as take about 2 ms of the bare module."""
    x = torch.randn(8, 64)
    tick = CLOCKS[clock]
    with torch.no_grad():
        for m in models.values():
            for _ in range(50):  # warm up
                m(x)
        bare = models[BARE]
        t0 = tick()
        for _ in range(200):
            bare(x)
        per_call = max((tick() - t0) / 200, 1e-7)
        number = max(10, int(2e-3 / per_call))
        blocks = max(5, int(seconds / (len(models) * number * per_call * 2)))
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(blocks):
            for name, m in models.items():
                t0 = tick()
                for _ in range(number):
                    m(x)
                times[name].append((tick() - t0) / number * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def summarize(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per row: median us, median overhead and its min/max over rounds; the per-round ratios' medians."""
    rows: dict[str, dict[str, float]] = {}
    for k in rounds[0]:
        over = [r[k] - r[BARE] for r in rounds]
        row = {
            "us": statistics.median(r[k] for r in rounds),
            "overhead_us": statistics.median(over),
            "overhead_min": min(over),
            "overhead_max": max(over),
        }
        if JAX in rounds[0] and k != BARE:
            ratio = [(r[k] - r[BARE]) / (r[JAX] - r[BARE]) for r in rounds]
            row["vs_jax"], row["vs_jax_min"], row["vs_jax_max"] = statistics.median(ratio), min(ratio), max(ratio)
        rows[k] = row
    extra = [r[FINITE] - r[GUARD] for r in rounds]
    rows[FINITE]["over_guard_us"] = statistics.median(extra)
    rows[FINITE]["over_guard_min"], rows[FINITE]["over_guard_max"] = min(extra), max(extra)
    reads = [r[SUMS] - r[HOOKS] for r in rounds]
    rows[SUMS]["over_hooks_us"] = statistics.median(reads)
    rows[SUMS]["over_hooks_min"], rows[SUMS]["over_hooks_max"] = min(reads), max(reads)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5; 2 with --quick)")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu (default): this thread's CPU time, which other processes on a shared machine do not inflate; "
        "wall: elapsed time",
    )
    ap.add_argument("--json", help="also write the figures to this file (for bench/ab.py)")
    args = ap.parse_args()
    models = build()
    n = 2 if args.quick and args.rounds == 5 else args.rounds
    rounds = [measure(models, 2.0 if args.quick else 8.0, args.clock) for _ in range(n)]
    rows = summarize(rounds)
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, 1 thread")
    print(
        f"nn.Linear(64, 10), batch 8, float32, CPU, no_grad; {args.clock} clock; "
        f"median (min-max) over {n} interleaved rounds"
    )
    print(f"{'variant':30s} {'us/call':>8s} {'overhead us':>12s} {'(min-max)':>14s} {'/ jaxtyping':>12s}")
    for k, r in rows.items():
        spread = f"({r['overhead_min']:.2f}-{r['overhead_max']:.2f})"
        vs = f"{r['vs_jax']:.2f}" if "vs_jax" in r else ""
        print(f"{k:30s} {r['us']:8.2f} {r['overhead_us']:12.2f} {spread:>14s} {vs:>12s}")
    f = rows[FINITE]
    print(
        f"finite check over the shape/dtype guard: {f['over_guard_us']:.2f} us "
        f"({f['over_guard_min']:.2f}-{f['over_guard_max']:.2f}); "
        f"the two reductions and reads alone: {rows[SUMS]['over_hooks_us']:.2f} us "
        f"({rows[SUMS]['over_hooks_min']:.2f}-{rows[SUMS]['over_hooks_max']:.2f})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh)


if __name__ == "__main__":
    main()
