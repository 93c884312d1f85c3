"""Rendering cost of diagnosis reports: text, HTML, JUnit and JSON, for

* real reports with 1,000 and 10,000 violations (a NaN weight in the first
  layer of an MLP poisons every later layer, every step);
* a wide dataflow graph: 16,000 modules and 32,000 edges;
* many distinct causes: 6,000 root violations at 6,000 modules, each with a
  consequence (12,000 records), every module with an interface contract.

Each renderer must stay near-linear in the report's size (docs/reports.md).

    .venv/bin/python bench/report_render.py [--quick] [--repeat 3] [--only edges roots] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo import MLP, example_input  # noqa: E402

import modpact  # noqa: E402
from modpact.interfaces import Interface, TensorSpec  # noqa: E402
from modpact.runtime import DiagnosisReport, Monitor  # noqa: E402
from modpact.runtime.records import ConditionRecord, ModuleContracts, ViolationRecord  # noqa: E402


def big_report(steps: int) -> DiagnosisReport:
    torch.manual_seed(0)
    model = MLP(hidden=32)
    with torch.no_grad():
        model.body[0].weight[0, 0] = float("nan")
    x = example_input(model, 4)
    with Monitor(model, defaults=True, replay=False) as mon:
        for _ in range(steps):
            model(x)
            mon.step()
    return mon.report()


def _violation(i: int, module: str, **kw) -> ViolationRecord:
    fields = dict(
        step=i,
        call=0,
        seq=0,
        module=module,
        kind="postcondition",
        check="finite(output)",
        tensor="output",
        blame=module,
        blame_reason="its preconditions held",
    )
    return ViolationRecord(**{**fields, **kw})


def many_edges(edges: int = 32_000, modules: int = 16_000) -> DiagnosisReport:
    """A wide dataflow graph: ``edges`` edges between ``modules`` modules, one root cause."""
    names = [f"m{i}" for i in range(modules)]
    pairs = [(names[i % modules], names[(7 * i + 1 + i // modules) % modules]) for i in range(edges)]
    return DiagnosisReport(
        model="Wide",
        steps=1,
        calls=1,
        checks=modules,
        modules_monitored=names,
        module_types=dict.fromkeys(names, "Linear"),
        edges=pairs,
        violations=[_violation(0, names[3]), _violation(0, names[4], seq=1, root=False, caused_by=0)],
    )


def many_roots(roots: int = 6_000) -> DiagnosisReport:
    """``roots`` distinct root causes (interface violations at as many modules),
    each with one consequence; every module with an interface contract."""
    iface = Interface("block", {"x": TensorSpec("b 4")}, {"y": TensorSpec("b 4", finite=True)}).to_dict()
    names = [f"stage{i // 100}.block{i % 100}" for i in range(roots)]
    violations = []
    for i, m in enumerate(names):
        violations.append(
            _violation(
                i,
                m,
                kind="interface",
                check="interface 'block' v1.0",
                tensor="outputs.y",
                evidence={"failing": 3, "of": 16, "first_index": [0, 1]},
            )
        )
        violations.append(_violation(i, f"{m}.act", seq=1, root=False, caused_by=2 * i))
    return DiagnosisReport(
        model="Deep",
        steps=roots,
        calls=roots,
        checks=2 * roots,
        modules_monitored=[*names, *(f"{m}.act" for m in names)],
        violations=violations,
        contracts=[
            ModuleContracts(module=m, type="Block", interface=iface, ensures=[ConditionRecord(text="finite(y)")])
            for m in names
        ],
    )


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller reports (a tenth)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    ap.add_argument("--json", metavar="PATH", help="write the figures (rows of named numbers)")
    ap.add_argument("--only", nargs="+", choices=["monitored", "edges", "roots"], help="these reports only")
    args = ap.parse_args()
    k = 10 if args.quick else 1
    cases = [
        ("monitored", f"{250 // k * 4:,} violations (monitored)", lambda: big_report(250 // k)),
        ("monitored", f"{2500 // k * 4:,} violations (monitored)", lambda: big_report(2500 // k)),
        ("edges", f"{32_000 // k:,} edges", lambda: many_edges(32_000 // k, 16_000 // k)),
        ("roots", f"{6_000 // k:,} roots + {6_000 // k:,} consequences", lambda: many_roots(6_000 // k)),
    ]
    cases = [(name, make) for kind, name, make in cases if not args.only or kind in args.only]
    print(f"torch {torch.__version__}, modpact from {Path(modpact.__file__).parent}, best of {args.repeat}")
    print(
        f"{'report':<36} {'text s':>8} {'html s':>8} {'junit s':>8} {'to_json s':>9} {'from_json s':>11} "
        f"{'JSON MB':>8} {'html KB':>8}"
    )
    rows = {}
    for name, make in cases:
        rep = make()
        js = rep.to_json()
        row = {
            "text_s": best_of(rep.render_text, args.repeat),
            "html_s": best_of(rep.to_html, args.repeat),
            "junit_s": best_of(rep.to_junit, args.repeat),
            "to_json_s": best_of(rep.to_json, args.repeat),
            "from_json_s": best_of(lambda js=js: DiagnosisReport.from_json(js), args.repeat),
            "json_mb": len(js) / 1e6,
            "html_kb": len(rep.to_html()) / 1024,
        }
        rows[name] = row
        print(
            f"{name:<36} {row['text_s']:>8.3f} {row['html_s']:>8.3f} {row['junit_s']:>8.3f} {row['to_json_s']:>9.3f} "
            f"{row['from_json_s']:>11.3f} {row['json_mb']:>8.2f} {row['html_kb']:>8.1f}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
