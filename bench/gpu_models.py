"""Large models under the Monitor: ResNet-50 and GPT-2 small, on a GPU (or a CPU smoke test).

For each model and pass (forward; forward+backward), each a ratio to the bare
model timed in the same round (rounds alternate the variants):
  bare        the model alone
  monitor     Monitor(defaults=True): its default settings (leaf_checks="on_violation")
  every_call  Monitor(defaults=True, leaf_checks="every_call")
  naive       torch.isfinite(out).all().item() in a forward hook on every leaf
  envelopes   (forward, eval mode, no grad; issue 21) contracts inferred by
              infer_contracts on the timed batch, on every leaf, under a Monitor
              (a step per forward), against the bare model in eval mode in the same
              rounds; with how many timed steps were flagged (0 expected: the same data)
              and, on CUDA, whether its steady state syncs
Then three checks, each printed with its verdict:
  syncs   on CUDA, the steady state under torch.cuda.set_sync_debug_mode("error") for the
          Monitor's defaults, every_call, every_call with replay=False and backward=True
          (on a CPU there is no device to sync with: not measured, and said so)
  memory  on CUDA, the peak memory of one forward+backward, bare against the Monitor
  blame   a NaN in one weight (ResNet-50 layer3.1.conv2, GPT-2 h.5.mlp.c_fc; --quick: h.1):
          the report's root cause must name that module (exit status 1 if not)

ResNet-50 is torchvision's where torchvision loads, else bench/zoo.py's ResNet50 (the same
layout and names); GPT-2 small is transformers' GPT2LMHeadModel from GPT2Config() (random
weights, nothing downloaded). Full size: ResNet-50 batch 64 at 224x224, GPT-2 batch 8 x 512.
--quick shrinks both (ResNet-50's layout at width 8 with 1, 1, 2, 1 blocks on 16x16 images,
GPT-2 with 2 layers of width 64) and times less: a smoke test that runs in seconds on a CPU.

Usage:  .venv/bin/python bench/gpu_models.py [--device cuda] [--quick] [--models resnet50,gpt2] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.benchmark import Timer

sys.path.insert(0, os.path.dirname(__file__))
from monitor_overhead import naive_checks  # noqa: E402
from zoo import ResNet50  # noqa: E402

from modpact.runtime import Monitor  # noqa: E402


def resnet50(quick: bool) -> tuple[nn.Module, str]:
    if not quick:
        try:
            from torchvision.models import resnet50 as tv_resnet50

            return tv_resnet50(weights=None), "torchvision"
        except Exception:  # not installed, or a build that does not load here
            pass
    if quick:
        return ResNet50(width=8, n_classes=10, blocks=(1, 1, 2, 1)), "bench/zoo.py, in miniature"
    return ResNet50(), "bench/zoo.py"


def gpt2(quick: bool) -> tuple[nn.Module, str]:
    from transformers import GPT2Config, GPT2LMHeadModel

    if quick:
        config = GPT2Config(
            vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
        )
    else:
        config = GPT2Config()  # GPT-2 small: 12 layers, width 768, 124M parameters
    return GPT2LMHeadModel(config), "transformers"


class Case:
    """One model on one device: how to build it, call it, and where to put a NaN."""

    def __init__(self, name: str, quick: bool, device: str):
        self.name = name
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        if name == "resnet50":
            self.model, self.source = resnet50(quick)
            batch, side = (2, 16) if quick else (64, 224)
            self.args: tuple = (torch.randn(batch, 3, side, side, generator=g),)
            self.kwargs: dict = {}
            self.faulty = "layer3.1.conv2"
            self.shape = f"batch {batch} x 3x{side}x{side}"
        elif name == "gpt2":
            self.model, self.source = gpt2(quick)
            batch, seq = (2, 16) if quick else (8, 512)
            vocab = self.model.config.vocab_size
            self.args = ()
            self.kwargs = {"input_ids": torch.randint(0, vocab, (batch, seq), generator=g)}
            self.faulty = f"transformer.h.{1 if quick else 5}.mlp.c_fc"
            self.shape = f"batch {batch} x {seq} tokens"
        else:
            raise SystemExit(f"unknown model {name!r}: expected resnet50 or gpt2")
        self.model.to(device)
        self.args = tuple(a.to(device) for a in self.args)
        self.kwargs = {k: v.to(device) for k, v in self.kwargs.items()}

    def run(self, backward: bool) -> None:
        out = self.model(*self.args, **self.kwargs)
        if backward:
            logits = out if isinstance(out, torch.Tensor) else out.logits
            logits.float().sum().backward()
            self.model.zero_grad(set_to_none=True)


def time_variants(case: Case, backward: bool, device: str, rounds: int, min_time: float) -> dict[str, float]:
    """Median over rounds of each variant's time over bare's in the same round."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    monitors: dict[str, Callable[[], Any]] = {
        "bare": contextlib.nullcontext,
        "monitor": lambda: Monitor(case.model, defaults=True),
        "every_call": lambda: Monitor(case.model, defaults=True, leaf_checks="every_call"),
        "naive": lambda: naive_checks(case.model),
    }
    times: dict[str, list[float]] = {k: [] for k in monitors}
    for _ in range(rounds):
        for key, make in monitors.items():
            with make() as ctx:
                step = ctx.step if isinstance(ctx, Monitor) else (lambda: None)

                def body(step: Callable[[], None] = step) -> None:
                    case.run(backward)
                    step()
                    sync()

                body()  # warm-up: the first call under a Monitor checks every leaf
                timer = Timer("body()", globals={"body": body})
                times[key].append(timer.blocked_autorange(min_run_time=min_time).median)
    ratios = {k: statistics.median(t / b for t, b in zip(v, times["bare"])) for k, v in times.items()}
    ratios["bare_ms"] = statistics.median(times["bare"]) * 1e3
    return ratios


