"""Inferred contracts on digits: false alarms on clean data, detection of
corrupted inputs, AUROC against a max-softmax baseline.

    .venv/bin/python bench/inferred.py [--batch 16] [--repeats 30] [--margin 0.5] [--min-scale 0.2] [--clusters 1]
    .venv/bin/python bench/inferred.py --overhead [--rounds 7] [--calls 100] [--overhead-rows train test] [--clock wall]

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

Then (or alone, with ``--overhead``) the cost of checking: the bare model and
each variant installed, with and without inferred interfaces, timed
alternately in the same rounds on 256 rows (a Monitor step per forward);
the ratio to the bare model of the same round, its median and spread, and
how many steps were flagged (a flagged step is re-run to explain it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

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


def overhead_table(
    model, variants, x, rounds: int = 7, calls: int = 100, clock=time.perf_counter
) -> list[tuple[str, float, float, float, int]]:
    """Per forward (eval, no grad) of the bare model and of the model with each
    variant's contracts installed under a Monitor (one step per forward), all
    measured alternately in the same rounds. Returns, per case, (label,
    median time, median ratio to the bare time of the same round, spread of
    that ratio (max - min over the rounds), steps flagged in the last round)."""
    import statistics

    def bare() -> tuple[float, int]:
        t = clock()
        for _ in range(calls):
            model(x)
        return (clock() - t) / calls, 0

    def monitored(ic, install) -> tuple[float, int]:
        if ic is None:  # the machinery alone: the same guards with the inferred interfaces and no condition
            ic = _Guards(model, variants["envelope"])
        ic.install(**install)
        try:
            with mp.Monitor(model) as mon:
                t = clock()
                for _ in range(calls):
                    model(x)
                    mon.step()
                dt = (clock() - t) / calls
                mon.report()
                flagged = len({v.step for v in mon.violations})
        finally:
            ic.uninstall()
        return dt, flagged

    cases: list[tuple[str, Any, dict]] = [("bare model", None, {})]
    cases.append(("guards without conditions (the guard and Monitor machinery)", None, {}))
    cases.append(("guards without conditions, no interfaces", None, {"interfaces": False}))
    for label, ic in variants.items():
        cases.append((label, ic, {}))
        cases.append((f"{label}, install(interfaces=False)", ic, {"interfaces": False}))
    times: dict[str, list[float]] = {c[0]: [] for c in cases}
    ratios: dict[str, list[float]] = {c[0]: [] for c in cases}
    flagged: dict[str, int] = {}
    with torch.no_grad():
        for _ in range(2):  # warm-up
            bare()
            for _label, ic, install in cases[1:]:
                monitored(ic, install)
        for _ in range(rounds):
            b, _ = bare()
            times["bare model"].append(b)
            ratios["bare model"].append(1.0)
            for label, ic, install in cases[1:]:
                m, flagged[label] = monitored(ic, install)
                times[label].append(m)
                ratios[label].append(m / b)
    return [
        (
            label,
            statistics.median(times[label]),
            statistics.median(ratios[label]),
            max(ratios[label]) - min(ratios[label]),
            flagged.get(label, 0),
        )
        for label, _, _ in cases
    ]


class _Guards:
    """Guards on the modules ``ic`` installs on, with its interfaces (or none)
    and no condition: what checking costs before any value is read."""

    def __init__(self, model, ic):
        self.model, self.ic = model, ic

    def install(self, interfaces: bool = True) -> None:
        mods = dict(self.model.named_modules())
        for path in self.ic.conditions():
            iface = self.ic.interface(path) if interfaces and path not in self.ic.undescribed else None
            mp.guard(mods[path], interface=iface, name=path or type(self.model).__name__)

    def uninstall(self) -> None:
        mods = dict(self.model.named_modules())
        for path in self.ic.conditions():
            mp.unguard(mods[path])


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _reference_ok(c, env):
    """The device forms as they were before they were prepared per shape
    (one expression per condition, bounds cached per device and dtype): the
    'before' of the per-check table."""
    from modpact.inference import Envelope, InClassBoxes

    t = c._tensor(env)
    lo, hi = c._on(t)
    if isinstance(c, Envelope):
        return torch.maximum(lo - t, t - hi).amax() <= 0
    x = t.reshape(t.shape[0], 1, lo.shape[1])
    inside = torch.maximum(lo - x, x - hi).amax(dim=2) <= 0
    if isinstance(c, InClassBoxes):
        s = env[c.reads[1]]
        inside = inside & (c.labels.unsqueeze(0) == s.argmax(dim=1, keepdim=True))
    return inside.any(dim=1).all()


def _range_form(c, env):
    """What the Monitor records for a condition with a range form: the
    tensor it gives and one ``aminmax`` of it (the flag buffer's reduction);
    ``device_ok`` where there is none (and in revisions before range forms)."""
    ranged = getattr(c, "device_range", None)
    form = ranged(env) if ranged is not None else None
    if type(form) is tuple:
        return torch.aminmax(form[0])
    return c.device_ok(env)


def per_check_table(model, variants, x, rounds: int, calls: int, clock) -> list[tuple[str, str, float, float, float]]:
    """Each envelope and box condition of the union variant (and the class
    boxes of the class variant), on the tensors of one forward of ``x``:
    the reference expression and the form the Monitor records (the range
    form and its ``aminmax``), timed alternately (``calls`` checks per
    round). Returns (module, condition, reference s, range form s, median ratio)."""
    import statistics

    from modpact.inference import Envelope, InBoxes

    seen: dict[str, dict] = {}
    hooks = []
    for path, m in model.named_modules():
        if path:

            def hook(mod, args, out, path=path):
                seen[path] = {"input": args[0], "result": out}

            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    conds = []
    for label in variants:
        if "boxes" not in label:
            continue
        for path, (req, ens) in variants[label].conditions().items():
            for c in (*req, *ens):
                if isinstance(c, (Envelope, InBoxes)) and not (label.startswith("+class") and type(c) is Envelope):
                    conds.append((path, c))
    out = []
    with torch.no_grad():
        for path, c in conds:
            env = seen[path]
            assert bool(c.device_ok(env)) == bool(_reference_ok(c, env)) == bool(c.ok(env))  # the same verdict
            ref, new, ratios = [], [], []
            for _ in range(rounds):
                t = clock()
                for _ in range(calls):
                    _reference_ok(c, env)
                a = (clock() - t) / calls
                t = clock()
                for _ in range(calls):
                    _range_form(c, env)
                b = (clock() - t) / calls
                ref.append(a)
                new.append(b)
                ratios.append(a / b)
            out.append((path, c.text, statistics.median(ref), statistics.median(new), statistics.median(ratios)))
    return out


def print_overhead(model, variants, x, what: str, rounds: int, calls: int, clock: str = "wall") -> None:
    rows = overhead_table(model, variants, x, rounds=rounds, calls=calls, clock=CLOCKS[clock])
    print(
        f"\noverhead: {what}, batch {x.shape[0]}, eval, no grad, a Monitor step per forward; median of {rounds} "
        f"alternating rounds of {calls} forwards; {clock} time; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print("| checked | per forward | ratio to bare | ratio spread (max - min) | steps flagged (of the last round) |")
    print("|---|---|---|---|---|")
    for label, t, r, spread, flagged in rows:
        print(f"| {label} | {t * 1e6:.0f} us | {r:.2f}x | {spread:.2f} | {flagged} of {calls} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=30, help="random partitions of the clean test rows")
    ap.add_argument("--clusters", type=int, default=1)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--min-scale", type=float, default=0.2)
    ap.add_argument("--overhead", action="store_true", help="only the cost of checking (skip the detection tables)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds of the overhead measurement")
    ap.add_argument("--calls", type=int, default=100, help="forwards per case and round")
    ap.add_argument(
        "--overhead-rows",
        nargs="+",
        choices=("train", "test"),
        default=["train", "test"],
        help="the 256 rows timed: train (inside every check) and/or test (some leave the union boxes)",
    )
    ap.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall time, or the process's CPU time (less sensitive to other processes on a shared machine)",
    )
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
    if args.overhead:
        overhead_part(model, variants, d, args)
        return

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
    print(
        f"max-softmax threshold {threshold:.4f} (99th percentile of {len(cal_batches)} clean calibration batches); "
        f"detection {time.perf_counter() - t0:.1f} s"
    )
    overhead_part(model, variants, d, args)


def overhead_part(model, variants, d, args) -> None:
    """The cost of checking, every variant side by side in one run: on 256
    training rows (inside every envelope and box: the cost of checks that
    pass) and on 256 test rows (some leave the union boxes: each such step
    is re-run to explain it, and that cost is shown apart)."""
    x_rows = {"train": d.x_train[:256], "test": d.x_test[:256]}
    rows = per_check_table(model, variants, x_rows["train"], args.rounds, 200, CLOCKS[args.clock])
    print(
        f"\nper check, on the tensors of one forward of 256 train rows: median of {args.rounds} alternating "
        f"rounds of 200 checks; {args.clock} time"
    )
    print("| module | condition | reference expression | range form + aminmax (as the Monitor records it) | speed-up |")
    print("|---|---|---|---|---|")
    for path, text, a, b, r in rows:
        print(f"| {path} | {text} | {a * 1e6:.1f} us | {b * 1e6:.1f} us | {r:.1f}x |")
    for which in args.overhead_rows:
        print_overhead(model, variants, x_rows[which], f"{which} rows", args.rounds, args.calls, args.clock)


if __name__ == "__main__":
    main()
