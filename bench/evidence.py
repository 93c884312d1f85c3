"""Evidence on a big tensor: what describing one failing activation costs.

A 50M-element float32 activation (200 MB) with one NaN, as the Monitor's
re-run describes it when ``finite(output)`` fails: ``finite_evidence``
(failing count, first index and value, min/max, nan/inf counts),
``summarize`` (``f32[...] nan=1 min=.. max=..``) and ``value_histogram``
(24 bins, NaN/inf counts); and the same tensor under ``in_range(-3, 3)``,
where 0.27% of the elements fail, spread over the whole tensor.

Two variants side by side, each in a fresh process (peak memory is the
process's maximum resident size minus what it held with the tensor made):
``direct``, the way modpact computed the evidence before (a full-size mask,
``nonzero()`` of it, ``t[isfinite(t)]``, a float64 copy for the histogram;
kept here as the baseline), and ``modpact``, the library as installed
(``interfaces/scan.py``: piece by piece).

    .venv/bin/python bench/evidence.py [--numel 50000000] [--rounds 3] [--repeat 2] [--json out.json]

Each (case, variant) runs in ``--rounds`` fresh processes, the variants
alternating; a process times ``--repeat`` runs and keeps its best. The table
shows the best and the median over processes, and the largest extra memory.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

CASES = ("one_nan", "range")
VARIANTS = ("direct", "modpact")


# -- the baseline: modpact's evidence functions before they read tensors in pieces -----------------------


def _direct_minmax(t):
    vals = t[torch.isfinite(t)] if t.is_floating_point() else t
    if vals.numel() == 0:
        return {"min": math.nan, "max": math.nan}
    return {"min": vals.min().item(), "max": vals.max().item()}


def _direct_evidence(t, ok):
    bad = ~ok
    failing = int(bad.sum())
    ev = {"failing": failing, "of": int(ok.numel())}
    if failing:
        idx = tuple(int(i) for i in bad.nonzero()[0])
        ev["first_index"], ev["first_value"] = idx, t[idx].item()
    ev.update(_direct_minmax(t))
    return ev


def _direct_finite(t):
    ev = _direct_evidence(t, torch.isfinite(t))
    if ev["failing"]:
        ev["nan"], ev["inf"] = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return ev


def _direct_summarize(t):
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    finite = t[torch.isfinite(t)]
    return f"nan={nan} inf={inf} min={float(finite.min()):.4g} max={float(finite.max()):.4g}"


def _direct_histogram(t, bins=24):
    t = t.reshape(-1).to(torch.float64)
    vals = t[torch.isfinite(t)]
    out = {
        "nan": int(torch.isnan(t).sum()),
        "posinf": int((t == math.inf).sum()),
        "neginf": int((t == -math.inf).sum()),
    }
    a, b = float(vals.min()), float(vals.max())
    return {"lo": a, "hi": b, "counts": [int(c) for c in torch.histc(vals, bins=bins, min=a, max=b)], **out}


def _direct_range(t, lo, hi):
    return _direct_evidence(t, (t >= lo) & (t <= hi))


def _functions(variant: str):
    if variant == "direct":
        return _direct_finite, _direct_range, _direct_summarize, _direct_histogram
    from modpact.interfaces.summary import summarize
    from modpact.interfaces.values import finite_evidence, range_evidence
    from modpact.runtime.histogram import value_histogram

    return finite_evidence, range_evidence, summarize, value_histogram


def _one(variant: str, case: str, numel: int, repeat: int) -> dict:
    finite, ranged, summarize, histogram = _functions(variant)
    torch.manual_seed(0)
    t = torch.randn(numel)
    t[numel // 4 + 12_345] = float("nan")
    if case == "one_nan":

        def describe():
            return finite(t), summarize(t), histogram(t)
    else:

        def describe():
            return ranged(t, -3.0, 3.0), summarize(t), histogram(t)

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        ev = describe()
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    failing = ev[0]["failing"]
    return {"variant": variant, "case": case, "s": best, "extra_mb": (peak - base) / 1024, "failing": failing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=50_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="timings per process (the best counts)")
    ap.add_argument("--rounds", type=int, default=3, help="processes per variant, alternating variants")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one, args.numel, args.repeat)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.numel:,} float32 elements")
    print(f"{'case':<8} {'variant':<8} {'best s':>8} {'median s':>9} {'extra MB':>9} {'failing':>9}")
    rows = []
    for case in CASES:
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):  # alternate which goes first: a busy machine's drift hits both alike
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                cmd = [sys.executable, __file__, "--one", variant, case, "--numel", str(args.numel)]
                out = subprocess.run([*cmd, "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
                runs[variant].append(json.loads(out.stdout))
        for variant in VARIANTS:
            times = sorted(row["s"] for row in runs[variant])
            row = {
                "variant": variant,
                "case": case,
                "best_s": times[0],
                "median_s": times[len(times) // 2],
                "extra_mb": max(row["extra_mb"] for row in runs[variant]),
                "failing": runs[variant][0]["failing"],
            }
            rows.append(row)
            print(
                f"{case:<8} {variant:<8} {row['best_s']:>8.3f} {row['median_s']:>9.3f} {row['extra_mb']:>9.0f} "
                f"{row['failing']:>9,}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
