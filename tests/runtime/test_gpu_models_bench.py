"""bench/gpu_models.py runs end to end on the CPU (--quick): every variant is
timed (inferred envelopes too, with no step flagged on the data they were
inferred from), the checks that need CUDA say they were not measured, and a NaN in one
weight of each model is blamed on its module. The figures themselves come
from a GPU run (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_models.py"


@pytest.mark.slow
def test_gpu_models_bench_runs_on_the_cpu_and_blames_the_faulty_modules(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--device", "cpu", "--quick", "--rounds", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"resnet50", "gpt2"}
    for name, fig in figures.items():
        for label in ("fwd", "fwd+bwd"):
            row = fig[label]
            assert set(row) == {"bare", "monitor", "every_call", "naive", "bare_ms"}, row
            assert row["bare"] == 1.0 and all(v > 0 for v in row.values())
        env = fig["envelopes"]  # issue 21: inferred envelopes on every leaf, on the data they came from
        assert env["envelopes"] > 0 and env["bare_ms"] > 0 and env["guarded_modules"] > 10, env
        assert env["flagged_steps"] == 0 and env["syncs"] == "not measured (no CUDA device)", env
        assert all(v == "not measured (no CUDA device)" for v in fig["syncs"].values()), fig["syncs"]
        assert fig["memory"] == {"verdict": "not measured (no CUDA device)"}
        assert fig["blame"]["ok"] and fig["blame"]["root_cause"] == fig["blame"]["expected"], (name, fig["blame"])
    assert figures["resnet50"]["blame"]["expected"] == "layer3.1.conv2"
    assert figures["gpt2"]["blame"]["expected"] == "transformer.h.1.mlp.c_fc"
    assert "not measured (no CUDA device)" in done.stdout
