"""`modpact demo`: the main job on an embedded default (scikit-learn's digits).

1. train a digits MLP (about a second on a CPU);
2. decompose it: into stages ``encoder -> hidden -> head`` with an interface
   on every edge (guarded), and into ten per-class modules recomposed by vote;
3. run it under the Monitor on clean test data: no violation;
4. inject a fault into one module (NaN weights in ``hidden``, as from a
   diverged update) and show the report that blames it;
5. repair that module alone (the rest frozen) and compare the compute with
   retraining the whole model;
6. validate the repaired module with Hypothesis against its interface, and
   monitor the repaired model on clean data again;
7. write the fault's diagnosis as ``modpact-report.html`` and ``.json``;
8. port the repaired module: export it with its interface to ONNX
   (``hidden.onnx``, and the torch.export program ``hidden.pt2``), check the
   graph against the interface, and prove the onnxruntime session
   substitutable for the module on generated inputs and the test data
   (needs ``modpact[export]``; without it the step says so and is skipped).

Exit code 0 when the monitor blamed the injected module, the repair
validated and (with the export extra) the port was proven substitutable;
1 otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch
from rich.console import Console

import modpact as mp
from modpact.decomposition.data import DIGITS, load
from modpact.decomposition.port_onnx import check_onnx, export_onnx, load_onnx
from modpact.decomposition.training import accuracy, digits_modular, train_digits_mlp
from modpact.errors import ExtraMissing, LoadError
from modpact.runtime.contracts_info import model_contracts
from modpact.runtime.render.text import contracts_tree

FAULTY = "hidden"


@contextlib.contextmanager
def _step(console: Console, title: str) -> Iterator[None]:
    """A numbered step with a spinner while it runs and its time when done."""
    t0 = time.perf_counter()
    with console.status(title):
        yield
    console.print(f"[bold]{title}[/bold] [dim]({time.perf_counter() - t0:.1f} s)[/dim]")


def _monitored_run(mm: mp.ModularModel, x: torch.Tensor) -> mp.DiagnosisReport:
    with mp.Monitor(mm, defaults=True) as mon:
        for batch in x.split(128):
            mm(batch)
            mon.step()
    return mon.report()


def build(data=None) -> mp.ModularModel:
    """The demo's model: a digits MLP trained from seed 0, as stages
    ``encoder -> hidden -> head``, each guarded with its interface
    (``modpact inspect modpact.demo:build`` prints them)."""
    return _trained(data)[1]


def _trained(data=None) -> tuple[torch.nn.Sequential, mp.ModularModel]:
    model, _ = train_digits_mlp(seed=0, data=data)
    mm = digits_modular(model)  # shares model's layers
    for name, node in mm.nodes.items():
        mp.guard(mm.module(name), interface=node.interface, name=name)
    return model, mm


def _checked_out_dir(out_dir: str | Path) -> Path:
    """The folder for the report files, checked before any work: ``LoadError`` naming it."""
    out = Path(out_dir)
    try:
        is_dir = out.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        raise LoadError(f"no such directory: {out_dir} (--out names the folder for the report files)")
    if not os.access(out, os.W_OK | os.X_OK):
        raise LoadError(f"cannot write the report files to {out_dir}: Permission denied")
    return out


def run_demo(out_dir: str | Path = ".", console: Console | None = None) -> int:
    out = _checked_out_dir(out_dir)
    console = console or Console(highlight=False)
    torch.manual_seed(0)
    with _step(console, "1. train a digits classifier (scikit-learn's load_digits, 64 -> 64 -> 32 -> 10 MLP)"):
        data = load("digits")
        model, mm = _trained(data)
        base_acc = accuracy(model, data.x_test, data.y_test)
    console.print(f"   test accuracy {base_acc:.1%} on {len(data.y_test)} held-out digits")

    with _step(console, "2. decompose it into modules with interfaces and contracts"):
        # the stages (guarded) were made by build(); here the per-class modules
        modules = mp.decompose_classes(model, data.x_train, data.y_train, DIGITS, retention=0.6)
        composed_acc = float((mp.compose_classes(modules, DIGITS).predict(data.x_test) == data.y_test).float().mean())
    _, tree = contracts_tree("the stages and their contracts", model_contracts(mm), len(list(mm.modules())))
    console.print(tree)
    console.print(f"   edges checked: {'all compatible' if not mm.check() else mm.check()}")
    console.print(
        f"   10 per-class modules keeping 60% of the edges each, recomposed by vote: "
        f"{composed_acc:.1%} (original {base_acc:.1%})"
    )

    with _step(console, "3. monitor the model on clean test data"):
        clean = _monitored_run(mm, data.x_test)
    console.print(f"   {clean.headline()}")

    with _step(console, f"4. inject a fault: NaN weights in {FAULTY!r} (as from a diverged update)"):
        with torch.no_grad():
            layer = cast(torch.nn.Sequential, mm.module(FAULTY))[0]  # digits_modular's hidden: Linear, ReLU
            assert isinstance(layer, torch.nn.Linear)
            layer.weight[::3, ::5] = float("nan")
        report = _monitored_run(mm, data.x_test)
    report.print(console)
    root = report.root_cause
    blamed = root is not None and mm.node_of(root.blame if root.blame in dict(mm.named_modules()) else root.module)
    found = blamed == FAULTY
    console.print(
        f"   the monitor blamed {blamed!r}: "
        + ("[green]the injected module[/green]" if found else "[red]NOT the injected module[/red]")
    )

    with _step(console, f"5. repair {FAULTY!r} alone (the rest frozen), then compare with retraining everything"):
        result = mp.repair(
            mm,
            report,
            (data.x_train, data.y_train),
            eval_data=(data.x_test, data.y_test),
            reinit=True,
            epochs=20,
            seed=0,
        )
    console.print("   " + str(result).replace("\n", "\n   "))

    with _step(console, f"6. validate the repaired {FAULTY!r} with Hypothesis, and monitor the repaired model"):
        validation = mp.validate(mm.module(FAULTY), max_examples=100, seed=0)
        after = _monitored_run(mm, data.x_test)
    console.print("   " + str(validation).replace("\n", "\n   "))
    console.print(f"   {after.headline()}")

    with _step(console, "7. write the diagnosis of the fault"):
        html, js = out / "modpact-report.html", out / "modpact-report.json"
        try:
            report.to_html(html)
            js.write_text(report.to_json())
        except OSError as e:
            raise LoadError(f"cannot write the report files to {out_dir}: {e.strerror or e}") from None
    console.print(f"   {html} (open it in a browser) and {js}")

    ported = _port(console, mm, data, out)
    ok = clean.ok and found and result.substitutable.ok and after.ok and ported is not False
    done = "fault found, blamed, repaired and validated" + (
        ", and the module ported" if ported else " (not ported: the export extra is not installed)"
    )
    console.print(
        f"[bold green]demo finished: {done}[/bold green]"
        if ok
        else "[bold red]demo finished with an unexpected result (see above)[/bold red]"
    )
    return 0 if ok else 1


def _port(console: Console, mm: mp.ModularModel, data, out: Path) -> bool | None:
    """Step 8: True when the port was proven substitutable, False when it was not,
    None when the export extra is missing (said on the console)."""
    stage = mm.module(FAULTY)
    with torch.no_grad():
        h = mm.module("encoder")(data.x_test)
    title = f"8. port the repaired {FAULTY!r} to ONNX with its interface, check it, prove it substitutable"
    try:
        with _step(console, title):
            onnx_port = export_onnx(stage, example=h[:8], path=out / f"{FAULTY}.onnx")
            onnx_port.port.save(out / f"{FAULTY}.pt2")
            iface = check_onnx(onnx_port.path)
            ported = load_onnx(onnx_port.path, threads=1)
            res = mp.check_substitutable(stage, ported, tolerance=1e-5, data=h, max_examples=30, seed=0)
    except ExtraMissing as e:
        console.print(f"   skipped: {e}")
        return None
    first = next(iter(iface.inputs))
    console.print(
        f"   wrote {onnx_port.path} and {out / f'{FAULTY}.pt2'} "
        f"(torch.export {onnx_port.port.seconds:.1f} s, ONNX {onnx_port.seconds:.1f} s)"
    )
    console.print(
        f"   the graph matches interface {iface.name!r}: names, dtypes and dims "
        f"(inputs.{first}: {iface.tensor_specs('demo')[0][first].shape}) checked by check_onnx"
    )
    console.print("   onnxruntime " + str(res).replace("\n", "\n   "))
    return res.ok