def time_envelopes(case: Case, device: str, rounds: int, min_time: float) -> dict[str, Any]:
    """Inferred envelopes on every leaf (eval, no grad, a Monitor step per forward)
    against the bare model in eval mode, alternating in the same rounds."""
    import modpact as mp

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    was_training = case.model.training
    case.model.eval()
    try:
        with torch.no_grad():
            data = case.kwargs if case.kwargs else case.args[0]
            started = time.perf_counter()
            ic = mp.infer_contracts(case.model, data)
            infer_s = time.perf_counter() - started
            checks = sum(len(req) + len(ens) for req, ens in ic.conditions().values())
            times: dict[str, list[float]] = {"bare": [], "envelopes": []}
            flagged = 0
            for _ in range(rounds):
                for key in times:
                    if key == "envelopes":
                        ic.install()
                    try:
                        with Monitor(case.model) if key == "envelopes" else contextlib.nullcontext() as mon:
                            step = mon.step if isinstance(mon, Monitor) else (lambda: None)

                            def body(step: Callable[[], None] = step) -> None:
                                case.model(*case.args, **case.kwargs)
                                step()
                                sync()

                            body()
                            timer = Timer("body()", globals={"body": body})
                            times[key].append(timer.blocked_autorange(min_run_time=min_time).median)
                        if isinstance(mon, Monitor):
                            flagged += len({v.step for v in mon.report().violations})
                    finally:
                        if key == "envelopes":
                            ic.uninstall()
            syncs = "not measured (no CUDA device)"
            if device == "cuda":  # the steady state, as sync_check does for the defaults
                ic.install()
                try:
                    with Monitor(case.model) as mon:
                        for _ in range(2):
                            case.model(*case.args, **case.kwargs)
                            mon.step()
                        torch.cuda.synchronize()
                        torch.cuda.set_sync_debug_mode("error")
                        try:
                            for _ in range(3):
                                case.model(*case.args, **case.kwargs)
                                mon.step()
                            syncs = "none"
                        except RuntimeError as e:
                            syncs = f"SYNC: {str(e).splitlines()[0]}"
                        finally:
                            torch.cuda.set_sync_debug_mode(0)
                finally:
                    ic.uninstall()
    finally:
        case.model.train(was_training)
    ratio = statistics.median(t / b for t, b in zip(times["envelopes"], times["bare"]))
    return {
        "bare_ms": statistics.median(times["bare"]) * 1e3,
        "envelopes": ratio,
        "guarded_modules": len(ic.conditions()),
        "conditions": checks,
        "flagged_steps": flagged,
        "infer_s": infer_s,
        "syncs": syncs,
    }


SYNC_SETTINGS = {
    "defaults": {"defaults": True},
    "every_call": {"defaults": True, "leaf_checks": "every_call"},
    "every_call replay=False": {"defaults": True, "leaf_checks": "every_call", "replay": False},
    "backward=True": {"defaults": True, "backward": True},
}


