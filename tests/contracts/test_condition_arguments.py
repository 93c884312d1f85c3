"""Condition arguments that no value could be checked against are refused
when the condition is built (or rebuilt from JSON), naming the argument; and
a bad MODPACT_CONTRACTS is an error where the mode is used, not at import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import modpact as mp
from modpact.contracts.condition import Condition
from modpact.errors import SpecError

NAN = float("nan")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: mp.in_range("x", NAN, 1), "Expected in_range(lo) to be a number, got nan"),
        (lambda: mp.in_range("x", 0, NAN), "Expected in_range(hi) to be a number, got nan"),
        (lambda: mp.in_range("x", 2**70, None), "Expected in_range(lo) to fit in 64 bits"),
        (lambda: mp.norm_at_most("x", NAN), "Expected norm_at_most(bound) to be a number, got nan"),
        (lambda: mp.simplex("x", tol=NAN), "Expected simplex(tol) to be a number, got nan"),
    ],
    ids=["lo", "hi", "huge", "norm", "simplex"],
)
def test_nan_bounds_are_refused(build, message):
    with pytest.raises(SpecError) as info:
        build()
    assert str(info.value) == message or str(info.value).startswith(message)


def test_infinite_bounds_still_mean_unbounded():
    c = mp.in_range("x", float("-inf"), 1)
    assert c.ok({"x": torch.tensor([-1e30, 1.0])}) and not c.ok({"x": torch.tensor([NAN])})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "in_range", "params": {"name": "x", "lo": NAN, "hi": 1}}, "in_range(lo) to be a number, got nan"),
        ({"name": "in_range", "params": 3}, "params of 'in_range' is not a dict"),
        ({"name": ["in_range"]}, "Unknown condition name ['in_range']"),
        ({"name": "in_range", "params": {"name": "x", "lo": 0}, "why": 7}, "why of 'in_range' is a int"),
        ({"name": "in_range", "params": {"nme": "x"}}, "Cannot rebuild condition 'in_range'"),
        (5, "Condition.from_dict: expected a dict, got int"),
    ],
)
def test_rebuilding_a_condition_from_bad_json(data, message):
    with pytest.raises(SpecError, match=None) as info:
        Condition.from_dict(data)
    assert message in str(info.value)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODPACT_CONTRACTS": "junk"}
    return subprocess.run([sys.executable, code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_bad_mode_in_the_environment_is_an_error_where_it_is_used():
    help_ = subprocess.run(
        [sys.executable, "-m", "modpact", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "MODPACT_CONTRACTS": "junk"},
        timeout=120,
    )
    assert help_.returncode == 0 and help_.stdout.startswith("usage: modpact") and help_.stderr == ""
    used = _run(
        "-c",
        "import torch, modpact as mp\n"
        "try:\n    mp.guard(torch.nn.Linear(2, 2))\nexcept mp.SpecError as e:\n    print('guard:', e)\n"
        "try:\n    mp.get_mode()\nexcept mp.SpecError as e:\n    print('get_mode:', e)\n"
        "mp.set_mode('warn')\nprint('set:', mp.get_mode())",
    )
    message = (
        "MODPACT_CONTRACTS='junk' is not a mode; expected one of raise, warn, record, off (or 0/false to switch off)"
    )
    assert used.stdout.splitlines() == [f"guard: {message}", f"get_mode: {message}", "set: warn"], used.stderr
