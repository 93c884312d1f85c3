"""Per-call overhead of modpact contracts on a small CPU module, side by side.

    python bench/contracts_overhead.py            # full run (~30 s)
    python bench/contracts_overhead.py --quick    # fewer repeats

Measures nn.Linear(64, 10) on a batch of 8 (float32, CPU):
  bare module; guard() with a metadata-only interface (shape + dtype);
  the same plus finite(...) on input and output; @contract on forward with the
  same interface; and jaxtyping+beartype on the same annotations. Prints
  microseconds per call (median of blocked runs) and overhead vs bare.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch
from torch import Tensor, nn
from torch.utils.benchmark import Timer

import modpact.contracts as mc
from modpact.interfaces import Interface, TensorSpec

torch.set_num_threads(1)


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

    models: dict[str, nn.Module] = {"bare": clone()}
    models["guard: shape/dtype"] = mc.guard(clone(), interface=meta)
    models["guard: shape/dtype + finite"] = mc.guard(
        clone(), interface=meta, requires=[mc.finite("input")], ensures=[mc.finite("result")]
    )

    class Decorated(nn.Linear):
        @mc.contract(interface=meta)
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x)

    d = Decorated(64, 10)
    d.load_state_dict(base.state_dict())
    models["@contract: shape/dtype"] = d

    try:
        from beartype import beartype
        from jaxtyping import Float, jaxtyped

        class Jax(nn.Linear):
            @jaxtyped(typechecker=beartype)
            def forward(self, x: Float[Tensor, "batch 64"]) -> Float[Tensor, "batch 10"]:
                return super().forward(x)

        j = Jax(64, 10)
        j.load_state_dict(base.state_dict())
        models["jaxtyping+beartype"] = j
    except ImportError:  # pragma: no cover
        print("jaxtyping/beartype not installed: skipping that row", file=sys.stderr)
    return models


def measure(models: dict[str, nn.Module], min_run_time: float) -> dict[str, float]:
    x = torch.randn(8, 64)
    out = {}
    with torch.no_grad():
        for name, m in models.items():
            m(x)  # warm up
            t = Timer("m(x)", globals={"m": m, "x": x}, num_threads=1)
            out[name] = t.blocked_autorange(min_run_time=min_run_time).median * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the minimum per row is reported")
    ap.add_argument("--json", help="also write the figures to this file (for bench/ab.py)")
    args = ap.parse_args()
    models = build()
    rounds = 1 if args.quick else args.rounds
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleave rows so drift hits all of them alike
        for k, v in measure(models, 0.5 if args.quick else 2.0).items():
            best[k] = min(v, best.get(k, float("inf")))
    bare = best["bare"]
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, 1 thread")
    print(f"nn.Linear(64, 10), batch 8, float32, CPU, no_grad; min over {rounds} round(s) of blocked medians")
    print(f"{'variant':32s} {'us/call':>8s} {'overhead us':>12s}")
    for k, v in best.items():
        print(f"{k:32s} {v:8.2f} {v - bare:12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {"us": v, "overhead_us": v - bare} for k, v in best.items()}, f)


if __name__ == "__main__":
    main()
