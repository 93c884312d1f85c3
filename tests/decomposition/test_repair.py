import copy

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.decomposition.training import digits_modular
from modpact.errors import CompatibilityError, SpecError
from modpact.interfaces import Interface, TensorSpec


@pytest.fixture
def faulty(mlp, digits):
    """The digits MLP as a ModularModel with 'hidden' corrupted (NaN weights, as from a
    diverged update) and a contract that sees it."""
    mm = digits_modular(copy.deepcopy(mlp))
    with torch.no_grad():
        mm.module("hidden")[0].weight[::3, ::5] = float("nan")
    mp.guard(mm.module("hidden"), ensures=[mp.finite("result")], name="hidden")
    yield mm
    mp.unguard(mm.module("hidden"))


def diagnose(mm, x):
    with mp.Monitor(mm, defaults=True) as mon:
        mm(x)
        mon.step()
    return mon.report()


def test_repair_retrains_only_the_blamed_node(faulty, digits):
    report = diagnose(faulty, digits.x_test)
    assert report.root_cause.module == "hidden.2" and faulty.node_of(report.root_cause.module) == "hidden"
    frozen = {k: v.clone() for k, v in faulty.state_dict().items() if not k.startswith("hidden.")}
    result = mp.repair(
        faulty,
        report,
        (digits.x_train, digits.y_train),
        eval_data=(digits.x_test, digits.y_test),
        reinit=True,
        epochs=15,
    )
    assert result.node == "hidden" and result.how == "retrain"
    for k, v in faulty.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert result.accuracy_before < 0.8 < 0.93 < result.accuracy_after
    assert result.substitutable.ok, result.substitutable.reasons
    assert result.substitutable.validation.generated.examples > 0  # check_substitutable ran
    assert 0 < result.compute.flops < result.full.flops  # no backward into the encoder, no weight grads downstream
    assert result.flops_ratio < 0.6
    assert "repair of 'hidden' (retrain)" in str(result)
    assert diagnose(faulty, digits.x_test).ok


def test_a_retrain_that_does_not_restore_the_contract_is_reported_not_substitutable(faulty, digits):
    result = mp.repair(faulty, "hidden.0", (digits.x_train, digits.y_train), epochs=1, compare_full=False, examples=10)
    assert result.full is None and result.flops_ratio is None
    assert not result.substitutable.ok  # training from NaN weights keeps them NaN
    reasons = "\n".join(result.substitutable.reasons)
    assert "contract broken on the evaluation inputs: hidden: postcondition failed" in reasons
    assert "check_substitutable: hidden breaks" in reasons


def test_repair_by_replacement_checks_the_interface(faulty, mlp, digits):
    good = copy.deepcopy(mlp[2:4])
    result = mp.repair(
        faulty,
        "hidden",
        (digits.x_train, digits.y_train),
        replacement=good,
        epochs=0,
        compare_full=False,
        eval_data=(digits.x_test, digits.y_test),
    )
    assert result.how == "replace" and result.compute.flops == 0
    assert result.accuracy_after == pytest.approx(
        float((mlp(digits.x_test).argmax(-1) == digits.y_test).float().mean())
    )
    bad = nn.Linear(64, 16)
    bad.interface = Interface(
        "h16", {"h": TensorSpec("batch 64", dtype="float32")}, {"h": TensorSpec("batch 16", dtype="float32")}
    )
    with pytest.raises(CompatibilityError, match=r"edge hidden -> head.h: 16 does not satisfy fixed size 32"):
        mp.repair(faulty, "hidden", (digits.x_train, digits.y_train), replacement=bad)


def test_repair_refuses_a_clean_report_and_unknown_paths(mlp, digits):
    mm = digits_modular(copy.deepcopy(mlp))
    clean = diagnose(mm, digits.x_test[:8])
    with pytest.raises(SpecError, match="the diagnosis report has no root cause"):
        mp.repair(mm, clean, (digits.x_train, digits.y_train))
    with pytest.raises(SpecError, match=r"module path 'decoder.1' is not inside any node of 'digits-mlp'"):
        mp.repair(mm, "decoder.1", (digits.x_train, digits.y_train))
    with pytest.raises(SpecError, match="repair: expected a ModularModel, got Sequential"):
        mp.repair(mlp, "0", (digits.x_train, digits.y_train))


def test_repair_refuses_mismatched_data(mlp, digits):
    mm = digits_modular(copy.deepcopy(mlp))
    with pytest.raises(SpecError, match=r"repair\(data=\(x, y\)\): expected two tensors with the same"):
        mp.repair(mm, "hidden", (digits.x_train, digits.y_train[:5]))
