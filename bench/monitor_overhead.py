"""Monitor overhead, measured side by side in one run.

Variants, each a ratio to the bare model measured in the same round:
  (a) bare model
  (b) modpact Monitor with default contracts (finite outputs, stable dtype) on every leaf,
      with its default settings: leaf_checks="on_violation" checks the model's outputs on
      every call and every leaf in the first call and in the re-run of a failing call
  (b') the same with leaf_checks="every_call": every leaf checked on every call
      (covered checks elided)
  (c) naive per-module checks: torch.isfinite(out).all().item() in a forward hook
      on every leaf (like fairseq's NanDetector)
  (d) torch.autograd.detect_anomaly (forward+backward only)

Each row prints the seconds it took (``s``), so a slow row shows itself; ``--models``
picks the models (mlp, resnet, transformer) and ``--rounds`` the rounds (5; 3 with --quick).

On the CPU the bench runs with one intra-op thread (``--threads``, default 1 there): on a
shared machine with more busy processes than cores, an op big enough to be split
between two threads (the transformer's, not the MLP's) waits for a descheduled thread at
its barrier, tens of milliseconds per op, and the transformer rows took minutes.

``--ops`` counts instead of timing: per monitored forward and per ``step()`` at batch 64,
the torch ops the Monitor adds to the bare forward (a ``TorchDispatchMode``; views and
detach, which launch nothing, are left out) and those that allocate their output, with
the flag buffer on its deferred path (``host_compare=False``: what it does on CUDA, where
each op is a kernel launch), and the Python function calls it adds. On a launch-bound GPU
these counts are what the Monitor's fixed cost is made of; they are the CPU's proxy for it.
It also times, with one thread, the least over 300 tries of a monitored forward (less the
bare one's least: ``fwd +us``) and of the ``step()`` after it (``step us``), on the same
deferred path: the least is what the work costs when the shared machine lets it run.

``--deferred`` times the Monitor with the flag buffer on that deferred path on the CPU
(its checks copied and read at ``step()``, as on CUDA, instead of read at once).

Usage:  .venv/bin/python bench/monitor_overhead.py [--quick] [--device cuda] [--floor] [--ops] [--deferred]
            [--json PATH] [--models mlp,resnet,transformer] [--rounds N] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, os.path.dirname(__file__))
from op_count import monitored_ops  # noqa: E402
from zoo import MODELS, example_input  # noqa: E402

from modpact.runtime import Monitor, _buffer  # noqa: E402


@contextlib.contextmanager
def naive_checks(model):
    handles = []

    def hook(mod, args, out):
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            if not torch.isfinite(out).all().item():
                raise FloatingPointError(f"non-finite output in {type(mod).__name__}")

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


ROUNDS = 5


def run_case(name, batch, backward, device, min_time, rounds=ROUNDS):
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    x = example_input(model, batch).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def fwd():
        out = model(x)
        if backward:
            out.float().sum().backward()
        return out

    variants = {"bare": contextlib.nullcontext}
    mon_holder = {}

    def monitored():
        mon = Monitor(model, defaults=True)
        mon_holder["m"] = mon
        return mon

    variants["monitor"] = monitored

    def monitored_every_call():
        mon = Monitor(model, defaults=True, leaf_checks="every_call")
        mon_holder["m"] = mon
        return mon

    variants["every_call"] = monitored_every_call
    variants["naive"] = lambda: naive_checks(model)
    if backward:
        variants["anomaly"] = lambda: torch.autograd.detect_anomaly(check_nan=True)

    times = {k: [] for k in variants}
    for _round in range(rounds):
        for key, ctx in variants.items():
            with ctx():

                def body():
                    fwd()
                    mon = mon_holder.get("m")
                    if mon is not None:
                        mon.step()
                    sync()

                body()  # warm-up
                t = Timer("body()", globals={"body": body}).blocked_autorange(min_run_time=min_time)
                times[key].append(t.median)
            mon_holder.clear()
    # each round times every variant back to back; a variant's figure is the
    # median over rounds of its ratio to bare in the same round (the shared
    # VM's speed drifts between minutes, rarely within a round)
    ratios = {k: statistics.median(t / b for t, b in zip(v, times["bare"])) for k, v in times.items()}
    ratios["bare_us"] = statistics.median(times["bare"]) * 1e6
    return ratios


def floor(min_time: float) -> None:
    """The least any per-leaf hook design can cost on the MLP forward at batch
    64: a do-nothing forward hook on every leaf, plus one ``sum`` of each
    Linear output (the tensors a finite check must read, since a ReLU
    consumes them)."""
    torch.manual_seed(0)
    model = MODELS["mlp"]()
    x = example_input(model, 64)
    leaves = [m for m in model.modules() if not list(m.children())]

    def sum_out(mod, args, out):
        out.detach().sum()

    @contextlib.contextmanager
    def floor_hooks():
        hs = [m.register_forward_hook(sum_out if isinstance(m, torch.nn.Linear) else (lambda *a: None)) for m in leaves]
        try:
            yield
        finally:
            for h in hs:
                h.remove()

    times: dict[str, list[float]] = {"bare": [], "floor": []}
    for _round in range(ROUNDS):
        for key, ctx in (("bare", contextlib.nullcontext), ("floor", floor_hooks)):
            with ctx():
                model(x)
                times[key].append(
                    Timer("f(x)", globals={"f": model, "x": x}).blocked_autorange(min_run_time=min_time).median
                )
    print(
        f"mlp batch 64 fwd: bare {min(times['bare']) * 1e6:.1f} us, hook per leaf + sum of each Linear "
        f"output: {min(times['floor']) / min(times['bare']):.2f}x"
    )


def _python_calls(fn) -> int:
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def deferred_buffer():
    """Put the flag buffer on its deferred path (``host_compare=False``); returns the undo."""
    init = _buffer.FlagBuffer.__init__
    _buffer.FlagBuffer.__init__ = lambda self, host_compare=False: init(self, host_compare)

    def restore() -> None:
        _buffer.FlagBuffer.__init__ = init

    return restore


def _least_us(model, x, mon, reps: int = 300) -> tuple[float, float]:
    """The least time of a forward, and of the ``step()`` after it, over
    ``reps`` tries (µs): the least is what the work costs when the shared
    machine lets it run, which a median under load is not."""
    fwd, step = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        model(x)
        t1 = time.perf_counter()
        if mon is not None:
            mon.step()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        step.append(t2 - t1)
    return min(fwd) * 1e6, min(step) * 1e6


def op_counts(name: str, leaf_checks: str, batch: int = 64) -> dict[str, float]:
    """What the Monitor adds to one forward and what one ``step()`` does, on
    the flag buffer's deferred path (see the module docstring)."""
    torch.manual_seed(0)
    model = MODELS[name]()
    x = example_input(model, batch)
    restore = deferred_buffer()
    try:
        bare_calls = _python_calls(lambda: model(x))
        with monitored_ops(model, x, leaf_checks) as (bare, fwd, step, mon):
            calls = _python_calls(lambda: (model(x), mon.step()))
            fwd_us, step_us = _least_us(model, x, mon)
        bare_us, _ = _least_us(model, x, None)
    finally:
        restore()
    extra = fwd.ops - bare.ops
    return {
        "fwd_ops": sum(extra.values()),
        "fwd_alloc": sum(fwd.allocating.values()) - sum(bare.allocating.values()),
        "step_ops": sum(step.ops.values()),
        "step_alloc": sum(step.allocating.values()),
        "py_calls": calls - bare_calls,
        "fwd_extra_us": fwd_us - bare_us,
        "step_us": step_us,
        "detail": ", ".join(f"{k} x{v}" for k, v in sorted((extra + step.ops).items())),  # type: ignore[dict-item]
    }


