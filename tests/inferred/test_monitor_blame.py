"""Installed inferred contracts under a real Monitor: device-side flags,
blame on the first module whose output left its envelope, or on the input data."""

import pytest
import torch
from digits_ood import batch_split, corruptions

import modpact as mp
from modpact.runtime.violations import INPUT_DATA


@pytest.fixture
def installed(digits):
    ic = mp.infer_contracts(digits.model, (digits.x_train, digits.y_train))
    ic.refine((digits.x_cal, digits.y_cal))
    ic.install()
    yield ic
    ic.uninstall()


def _run(model, x):
    with mp.Monitor(model) as mon:
        model(x)
        mon.step()
    return mon.report()


def test_clean_batch_passes(digits, installed):
    rep = _run(digits.model, digits.x_test[:32])
    assert rep.ok, rep.render() if hasattr(rep, "render") else str(rep)
    assert rep.checks > 0


def test_bad_inputs_are_blamed_on_the_input_data(digits, installed):
    rep = _run(digits.model, 1.0 - digits.x_test[:16])
    root = rep.root_cause
    assert root is not None and root.module == "0" and root.kind == "precondition"
    assert root.blame == INPUT_DATA
    assert root.blame_reason == "the model's inputs broke the precondition"
    assert root.check == "envelope(input, 64 features)"
    assert root.evidence["rows_outside"] == 16


@pytest.mark.parametrize("path", ["2", "4"])
def test_a_broken_module_is_the_root_cause(digits, installed, path):
    model = digits.model
    layer = model[int(path)]
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.mul_(6.0)
        rep = _run(model, digits.x_test[:16])
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)
    root = rep.root_cause
    assert root is not None and root.module == path and root.kind == "postcondition"
    assert root.blame == path
    assert all(not v.root for v in rep.violations if v is not root)


def test_false_alarms_at_most_one_percent_and_corruptions_detected(digits, installed):
    model = digits.model
    clean = batch_split(digits.x_test, 16, 10, seed=1)
    bad = corruptions(digits.x_test, seed=3)
    sets = {
        "clean": clean,
        "inverted": batch_split(bad["inverted (16 - x)"], 16, 1),
        "noise": batch_split(bad["gaussian noise (sd 0.25)"], 16, 1),
    }
    flagged = {}
    for name, batches in sets.items():
        with mp.Monitor(model) as mon:
            for b in batches:
                model(b)
                mon.step()
            mon.report()
            flagged[name] = len({v.step for v in mon.violations}) / len(batches)
    assert flagged["clean"] <= 0.01
    assert flagged["inverted"] == 1.0 and flagged["noise"] == 1.0


def test_scores_rank_corrupted_rows_above_clean_ones(digits, installed):
    from digits_ood import auroc

    clean = installed.score(digits.x_test).numpy()
    noisy = installed.score(corruptions(digits.x_test, seed=3)["gaussian noise (sd 0.25)"]).numpy()
    assert auroc(clean, noisy) > 0.9


def test_compiled_model_checks_inferred_contracts_and_blames_the_input_data():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    ref = torch.randn(64, 4)
    ic = mp.infer_contracts(model, ref).install()
    compiled = torch.compile(model, backend="eager")
    try:
        with mp.Monitor(model) as mon:
            compiled(ref[:8])
            mon.step()
            compiled(ref[:8] * 100)
            mon.step()
        rep = mon.report()
    finally:
        ic.uninstall()
    root = rep.root_cause
    assert root is not None and root.step == 1, str(rep)
    assert root.module == "0" and root.kind == "precondition" and root.blame == INPUT_DATA
    assert all(v.step == 1 for v in rep.violations)


def test_class_boxes_keep_the_false_alarm_bound_and_catch_blank_images(digits):
    ic = mp.infer_contracts(digits.model, (digits.x_train, digits.y_train), clusters=1)
    ic.refine((digits.x_cal, digits.y_cal))
    clean = ic.score(digits.x_test)
    blank = ic.score(torch.zeros(16, 64))
    plain = mp.infer_contracts(digits.model, (digits.x_train, digits.y_train))
    plain.refine((digits.x_cal, digits.y_cal))
    assert float((clean > 0).float().mean()) <= 0.01
    assert bool((blank > 0).all())
    assert bool((plain.score(torch.zeros(16, 64)) == 0).all())  # the envelopes alone miss them
