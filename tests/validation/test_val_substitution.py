"""check_substitutable (subtyping + differential testing on generated inputs and
on the digits data set) and check_composition (producer -> consumer preconditions)."""

import copy

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import modpact as mp

DIGITS = mp.LabelSpace("digits", [str(i) for i in range(10)])
CLF = mp.Interface(
    "digit-classifier",
    inputs={"x": mp.TensorSpec("batch 64", dtype="float32", range=(0, 16))},
    outputs={"logits": mp.TensorSpec("batch 10", finite=True, labels=DIGITS)},
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)


@pytest.fixture(scope="module")
def model(digits):
    x, y = digits
    torch.manual_seed(0)
    m = nn.Linear(64, 10)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x / 16), y).backward()
        opt.step()
    with torch.no_grad():
        m.weight /= 16  # takes raw pixel values in [0, 16]
    return m.eval()


class Renames(nn.Module):
    """Planted bug: agrees with the original except that class 3 comes out as 5."""

    def __init__(self, base, src=3, dst=5):
        super().__init__()
        self.base, self.src, self.dst = base, src, dst

    def forward(self, x):
        y = self.base(x)
        hit = y.argmax(-1) == self.src
        y = y.clone()
        y[hit, self.dst] = y[hit, self.src] + 1
        return y


def test_an_exact_copy_is_substitutable(model, digits):
    x, y = digits
    res = mp.check_substitutable(model, copy.deepcopy(model), CLF, max_examples=20, seed=0, data=(x, y))
    assert res.ok and res.mode == "elementwise" and res.tolerance == 1e-5
    assert res.generated.examples == 20 and res.generated.max_abs_diff == 0
    assert res.data.elements == x.shape[0] * 10 and res.data.agreeing_elements == res.data.elements
    assert res.data.accuracy_original == res.data.accuracy_replacement > 0.9


def test_a_replacement_that_disagrees_on_one_class_fails_top1_on_data(model, digits):
    x, y = digits
    with pytest.raises(mp.ValidationFailure) as e:
        mp.check_substitutable(model, Renames(model), CLF, top1=0.95, max_examples=20, seed=0, data=(x, y))
    res = e.value.result
    assert not res.ok
    n3 = int((model(x).argmax(-1) == 3).sum())
    assert res.data.rows == x.shape[0] and res.data.rows - res.data.agreeing_rows == n3
    assert res.data.per_class[3] == (0, n3)
    assert all(a == r for c, (a, r) in res.data.per_class.items() if c != 3)
    msg = str(e.value)
    assert "check_substitutable: Renames cannot replace Linear" in msg
    assert (
        f"on data: top-1 agreement {res.data.top1_agreement:.4f} < required 0.95 ({n3} of 1797 rows "
        f"disagree; worst: class 3: 0/{n3} rows agree)" in msg
    )
    assert res.data.accuracy_replacement < res.data.accuracy_original


def test_the_one_class_disagreement_is_found_and_shrunk_elementwise(model):
    with pytest.raises(mp.ValidationFailure) as e:
        mp.check_substitutable(model, Renames(model), CLF, tolerance=1e-4, max_examples=200, seed=0)
    msg = str(e.value)
    assert msg.startswith("check_substitutable: Renames disagrees with Linear beyond tolerance 0.0001")
    assert e.value.inputs["x"].shape[0] == 1
    assert bool((model(e.value.inputs["x"]).argmax(-1) == 3).all())
    assert "blaming Renames (it disagrees with Linear)" in msg


def test_raise_on_failure_false_returns_the_figures(model, digits):
    x, _ = digits
    res = mp.check_substitutable(
        model, Renames(model), CLF, top1=0.99, max_examples=10, seed=0, data=x, raise_on_failure=False
    )
    assert not res.ok and len(res.failures) >= 1 and "worst: class 3" in res.failures[-1]
    assert "Renames cannot replace Linear (top1, top-1 >= 0.99)" in str(res)


