"""Rendering is near-linear in the report's size: eight times the edges, or
eight times the distinct root causes, costs about eight times as much CPU
time in every renderer, not sixty-four (what a search of a list per element
gave: 18 s for 32,000 edges, 28.6 s for 12,000 records). A complexity check,
not a speed test: the ratio of CPU times of one process, best of three;
bench/report_render.py measures the times (docs/performance.md)."""

from __future__ import annotations

import time

import pytest
import report_render

RENDERERS = ["render_text", "to_html", "to_junit"]


def cpu_time(fn) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize(
    "make, small, large",
    [
        (report_render.many_edges, (3_000, 1_500), (24_000, 12_000)),
        (report_render.many_roots, (250,), (2_000,)),
    ],
    ids=["edges", "roots"],
)
@pytest.mark.parametrize("renderer", RENDERERS)
def test_eight_times_the_report_costs_about_eight_times_the_time(make, small, large, renderer):
    a, b = make(*small), make(*large)
    getattr(a, renderer)()  # warm up
    ratio = cpu_time(getattr(b, renderer)) / max(cpu_time(getattr(a, renderer)), 1e-4)
    assert ratio < 20, f"{renderer}: 8x the report took {ratio:.1f}x the time"
