import pytest
import torch

from modpact.decomposition.data import DIGITS, digits_interface, load
from modpact.errors import SpecError
from modpact.interfaces import LabelSpace


def test_digits_is_deterministic_and_scaled(digits):
    again = load("digits")
    assert torch.equal(digits.x_train, again.x_train) and torch.equal(digits.y_test, again.y_test)
    assert digits.x_train.dtype == torch.float32 and digits.x_train.shape[1] == 64
    assert float(digits.x_train.min()) == 0.0 and float(digits.x_train.max()) == 1.0
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert digits.labels == DIGITS
    digits_interface().check_inputs(digits.x_test)


@pytest.mark.parametrize("name,n_classes", [("iris", 3), ("wine", 3)])
def test_small_sets(name, n_classes):
    d = load(name)
    assert d.n_classes == n_classes and abs(float(d.x_train.mean())) < 1e-4


def test_unknown_dataset_is_named():
    with pytest.raises(SpecError, match=r"load\(name='mnist'\): unknown dataset; expected one of digits, iris, wine"):
        load("mnist")


def test_subset_and_relabel(digits):
    sub = digits.subset(["7", "2"])
    assert sub.labels.labels == ("7", "2")
    assert set(sub.y_train.tolist()) == {0, 1}
    assert torch.equal(sub.x_test[sub.y_test == 0], digits.x_test[digits.y_test == 7])
    perm = LabelSpace("digits-rev", [str(i) for i in reversed(range(10))])
    r = digits.relabel(perm)
    assert torch.equal(r.y_train, 9 - digits.y_train)
