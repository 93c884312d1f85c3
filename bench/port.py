"""Port figures: export times and onnxruntime vs eager agreement (docs/port.md).

For each model: ``mp.export`` (torch.export, with the interface's dynamic
shapes) and ``mp.export_onnx`` times, then the largest |ORT - eager|
difference on generated inputs, and ``check_substitutable`` at the stated
tolerance (torch.isclose with rtol = atol = tolerance).

    .venv/bin/python bench/port.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo import MLP, SmallResNet, TinyTransformer, hf_bert, hf_gpt2  # noqa: E402

import modpact as mp  # noqa: E402
from modpact.decomposition.data import load  # noqa: E402
from modpact.decomposition.training import digits_modular, train_digits_mlp  # noqa: E402


def f32(shape, **kw):
    return mp.TensorSpec(shape, dtype="float32", **kw)


def cases(quick: bool):
    d = load("digits")
    model, _ = train_digits_mlp(0, data=d)
    mm = digits_modular(copy.deepcopy(model))
    with torch.no_grad():
        h = mm.module("encoder")(d.x_test)
    yield "digits 'hidden' stage", mm.module("hidden"), mm.nodes["hidden"].interface, h[:8], 1e-5, None
    torch.manual_seed(0)
    yield (
        "MLP 64-256x3-10",
        MLP().eval(),
        mp.Interface("mlp", {"x": f32("batch 64", range=(-1, 1))}, {"logits": f32("batch 10")}),
        torch.rand(8, 64) * 2 - 1,
        1e-5,
        None,
    )
    yield (
        "SmallResNet (conv, batch norm)",
        SmallResNet().eval(),
        mp.Interface("resnet", {"x": f32("batch 1 8 8", range=(0, 1))}, {"logits": f32("batch 10")}),
        torch.rand(4, 1, 8, 8),
        1e-4,
        None,
    )
    yield (
        "TinyTransformer (nn.TransformerEncoder)",
        TinyTransformer().eval(),
        mp.Interface(
            "tokens", {"tokens": mp.TensorSpec("batch seq", dtype="int64", indices=100)}, {"logits": f32("batch 10")}
        ),
        torch.randint(0, 100, (4, 12)),
        1e-4,
        None,
    )
    if not quick:
        yield hf_case("Hugging Face BERT (tiny random config)", hf_bert().eval(), "bert", "batch 3")
        gpt2 = hf_gpt2().eval()
        gpt2.config.use_cache = False  # the cache is an opaque output: ports take tensors only
        yield hf_case("Hugging Face GPT-2 (tiny random config)", gpt2, "gpt2", "batch seq 100")


def hf_case(title, model, name, logits):
    """A tiny Hugging Face model (bench/zoo.py) called with 100 token ids and an all-ones mask; 32 positions."""
    iface = mp.Interface(
        name,
        {
            "input_ids": mp.TensorSpec("batch seq", dtype="int64", indices=100),
            "attention_mask": mp.TensorSpec("batch seq", dtype="int64", range=(1, 1)),
        },
        {"logits": f32(logits)},
    )
    example = {"input_ids": torch.randint(0, 100, (2, 7)), "attention_mask": torch.ones(2, 7, dtype=torch.long)}
    return title, model, iface, example, 1e-4, {"seq": (2, 32)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip BERT and GPT-2; 20 generated inputs instead of 50")
    a = ap.parse_args()
    torch.set_num_threads(1)
    n = 20 if a.quick else 50
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, {n} generated inputs")
    print(f"{'model':42} {'torch.export':>12} {'ONNX':>8} {'max |ORT-eager|':>16} {'tolerance':>9}  substitutable")
    with tempfile.TemporaryDirectory() as tmp:
        for name, module, iface, example, tol, dims in cases(a.quick):
            t0 = time.perf_counter()
            port = mp.export_onnx(module, iface, example, Path(tmp) / "m.onnx", dims=dims)
            total = time.perf_counter() - t0
            ported = mp.load_onnx(port.path, threads=1)
            res = mp.check_substitutable(
                mp.guard(module, interface=iface),
                ported,
                tolerance=tol,
                max_examples=n,
                seed=0,
                raise_on_failure=False,
            )
            mp.unguard(module)
            print(
                f"{name:42} {port.port.seconds:>10.2f} s {port.seconds:>6.2f} s {res.generated.max_abs_diff:>16.2e} "
                f"{tol:>9.0e}  {'yes' if res.ok else 'NO: ' + '; '.join(res.failures)[:80]}"
                f"  (export_onnx in all {total:.1f} s)"
            )


if __name__ == "__main__":
    main()