def print_op_counts(models: list[str], figures: dict) -> None:
    print(
        f"{'model':12s} {'checks':12s} {'fwd ops':>7s} {'alloc':>5s} {'step ops':>8s} {'alloc':>5s} {'py calls':>8s} "
        f"{'fwd +us':>7s} {'step us':>7s}"
    )
    for name in models:
        for leaf_checks in ("on_violation", "every_call"):
            r = op_counts(name, leaf_checks)
            print(
                f"{name:12s} {leaf_checks:12s} {r['fwd_ops']:7d} {r['fwd_alloc']:5d} {r['step_ops']:8d} "
                f"{r['step_alloc']:5d} {r['py_calls']:8d} {r['fwd_extra_us']:7.1f} {r['step_us']:7.1f}   {r['detail']}",
                flush=True,
            )
            figures[f"{name} 64 ops {leaf_checks}"] = {k: v for k, v in r.items() if k != "detail"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter timing (noisier)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--floor", action="store_true", help="only the floor of per-leaf hooks on the MLP forward")
    ap.add_argument("--json", help="also write the figures to this file (for bench/ab.py)")
    ap.add_argument("--models", default="mlp,resnet,transformer", help="comma-separated: mlp, resnet, transformer")
    ap.add_argument("--rounds", type=int, default=None, help=f"rounds per row (default {ROUNDS}; 3 with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: 1 on the CPU)")
    ap.add_argument("--ops", action="store_true", help="count the ops and Python calls the Monitor adds; no timing")
    ap.add_argument("--deferred", action="store_true", help="time the flag buffer's deferred (CUDA) path on the CPU")
    args = ap.parse_args()
    threads = args.threads or (1 if args.device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    rounds = args.rounds or (3 if args.quick else ROUNDS)
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        ap.error(f"--models: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(MODELS)}")
    if args.floor:
        floor(0.3)
        return
    if args.ops:
        figures_ops: dict = {}
        print_op_counts(args.models.split(","), figures_ops)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures_ops, f)
        return
    min_time = 0.1 if args.quick else 0.3
    if args.deferred:
        deferred_buffer()
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}"
        + (", flag buffer on its deferred path" if args.deferred else "")
    )
    print(
        f"{'model':12s} {'batch':>5s} {'pass':8s} {'bare us':>9s} {'monitor':>8s} {'every':>8s} {'naive':>8s} "
        f"{'anomaly':>8s} {'s':>5s}"
    )
    figures: dict[str, dict[str, float]] = {}
    for name in args.models.split(","):
        for batch in (1, 64):
            for backward in (False, True):
                started = time.perf_counter()
                r = run_case(name, batch, backward, args.device, min_time, rounds)
                took = time.perf_counter() - started
                figures[f"{name} {batch} {'fwd+bwd' if backward else 'fwd'}"] = r
                anomaly = f"{r['anomaly']:8.2f}" if "anomaly" in r else f"{'-':>8s}"
                print(
                    f"{name:12s} {batch:5d} {'fwd+bwd' if backward else 'fwd':8s} {r['bare_us']:9.1f} "
                    f"{r['monitor']:8.2f} {r['every_call']:8.2f} {r['naive']:8.2f} {anomaly} {took:5.0f}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    main()