def test_a_replacement_whose_interface_is_not_a_subtype_is_rejected(model):
    narrow = mp.Interface(
        "narrow", inputs={"x": mp.TensorSpec("batch 64", dtype="float32", range=(0, 1))}, outputs=CLF.outputs
    )
    with pytest.raises(mp.CompatibilityError) as e:
        mp.check_substitutable(model, copy.deepcopy(model), CLF, replacement_interface=narrow, max_examples=5)
    assert "check_substitutable: Linear's interface 'narrow' cannot replace Linear's 'digit-classifier'" in str(e.value)
    assert "inputs: x: range [0, 16] is not within [0, 1]" in str(e.value)


def test_a_replacement_breaking_the_output_interface_fails(model):
    class Nan(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan"))

    with pytest.raises(mp.ValidationFailure, match="Nan breaks Linear's contract \\(interface 'digit-classifier'\\)"):
        mp.check_substitutable(model, Nan(), CLF, max_examples=5, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tolerance": -1}, "check_substitutable(tolerance=-1): expected a non-negative number"),
        ({"top1": 2}, "check_substitutable(top1=2): expected a fraction in [0, 1]"),
        ({"top1": 0.9, "tolerance": 0.1}, "pass tolerance= (elementwise) or top1= (classifiers), not both"),
        (
            {"data": "digits"},
            "check_substitutable(data=...): got 'digits' (str); expected a tensor, an (inputs, labels)",
        ),
    ],
    ids=["tolerance", "top1", "both", "data"],
)
def test_bad_arguments_are_named(model, kwargs, message):
    with pytest.raises(mp.SpecError) as e:
        mp.check_substitutable(model, model, CLF, max_examples=2, seed=0, **kwargs)
    assert message in str(e.value)


# ---- composition ---------------------------------------------------------------------------

ENC = mp.Interface(
    "enc",
    inputs={"x": mp.TensorSpec("batch 4", dtype="float32", range=(-1, 1))},
    outputs={"h": mp.TensorSpec("batch 4", dtype="float32", finite=True)},
)
HEAD = mp.Interface(
    "head",
    inputs={"h": mp.TensorSpec("batch 4", dtype="float32", range=(0, None))},
    outputs={"y": mp.TensorSpec("batch 2")},
)


def test_a_producer_that_keeps_its_contract_but_breaks_the_consumer_is_caught():
    torch.manual_seed(0)
    enc = mp.guard(nn.Linear(4, 4), interface=ENC, name="enc")
    head = mp.guard(nn.Linear(4, 2), interface=HEAD, name="head")
    with pytest.raises(mp.ValidationFailure) as e:
        mp.check_composition(enc, head, max_examples=50, seed=0)
    msg = str(e.value)
    assert msg.startswith("check_composition: enc -> head: the producer's output breaks the consumer's input")
    assert "inputs.h: range expected values in [0, inf]" in msg
    assert "note: enc keeps its own contract but its output breaks head's preconditions" in msg
    assert "blaming the wiring enc -> head (the producer kept its own contract)" in msg
    assert "static check: h: range [-inf, inf] is not within [0, inf]" in msg


def test_a_composition_that_holds_passes():
    enc = mp.guard(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), interface=ENC, name="enc")
    head = mp.guard(nn.Linear(4, 2), interface=HEAD, name="head")
    res = mp.check_composition(enc, head, max_examples=30, seed=0)
    assert res.ok and res.examples == 30
    assert "enc -> head: 30 generated producer inputs" in str(res)


def test_a_producer_breaking_its_own_contract_is_blamed():
    class Inf(nn.Module):
        def forward(self, x):
            return x / 0

    head = mp.guard(nn.Linear(4, 2), interface=HEAD, name="head")
    with pytest.raises(mp.ValidationFailure) as e:
        mp.check_composition(mp.guard(Inf(), interface=ENC, name="enc"), head, max_examples=20, seed=0)
    assert "note: enc breaks its own contract" in str(e.value)
    assert "blaming enc (its inputs and preconditions held)" in str(e.value)


def test_worst_classes_name_their_labels():
    from modpact.validation.substitution import Agreement

    ag = Agreement(per_class={0: (1, 4), 1: (4, 4), 2: (0, 2)})
    pets = mp.LabelSpace("pets", ["cat", "dog", "2"])
    assert ag.worst_classes(labels=pets) == ["class 2: 0/2 rows agree", "class 0 ('cat'): 1/4 rows agree"]
    assert ag.worst_classes(n=1) == ["class 2: 0/2 rows agree"]