def sync_check(case: Case, device: str) -> dict[str, str]:
    """Steady-state host-device syncs under each Monitor setting ("none", or the error)."""
    if device != "cuda":
        return {k: "not measured (no CUDA device)" for k in SYNC_SETTINGS}
    found: dict[str, str] = {}
    for label, settings in SYNC_SETTINGS.items():
        backward = bool(settings.get("backward"))
        with Monitor(case.model, **settings) as mon:
            for _ in range(2):  # warm-up: the first call, pinned buffers, allocations
                case.run(backward)
                mon.step()
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(3):
                    case.run(backward)
                    mon.step()
                found[label] = "none"
            except RuntimeError as e:
                found[label] = f"SYNC: {str(e).splitlines()[0]}"
            finally:
                torch.cuda.set_sync_debug_mode(0)
    return found


def memory_check(case: Case, device: str) -> dict[str, Any]:
    """Peak memory (MiB) of one forward+backward, bare and under Monitor(defaults=True)."""
    if device != "cuda":
        return {"verdict": "not measured (no CUDA device)"}
    peaks: dict[str, float] = {}
    for label, make in (("bare", contextlib.nullcontext), ("monitor", lambda: Monitor(case.model, defaults=True))):
        with make():
            case.run(True)  # warm-up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            case.run(True)
            torch.cuda.synchronize()
            peaks[label] = torch.cuda.max_memory_allocated() / 2**20
    return {**peaks, "ratio": peaks["monitor"] / peaks["bare"], "verdict": f"{peaks['monitor'] / peaks['bare']:.3f}x"}


def blame_check(case: Case) -> dict[str, Any]:
    """A NaN in one weight of ``case.faulty`` (a convolution's centre tap, which every output
    position uses): does the report's root cause name that module?"""
    weight = case.model.get_submodule(case.faulty).weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            if weight.dim() == 4:
                weight[0, 0, weight.shape[2] // 2, weight.shape[3] // 2] = float("nan")
            else:
                weight.view(-1)[0] = float("nan")
        with Monitor(case.model, defaults=True) as mon:
            case.run(False)
            mon.step()
        report = mon.report()
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    root = report.root_cause
    found = None if root is None else root.module
    return {"expected": case.faulty, "root_cause": found, "ok": found == case.faulty}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small models, short timing: a smoke test")
    ap.add_argument("--models", default="resnet50,gpt2")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    min_time = 0.01 if args.quick else 0.5
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {args.device} ({name}), {'quick' if args.quick else 'full size'}")
    figures: dict[str, Any] = {}
    failed = False
    for model_name in args.models.split(","):
        started = time.perf_counter()
        case = Case(model_name, args.quick, args.device)
        print(f"\n{model_name} ({case.source}), {case.shape}")
        print(f"{'pass':8s} {'bare ms':>9s} {'monitor':>8s} {'every':>8s} {'naive':>8s}")
        rows = {}
        for backward in (False, True):
            r = time_variants(case, backward, args.device, rounds, min_time)
            label = "fwd+bwd" if backward else "fwd"
            rows[label] = r
            print(f"{label:8s} {r['bare_ms']:9.2f} {r['monitor']:8.3f} {r['every_call']:8.3f} {r['naive']:8.3f}")
        env = time_envelopes(case, args.device, rounds, min_time)
        rows["envelopes"] = env
        print(
            f"fwd, eval, inferred envelopes on every leaf ({env['guarded_modules']} modules, "
            f"{env['conditions']} conditions, inferred in {env['infer_s']:.1f} s): bare {env['bare_ms']:.2f} ms, "
            f"{env['envelopes']:.3f}x; steps flagged: {env['flagged_steps']} (0 expected); "
            f"syncs in the steady state: {env['syncs']}"
        )
        failed = failed or env["flagged_steps"] > 0 or env["syncs"].startswith("SYNC")
        syncs = sync_check(case, args.device)
        for label, verdict in syncs.items():
            print(f"syncs in the steady state, {label}: {verdict}")
        memory = memory_check(case, args.device)
        print(f"peak memory of a forward+backward, monitor / bare: {memory['verdict']}")
        blame = blame_check(case)
        print(
            f"NaN in {blame['expected']}.weight: root cause {blame['root_cause']} "
            f"({'right' if blame['ok'] else 'WRONG'})"
        )
        failed = failed or not blame["ok"] or any(v.startswith("SYNC") for v in syncs.values())
        print(f"({time.perf_counter() - started:.0f} s)")
        figures[model_name] = {"source": case.source, "shape": case.shape, **rows, "syncs": syncs, "memory": memory}
        figures[model_name]["blame"] = blame
        del case
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
