"""decompose -> compose -> accuracy within a bound, on digits, from training to vote (fast)."""

import time

import torch

import modpact as mp
from modpact.decomposition.data import DIGITS, load
from modpact.decomposition.training import accuracy, train_digits_mlp


def test_decompose_compose_keeps_accuracy_at_60_percent_retention():
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    d = load("digits")
    for seed in (0, 1):
        model, _ = train_digits_mlp(seed, data=d)
        original = accuracy(model, d.x_test, d.y_test)
        modules = mp.decompose_classes(model, d.x_train, d.y_train, DIGITS, retention=0.6, seed=seed)
        assert all(abs(m.retained - 0.6) < 1e-3 for m in modules)
        composed = mp.compose_classes(modules, DIGITS)
        acc = float((composed.predict(d.x_test) == d.y_test).float().mean())
        assert original > 0.95
        assert acc >= original - 0.015, (seed, original, acc)
        composed.interface.check_outputs(composed(d.x_test), composed.interface.check_inputs(d.x_test))
    assert time.perf_counter() - t0 < 30


def test_the_guide_example_runs():
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "decomposition.md").read_text()
    code = re.search(r"```python\n(.*?)```", guide, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/decomposition.md", "exec"), scope)
    assert scope["pred"].shape == (540,)
