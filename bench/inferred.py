"""Inferred contracts on digits: false alarms on clean data, detection of
corrupted inputs, AUROC against a max-softmax baseline.

    .venv/bin/python bench/inferred.py [--batch 16] [--repeats 30] [--margin 0.5] [--min-scale 0.2] [--clusters 1]

Protocol (docs/inferred.md): digits split 60/20/20 (train / calibration /
test, fixed seed); an MLP 64-64-32-10 trained on train. Envelopes are inferred
on train and refined (explicitly) on calibration. Batch verdicts come from a
real Monitor run over the installed guards (a batch is flagged when the
Monitor records any violation). The baseline scores a row by 1 - max softmax
and a batch by its mean row score (the fairer of mean and max for it:
with the max, clean batches already score high); its threshold is the 99th percentile of
clean calibration batches (1% false alarms there). Row-level AUROC compares
clean test rows with corrupted test rows, using InferredContracts.score (sum
of normalised envelope excursions) and 1 - max softmax.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from digits_ood import auroc, batch_split, corruptions, load  # noqa: E402

import modpact as mp  # noqa: E402


def monitor_flags(model, batches) -> np.ndarray:
    """Per batch: did the Monitor record a violation?"""
    with mp.Monitor(model) as mon:
        for b in batches:
            model(b)
            mon.step()
        mon.report()
        steps = {v.step for v in mon.violations}
    return np.array([i in steps for i in range(len(batches))])


def softmax_score(model, x) -> np.ndarray:
    with torch.no_grad():
        return (1 - torch.softmax(model(x), dim=1).max(dim=1).values).numpy()


def overhead(model, ic, x, rounds: int = 5, calls: int = 200, **install) -> tuple[float, float, float]:
    """Median time per forward (eval, no grad) of the bare model and of the
    model with the installed contracts under a Monitor (one step per forward),
    measured alternately in the same rounds; returns (bare s, monitored s, ratio)."""
    import statistics

    def bare() -> float:
        t = time.perf_counter()
        for _ in range(calls):
            model(x)
        return (time.perf_counter() - t) / calls

    def monitored() -> float:
        ic.install(**install)
        try:
            with mp.Monitor(model) as mon:
                t = time.perf_counter()
                for _ in range(calls):
                    model(x)
                    mon.step()
                dt = (time.perf_counter() - t) / calls
        finally:
            ic.uninstall()
        return dt

    with torch.no_grad():
        bare(), monitored()  # warm-up
        pairs = [(bare(), monitored()) for _ in range(rounds)]
    b = statistics.median(p[0] for p in pairs)
    m = statistics.median(p[1] for p in pairs)
    return b, m, statistics.median(p[1] / p[0] for p in pairs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=30, help="random partitions of the clean test rows")
    ap.add_argument("--clusters", type=int, default=1)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--min-scale", type=float, default=0.2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = load(seed=0, epochs=150)
    model = d.model
    print(
        f"digits MLP: test accuracy {d.test_accuracy:.3f}; train {len(d.x_train)}, calibration {len(d.x_cal)}, "
        f"test {len(d.x_test)} rows; batches of {args.batch}; margin {args.margin}, min_scale {args.min_scale}; "
        f"torch {torch.__version__}"
    )

    variants = {}
    k = args.clusters
    for label, kw in (
        ("envelope", {}),
        (f"+class boxes k={k}", {"clusters": k, "boxes": "head"}),
        (f"+union boxes k={k}", {"clusters": k, "boxes": "every"}),
    ):
        ic = mp.infer_contracts(model, (d.x_train, d.y_train), margin=args.margin, min_scale=args.min_scale, **kw)
        ic.refine((d.x_cal, d.y_cal))
        variants[label] = ic

    clean_batches = batch_split(d.x_test, args.batch, args.repeats, seed=1)
    cal_batches = batch_split(d.x_cal, args.batch, args.repeats, seed=2)
    threshold = np.quantile([softmax_score(model, b).mean() for b in cal_batches], 0.99)
    sets = {"clean test (false alarms)": d.x_test, **corruptions(d.x_test, seed=3)}
    clean_soft = softmax_score(model, d.x_test)

    header = ["input", "batches"]
    for label in variants:
        header += [f"{label}: batches flagged", f"{label}: rows flagged", f"{label}: AUROC"]
    header += ["max-softmax: batches flagged", "max-softmax: AUROC"]
    rows = []
    for name, x in sets.items():
        batches = clean_batches if name.startswith("clean") else batch_split(x, args.batch, 2, seed=4)
        row = [name, str(len(batches))]
        for ic in variants.values():
            ic.install()
            try:
                flags = monitor_flags(model, batches)
            finally:
                ic.uninstall()
            s = ic.score(x).numpy()
            au = "-" if name.startswith("clean") else f"{auroc(ic.score(d.x_test).numpy(), s):.3f}"
            row += [f"{flags.mean():.1%}", f"{(s > 0).mean():.1%}", au]
        soft = np.array([softmax_score(model, b).mean() > threshold for b in batches])
        au = "-" if name.startswith("clean") else f"{auroc(clean_soft, softmax_score(model, x)):.3f}"
        row += [f"{soft.mean():.1%}", au]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    cases = [(label, ic, {}) for label, ic in variants.items()]
    cases.insert(1, ("envelope, install(interfaces=False)", variants["envelope"], {"interfaces": False}))
    for label, ic, install in cases:
        b, m, r = overhead(model, ic, d.x_test[:256], **install)
        print(
            f"overhead ({label}, batch 256, Monitor step per forward): bare {b * 1e6:.0f} us, "
            f"checked {m * 1e6:.0f} us, ratio {r:.2f}x"
        )
    print(
        f"max-softmax threshold {threshold:.4f} (99th percentile of {len(cal_batches)} clean calibration batches); "
        f"total {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
