"""Decomposition experiments on scikit-learn's digits (docs/decomposition.md records the output).

    .venv/bin/python bench/decomposition.py [--seeds 5]

1. Composed per-class modules vs the original model (accuracy points), as a
   function of the fraction of edges each module keeps (MLP 64-64-32-10 and a
   small CNN): tangling identification (negatives=1) with normalized ranking
   (the default), concern identification only (negatives=0), global and
   per-layer ranking, and the whole model pruned with the same scores over all
   classes (no modules).
2. Reuse: 3 of 10 class modules composed into a 3-class classifier vs the same
   MLP trained from scratch on those 3 classes.
3. Replacement: each class module swapped for the same class's module of a
   model trained from another seed.
4. Patching: a model trained with class "8" under-represented (5% of its
   samples) patched with class "8"'s module from a model trained on all data.
5. Repair of a blamed node of a ModularModel vs retraining the whole model.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import modpact as mp  # noqa: E402
from modpact.decomposition.concern import _masks, edge_scores  # noqa: E402
from modpact.decomposition.data import DIGITS, load  # noqa: E402
from modpact.decomposition.training import accuracy, digits_modular, make_cnn, train, train_digits_mlp  # noqa: E402

RETENTIONS = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]


def fmt(xs: list[float]) -> str:
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:+.2f} ± {s:.2f} [{min(xs):+.2f}, {max(xs):+.2f}]"


def pct(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"


def composed_acc(modules, x, y, labels=DIGITS) -> float:
    clf = mp.compose_classes(modules, labels)
    return float((clf.predict(x) == y).float().mean())


def whole_pruned_acc(model, d, retention: float) -> float:
    """The whole model pruned with the same edge scores, computed over all training inputs."""
    pruned = copy.deepcopy(model)
    named = dict(pruned.named_modules())
    with torch.no_grad():
        for n, keep in _masks(edge_scores(model, d.x_train), retention, "normalized").items():
            named[n].weight.mul_(keep)
    return accuracy(pruned, d.x_test, d.y_test)


def train_cnn(seed: int, d):
    torch.manual_seed(seed)
    m = make_cnn()
    train(m, d.x_train, d.y_train, epochs=30, lr=3e-3, seed=seed)
    return m


def table_retention(d, seeds: int, arch: str) -> None:
    models = [train_digits_mlp(s, data=d)[0] if arch == "mlp" else train_cnn(s, d) for s in range(seeds)]
    base = [100 * accuracy(m, d.x_test, d.y_test) for m in models]
    print(
        f"\n### 1{'a' if arch == 'mlp' else 'b'}. Composed vs original accuracy, {arch.upper()}, "
        f"{seeds} seeds (original: {pct(base)}%)\n"
    )
    print(
        "| edges kept per module | TI, normalized ranking (default) | CI only | TI, global ranking | "
        "TI, per-layer ranking | whole model pruned, no decomposition | module edges kept (measured) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in RETENTIONS:
        ti, ci, glob, layer, whole, kept = [], [], [], [], [], []
        for s, m in enumerate(models):
            mods = mp.decompose_classes(m, d.x_train, d.y_train, DIGITS, retention=r, negatives=1.0, seed=s)
            ti.append(100 * composed_acc(mods, d.x_test, d.y_test) - base[s])
            kept.append(statistics.mean(x.retained for x in mods))
            mods0 = mp.decompose_classes(m, d.x_train, d.y_train, DIGITS, retention=r, negatives=0.0, seed=s)
            ci.append(100 * composed_acc(mods0, d.x_test, d.y_test) - base[s])
            mods1 = mp.decompose_classes(m, d.x_train, d.y_train, DIGITS, retention=r, scope="global", seed=s)
            glob.append(100 * composed_acc(mods1, d.x_test, d.y_test) - base[s])
            mods2 = mp.decompose_classes(m, d.x_train, d.y_train, DIGITS, retention=r, scope="layer", seed=s)
            layer.append(100 * composed_acc(mods2, d.x_test, d.y_test) - base[s])
            whole.append(100 * whole_pruned_acc(m, d, r) - base[s])
        print(
            f"| {r:.0%} | {fmt(ti)} | {fmt(ci)} | {fmt(glob)} | {fmt(layer)} | {fmt(whole)} | "
            f"{statistics.mean(kept):.3f} |"
        )


def table_reuse(d, seeds: int, retention: float) -> None:
    print(
        f"\n### 2. Reuse: 3 of 10 class modules (retention {retention:.0%}) vs an MLP trained from scratch "
        f"on the 3 classes, {seeds} seeds\n"
    )
    print("| seed | classes | composed modules (%) | from scratch (%) | from-scratch training (s) |")
    print("|---|---|---|---|---|")
    comp, scratch = [], []
    for s in range(seeds):
        gen = torch.Generator().manual_seed(100 + s)
        classes = sorted(str(int(i)) for i in torch.randperm(10, generator=gen)[:3])
        model, _ = train_digits_mlp(s, data=d)
        mods = mp.decompose_classes(model, d.x_train, d.y_train, DIGITS, retention=retention, classes=classes, seed=s)
        sub = d.subset(classes)
        comp.append(100 * composed_acc(mods, sub.x_test, sub.y_test, sub.labels))
        t0 = time.perf_counter()
        m3, _ = train_digits_mlp(s, data=sub)
        secs = time.perf_counter() - t0
        scratch.append(100 * accuracy(m3, sub.x_test, sub.y_test))
        print(f"| {s} | {','.join(classes)} | {comp[-1]:.2f} | {scratch[-1]:.2f} | {secs:.2f} |")
    print(f"| mean ± sd | | {pct(comp)} | {pct(scratch)} | |")


def table_replacement(d, seeds: int, retention: float) -> None:
    print(
        f"\n### 3. Replacement: each class's module swapped for the same class's module of the next seed's "
        f"model (retention {retention:.0%})\n"
    )
    models = [train_digits_mlp(s, data=d)[0] for s in range(seeds + 1)]
    mods = [
        mp.decompose_classes(m, d.x_train, d.y_train, DIGITS, retention=retention, seed=s) for s, m in enumerate(models)
    ]
    print("| seed | composed (%) | mean over the 10 single swaps (%) | worst swap (%) | all 10 swapped (%) |")
    print("|---|---|---|---|---|")
    deltas = []
    for s in range(seeds):
        own = 100 * composed_acc(mods[s], d.x_test, d.y_test)
        swaps = [
            100 * composed_acc([mods[s + 1][i] if i == c else mods[s][i] for i in range(10)], d.x_test, d.y_test)
            for c in range(10)
        ]
        allswap = 100 * composed_acc(mods[s + 1], d.x_test, d.y_test)
        deltas += [x - own for x in swaps]
        print(f"| {s} | {own:.2f} | {statistics.mean(swaps):.2f} | {min(swaps):.2f} | {allswap:.2f} |")
    print(f"\nsingle swap minus own composition: {fmt(deltas)} points over {len(deltas)} swaps")


def table_patch(d, seeds: int, retention: float, weak_class: str = "8", keep: float = 0.05) -> None:
    print(
        f"\n### 4. Patching: class {weak_class!r} under-represented ({keep:.0%} of its training samples); "
        f"its module replaced by a strong model's (retention {retention:.0%})\n"
    )
    print(
        f"| seed | weak model acc | weak precision / recall on {weak_class} | patched acc | "
        f"patched precision / recall on {weak_class} | strong model acc |"
    )
    print("|---|---|---|---|---|---|")
    c = DIGITS.index(weak_class)
    dp, dr, da = [], [], []
    for s in range(seeds):
        gen = torch.Generator().manual_seed(s)
        idx_c = (d.y_train == c).nonzero().flatten()
        drop = idx_c[torch.randperm(len(idx_c), generator=gen)[int(keep * len(idx_c)) :]]
        keep_mask = torch.ones(len(d.y_train), dtype=torch.bool)
        keep_mask[drop] = False
        weak_data = copy.copy(d)
        weak_data.x_train, weak_data.y_train = d.x_train[keep_mask], d.y_train[keep_mask]
        weak, _ = train_digits_mlp(s, data=weak_data)
        strong, _ = train_digits_mlp(s + 50, data=d)
        wm = mp.decompose_classes(weak, weak_data.x_train, weak_data.y_train, DIGITS, retention=retention, seed=s)
        sm = mp.decompose_classes(
            strong, d.x_train, d.y_train, DIGITS, retention=retention, classes=[weak_class], seed=s
        )
        patched = mp.compose_classes([sm[0] if m.label_space.labels[0] == weak_class else m for m in wm], DIGITS)

        def pr(pred):
            tp = int(((pred == c) & (d.y_test == c)).sum())
            return 100 * tp / max(1, int((pred == c).sum())), 100 * tp / int((d.y_test == c).sum())

        with torch.no_grad():
            wpred, ppred = weak(d.x_test).argmax(-1), patched.predict(d.x_test)
        (wp, wr), (pp, prc) = pr(wpred), pr(ppred)
        wacc = 100 * float((wpred == d.y_test).float().mean())
        pacc = 100 * float((ppred == d.y_test).float().mean())
        dp.append(pp - wp), dr.append(prc - wr), da.append(pacc - wacc)
        print(
            f"| {s} | {wacc:.2f} | {wp:.1f} / {wr:.1f} | {pacc:.2f} | {pp:.1f} / {prc:.1f} | "
            f"{100 * accuracy(strong, d.x_test, d.y_test):.2f} |"
        )
    print(f"\npatched minus weak: precision {fmt(dp)}, recall {fmt(dr)}, accuracy {fmt(da)} points")


def table_repair(d, seeds: int) -> None:
    print(
        "\n### 5. Repair: node 'hidden' (Linear 64->32 + ReLU) of a 3-node ModularModel corrupted "
        "(a third of its weight rows get NaN entries, as from a diverged update), blamed by the Monitor, "
        "retrained from fresh weights with the rest frozen, "
        "vs retraining the whole model from fresh weights (same 20 epochs, data and optimizer)\n"
    )
    print(
        "| seed | faulty acc | repaired acc | whole retrained acc | repair / whole FLOPs | "
        "repair / whole wall time | substitutable |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in range(seeds):
        mm = digits_modular_guarded(s, d)
        with torch.no_grad():
            mm.module("hidden")[0].weight[s::3, ::5] = float("nan")
        with mp.Monitor(mm, defaults=True) as mon:
            mm(d.x_test)
            mon.step()
        report = mon.report()
        r = mp.repair(
            mm, report, (d.x_train, d.y_train), eval_data=(d.x_test, d.y_test), epochs=20, reinit=True, seed=s
        )
        print(
            f"| {s} | {100 * r.accuracy_before:.2f} | {100 * r.accuracy_after:.2f} | {100 * r.full_accuracy:.2f} | "
            f"{r.flops_ratio:.3f} | {r.time_ratio:.3f} | {'yes' if r.substitutable.ok else 'no'} |"
        )


def digits_modular_guarded(seed: int, d) -> mp.ModularModel:
    """The digits MLP as encoder -> hidden -> head, with a finite-output contract on 'hidden'."""
    mm = digits_modular(train_digits_mlp(seed, data=d)[0])
    mp.guard(mm.module("hidden"), ensures=[mp.finite("result")], name="hidden")
    return mm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--retention", type=float, default=0.6, help="retention for tables 2-4")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    d = load("digits")
    print(f"digits: {len(d.x_train)} train / {len(d.x_test)} test, torch {torch.__version__}, {args.threads} thread(s)")
    table_retention(d, args.seeds, "mlp")
    table_retention(d, args.seeds, "cnn")
    table_reuse(d, args.seeds, args.retention)
    table_replacement(d, args.seeds, args.retention)
    table_patch(d, args.seeds, args.retention)
    table_repair(d, args.seeds)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
