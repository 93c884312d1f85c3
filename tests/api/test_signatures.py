"""The public signatures are typed: Literal modes that match the values the
runtime accepts, and real classes where there is one (they resolve at run
time too, so documentation tools and ``typing.get_type_hints`` can read them)."""

import typing
from collections.abc import Callable

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.contracts import MODES, ConditionLike, ContractMode
from modpact.decomposition.concern import SCOPES, PruneScope
from modpact.inference.inferred import BOX_MODES, GRANULARITIES, PRECONDITIONS, BoxMode, Granularity, Preconditions
from modpact.runtime.scope import LEAF_CHECKS, SETTLES, LeafChecks, Mode, Settle
from modpact.runtime.scope import MODES as MONITOR_MODES


@pytest.mark.parametrize(
    "alias,values",
    [
        (ContractMode, MODES),
        (Mode, MONITOR_MODES),
        (LeafChecks, LEAF_CHECKS),
        (Settle, SETTLES),
        (Granularity, GRANULARITIES),
        (Preconditions, PRECONDITIONS),
        (BoxMode, BOX_MODES),
        (PruneScope, SCOPES),
    ],
)
def test_literal_types_list_the_accepted_values(alias, values):
    assert typing.get_args(alias) == values


def hints(fn):
    return typing.get_type_hints(fn)


def test_contract_modes_and_arguments_are_typed():
    for fn in (mp.guard, mp.requires, mp.ensures, mp.contract):
        assert hints(fn)["mode"] == ContractMode | None, fn
    assert hints(mp.set_mode) == {"mode": ContractMode, "return": ContractMode}
    assert hints(mp.get_mode)["return"] == ContractMode
    g = hints(mp.guard)
    assert g["module"] is nn.Module and g["interface"] == mp.Interface | None
    assert set(typing.get_args(ConditionLike)) <= set(typing.get_args(g["requires"]))  # unions flatten
    assert mp.Condition in typing.get_args(hints(mp.requires)["cond"])
    assert hints(mp.contract)["interface"] == mp.Interface | None


def test_validation_takes_modules_and_interfaces():
    module = nn.Module | Callable[..., typing.Any]
    v = hints(mp.validate)
    assert v["module"] == module and v["interface"] == mp.Interface | None
    assert v["device"] == str | torch.device | None
    s = hints(mp.check_substitutable)
    assert s["original"] == s["replacement"] == module
    assert s["interface"] == s["replacement_interface"] == mp.Interface | None
    c = hints(mp.check_composition)
    assert c["producer"] == c["consumer"] == module
    assert hints(mp.given)["interface"] is mp.Interface
    assert typing.get_args(hints(mp.SubstitutionResult)["mode"]) == ("elementwise", "top1")


def test_monitor_inference_and_decomposition_options_are_literals():
    m = hints(mp.Monitor.__init__)
    assert m["mode"] == Mode and m["leaf_checks"] == LeafChecks | None and m["settle"] == Settle
    i = hints(mp.infer_contracts)
    assert i["boxes"] == BoxMode and i["granularity"] == Granularity
    assert hints(mp.InferredContracts.install)["preconditions"] == Preconditions
    assert hints(mp.decompose_classes)["scope"] == PruneScope


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: mp.guard(nn.Linear(2, 2), mode="loud"), "got 'loud'"),
        (lambda: mp.set_mode("loud"), "got 'loud'"),
        (lambda: mp.requires(lambda x: True, mode="loud"), "got 'loud'"),
        (lambda: mp.Monitor(nn.Linear(2, 2), mode="warn"), "Monitor\\(mode='warn'\\)"),
        (lambda: mp.Monitor(nn.Linear(2, 2), leaf_checks="all"), "Monitor\\(leaf_checks='all'\\)"),
        (lambda: mp.Monitor(nn.Linear(2, 2), settle="epoch"), "Monitor\\(settle='epoch'\\)"),
        (lambda: mp.infer_contracts(nn.Linear(2, 2), torch.randn(4, 2), boxes="all"), "got 'all'"),
        (lambda: mp.infer_contracts(nn.Linear(2, 2), torch.randn(4, 2), granularity="row"), "got 'row'"),
    ],
    ids=["guard", "set_mode", "requires", "monitor-mode", "leaf_checks", "settle", "boxes", "granularity"],
)
def test_a_wrong_string_is_still_a_spec_error_naming_it(call, message):
    with pytest.raises(mp.SpecError, match=message):
        call()  # type checkers flag these calls; the runtime check stays for untyped callers
