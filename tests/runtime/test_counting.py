"""No verdict lost: every violation counted past the record cap, raised ones
kept, bad arguments named."""

import pytest
import torch
from torch import nn

from modpact.errors import SpecError
from modpact.runtime import Monitor, MonitorViolation


def _broken():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    return model


def test_violations_past_the_cap_are_counted_and_the_headline_says_so():
    model = _broken()
    with (
        torch.no_grad(),
        Monitor(model, defaults=True, leaf_checks="every_call", replay=False, max_violations=50) as mon,
    ):
        for _ in range(1000):  # 2 violations per call: 2000 in all
            model(torch.rand(2, 4))
            mon.step()
    rep = mon.report()
    assert not rep.ok and rep.total == 2000 and len(rep.violations) == 50
    assert rep.headline().startswith("FAILED: 2000 violation(s), 50 kept as records (the rest counted only); ")
    assert rep.totals == {"0: postcondition finite(output)": 1000, "1: postcondition finite(output)": 1000}
    assert rep.counts() == {"0": 1000, "1": 1000}
    capped = [n for n in rep.notes if "max_violations" in n]
    assert len(capped) == 1, rep.notes  # one note, not one per dropped violation
    assert rep.root_cause.module == "0"


def test_totals_survive_the_json_round_trip():
    model = _broken()
    with (
        torch.no_grad(),
        Monitor(model, defaults=True, leaf_checks="every_call", replay=False, max_violations=3) as mon,
    ):
        for _ in range(5):
            model(torch.rand(2, 4))
    rep = mon.report()
    back = type(rep).from_json(rep.to_json())
    assert back.total == rep.total == 10 and back.headline() == rep.headline()


@pytest.mark.parametrize(
    "value", [0, -1, "abc", True, 1.5, None], ids=["zero", "negative", "str", "bool", "float", "None"]
)
def test_max_violations_must_be_a_positive_int(value):
    with pytest.raises(SpecError) as e:
        Monitor(nn.Linear(2, 2), defaults=True, max_violations=value)
    assert str(e.value) == (
        f"Monitor(max_violations={value!r}): expected an int >= 1 (violations past it are counted, not kept as records)"
    )


def test_an_unknown_module_path_is_an_error_with_close_matches():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
    with pytest.raises(SpecError) as e:
        Monitor(model, defaults=True, modules=["0.0", "0.O"], leaf_checks="every_call")
    assert str(e.value) == "Monitor(modules=...): Sequential has no module '0.O'; did you mean '0.1', '0.0'?"
    with pytest.raises(SpecError, match="expected module paths as str"):
        Monitor(model, defaults=True, modules=[0], leaf_checks="every_call")
    with pytest.raises(SpecError, match="expected module paths"):
        Monitor(model, defaults=True, modules="0.0", leaf_checks="every_call")


def test_raise_mode_keeps_what_it_raised_and_raises_only_for_new_violations():
    model = _broken()
    raised = []
    with torch.no_grad(), Monitor(model, "raise", defaults=True, leaf_checks="every_call") as mon:
        for _ in range(3):
            model(torch.rand(2, 4))
            try:
                mon.step()
            except MonitorViolation as e:
                raised.append(e)
        mon.step()  # nothing new: no raise
    assert len(raised) == 3 and all(e.module == "0" for e in raised)
    assert [e.report.total for e in raised] == [2, 4, 6]
    rep = mon.report()
    assert not rep.ok and rep.total == 6 and rep.headline().startswith("FAILED: 6 violation(s)")
