import pytest
import torch

import modpact as mp
from modpact.decomposition.data import DIGITS
from modpact.decomposition.training import train_digits_mlp
from modpact.errors import CompatibilityError, SpecError
from modpact.interfaces import LabelSpace, TensorSpec

PERMUTED = LabelSpace("digits-permuted", ["3", "7", "0", "9", "1", "5", "8", "2", "6", "4"])


@pytest.fixture(scope="module")
def permuted_model(digits):
    """A model whose output k means PERMUTED.labels[k]."""
    data = digits.relabel(PERMUTED)
    model, _ = train_digits_mlp(1, data=data)
    return model


@pytest.fixture(scope="module")
def modules(mlp, digits):
    return mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, retention=0.7)


def test_predict_is_the_vote(modules, digits):
    clf = mp.compose_classes(modules, DIGITS)
    conf = clf(digits.x_test)
    pred = clf.predict(digits.x_test)
    votes = conf > 0.5
    for i in range(len(conf)):
        if votes[i].any():  # the most confident voter wins
            voters = votes[i].nonzero().flatten()
            assert pred[i] == voters[conf[i, voters].argmax()]
        else:  # nobody votes: the most confident module wins
            assert pred[i] == conf[i].argmax()
    assert clf.interface.outputs["scores"].labels == DIGITS
    assert torch.equal(pred, conf.argmax(-1))  # a voter is always more confident than a non-voter


def test_modules_of_a_permuted_model_align_by_name(permuted_model, digits):
    mods = mp.decompose_classes(
        permuted_model, digits.x_train, digits.relabel(PERMUTED).y_train, PERMUTED, retention=1.0
    )
    clf = mp.compose_classes(mods, DIGITS)  # modules in PERMUTED order, output in DIGITS order
    assert clf.adapter.perm.tolist() == PERMUTED.align(DIGITS)
    with torch.no_grad():
        native = permuted_model(digits.x_test).argmax(-1)  # index into PERMUTED
    as_digit = torch.tensor([int(PERMUTED.labels[i]) for i in native])
    assert torch.equal(clf.predict(digits.x_test), as_digit)


def test_modules_from_two_models_with_different_label_orders_compose(modules, permuted_model, digits):
    pmods = mp.decompose_classes(
        permuted_model, digits.x_train, digits.relabel(PERMUTED).y_train, PERMUTED, retention=0.7
    )
    mixed = [m for m in modules if int(m.concern) % 2 == 0] + [m for m in pmods if int(m.concern) % 2 == 1]
    clf = mp.compose_classes(mixed, DIGITS)
    acc = float((clf.predict(digits.x_test) == digits.y_test).float().mean())
    assert acc > 0.93, acc
    # without alignment (index order) the same modules would be mostly wrong
    wrong = float((clf(digits.x_test)[:, clf.adapter.perm.argsort()].argmax(-1) == digits.y_test).float().mean())
    assert wrong < 0.5


def test_subset_composition_default_label_space(modules, digits):
    three = [m for m in modules if m.concern in ("2", "5", "9")]
    clf = mp.compose_classes(three)
    assert clf.labels.labels == ("2", "5", "9")
    sub = digits.subset(["2", "5", "9"])
    assert float((clf.predict(sub.x_test) == sub.y_test).float().mean()) > 0.95


def test_with_and_without_class(modules, digits):
    clf = mp.compose_classes(modules[:9])
    assert clf.labels.labels == tuple(str(i) for i in range(9))
    full = clf.with_class(modules[9])
    assert full.labels == DIGITS
    smaller = full.without_class("4")
    assert "4" not in smaller.labels and len(smaller.labels) == 9
    with pytest.raises(CompatibilityError, match=r"cannot exclude class '4' from 'composed'\n  - no module for '4'"):
        smaller.without_class("4")


def test_refuses_two_modules_for_one_class(modules):
    with pytest.raises(CompatibilityError, match="more than one module per class\n  - class '1' has 2 modules"):
        mp.compose_classes([modules[1], modules[1], modules[2]])


def test_refuses_missing_and_extra_classes(modules):
    target = LabelSpace("two", ["0", "1"])
    with pytest.raises(CompatibilityError) as e:
        mp.compose_classes(modules[1:3], target)
    assert str(e.value) == (
        "cannot compose 2 module(s) into 'two'\n"
        "  - class '0' of 'two' has no module\n"
        "  - module for class '2' has no place in 'two'"
    )


def test_refuses_modules_with_incompatible_inputs(modules, digits):
    odd = mp.decompose_classes(
        modules[0].net,
        digits.x_train.double().float(),
        digits.y_train,
        DIGITS,
        classes=["1"],
        input_spec=TensorSpec("batch 32", dtype="float64"),
    )
    with pytest.raises(CompatibilityError, match=r"input of module\[1\] vs input of module\[0\]: .*64"):
        mp.compose_classes([modules[0], odd[0]])


def test_refuses_things_that_are_not_class_modules(modules):
    with pytest.raises(SpecError, match=r"module 1 \(Linear\) is not a per-class module"):
        mp.compose_classes([modules[0], torch.nn.Linear(64, 2)])
