"""Rendering cost of diagnosis reports: text, HTML, JUnit and JSON for a real
report with 1,000 and 10,000 violations (a NaN weight in the first layer of an
MLP poisons every later layer, every step).

    .venv/bin/python bench/report_render.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo import MLP, example_input  # noqa: E402

from modpact.runtime import DiagnosisReport, Monitor  # noqa: E402


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


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    print(f"torch {torch.__version__}")
    print(
        f"{'violations':>10} {'text ms':>9} {'html ms':>9} {'junit ms':>9} {'to_json ms':>10} {'from_json ms':>12} "
        f"{'html KB':>8}"
    )
    for steps in (250, 2500):
        rep = big_report(steps)
        js = rep.to_json()
        row = [
            best_of(rep.render_text),
            best_of(rep.to_html),
            best_of(rep.to_junit),
            best_of(rep.to_json),
            best_of(lambda js=js: DiagnosisReport.from_json(js)),
        ]
        print(
            f"{len(rep.violations):>10} "
            + " ".join(f"{1000 * t:>9.1f}" for t in row[:3])
            + f" {1000 * row[3]:>10.1f} {1000 * row[4]:>12.1f} {len(rep.to_html()) / 1024:>8.1f}"
        )


if __name__ == "__main__":
    main()
