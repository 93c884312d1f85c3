import copy
import math

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.decomposition.concern import edge_scores
from modpact.decomposition.data import DIGITS
from modpact.decomposition.training import make_cnn, train
from modpact.errors import SpecError


def test_unpruned_modules_recompose_into_the_original_exactly(mlp, digits):
    mods = mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, retention=1.0)
    clf = mp.compose_classes(mods, DIGITS)
    with torch.no_grad():
        assert torch.equal(clf.predict(digits.x_test), mlp(digits.x_test).argmax(-1))
        # channeling keeps the probability: softmax([z_c, lse(z_rest)]) == softmax(z)[c]
        assert torch.allclose(clf(digits.x_test), mlp(digits.x_test).softmax(-1), atol=1e-6)


def test_each_module_is_a_binary_classifier_with_its_own_label_space(mlp, digits):
    mods = mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, retention=0.5, classes=["3"])
    (m,) = mods
    assert m.concern == "3" and m.label_space.labels == ("3", "not 3")
    out = m(digits.x_test)
    assert out.shape == (len(digits.x_test), 2)
    b = m.interface.check_inputs(digits.x_test)
    m.interface.check_outputs(out, b)
    assert m.interface.outputs["logits"].labels == m.label_space
    threes = digits.x_test[digits.y_test == 3]
    assert float((m(threes).argmax(-1) == 0).float().mean()) > 0.9  # says "3" on threes
    others = digits.x_test[digits.y_test != 3]
    assert float((m(others).argmax(-1) == 1).float().mean()) > 0.95  # and "not 3" on the rest


@pytest.mark.parametrize("retention", [0.3, 0.6, 0.85])
def test_retention_is_the_fraction_of_edges_kept_and_the_rest_are_zero(mlp, digits, retention):
    before = copy.deepcopy(mlp.state_dict())
    (m,) = mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, retention=retention, classes=["5"])
    assert abs(m.retained - retention) < 1e-3
    weights = [m.net[i].weight for i in (0, 2, 4)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert zeros >= total - math.ceil(retention * total)
    for key, value in mlp.state_dict().items():  # the model itself is untouched
        assert torch.equal(value, before[key])


def test_per_layer_scope_keeps_the_fraction_in_every_layer(mlp, digits):
    (m,) = mp.decompose_classes(
        mlp, digits.x_train, digits.y_train, DIGITS, retention=0.5, classes=["1"], scope="layer"
    )
    for mask in m.masks.values():
        assert abs(float(mask.float().mean()) - 0.5) < 0.01


def test_concern_identification_drops_units_the_class_never_activates(mlp, digits):
    zeros = digits.x_train[digits.y_train == 0]
    scores = edge_scores(mlp, zeros)
    z = torch.relu(mlp[0](zeros))
    dead = z.max(0).values == 0
    if dead.any():  # a hidden unit never active for class 0 carries nothing
        assert torch.all(scores["0"][dead] == 0)
    assert scores["4"].shape == mlp[4].weight.shape


def test_small_cnn_decomposes_too(digits):
    torch.manual_seed(0)
    cnn = make_cnn(channels=(4, 8))
    train(cnn, digits.x_train, digits.y_train, epochs=8, lr=1e-2)
    mods = mp.decompose_classes(cnn, digits.x_train, digits.y_train, DIGITS, retention=1.0)
    clf = mp.compose_classes(mods, DIGITS)
    with torch.no_grad():
        assert torch.equal(clf.predict(digits.x_test), cnn(digits.x_test).argmax(-1))
    pruned = mp.decompose_classes(cnn, digits.x_train, digits.y_train, DIGITS, retention=0.7, classes=["2"])
    assert abs(pruned[0].retained - 0.7) < 1e-3
    convs = [pruned[0].net[i].weight for i in (1, 3)]
    assert sum(int(w.eq(0).sum()) for w in convs) > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"retention": 0.0}, r"retention=0.0\): expected a fraction in \(0, 1\]"),
        ({"retention": 1.5}, r"retention=1.5\): expected a fraction in \(0, 1\]"),
        ({"negatives": -1}, r"negatives=-1\): expected a number >= 0"),
        ({"classes": ["ten"]}, r"\['ten'\] not in label space 'digits'"),
        ({"scope": "row"}, r"scope='row'\): expected one of 'global', 'layer', 'normalized'"),
    ],
    ids=["zero", "above-one", "negatives", "unknown-class", "scope"],
)
def test_bad_arguments_are_named(mlp, digits, kwargs, message):
    with pytest.raises(SpecError, match=message):
        mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, **kwargs)


def test_refuses_a_class_without_training_inputs(mlp, digits):
    keep = digits.y_train != 4
    with pytest.raises(SpecError, match=r"no training input of class '4' \(index 4\)"):
        mp.decompose_classes(mlp, digits.x_train[keep], digits.y_train[keep], DIGITS)


def test_refuses_a_model_without_linear_layers(digits):
    with pytest.raises(SpecError, match="ReLU has no Linear or Conv2d layer to decompose"):
        mp.decompose_classes(nn.ReLU(), digits.x_train, digits.y_train, DIGITS)


# ---- the data argument: the one convention of modpact.interfaces.batches ----------------------------------------


def test_labels_as_a_list_of_ints_a_pair_or_batches_give_the_same_modules(mlp, digits):
    x, y = digits.x_train[:300], digits.y_train[:300]
    ref = mp.decompose_classes(mlp, x, y, DIGITS, retention=0.5, classes=["3"])[0]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    for data, labels in ((x, y.tolist()), ((x, y), None), (loader, None)):
        got = mp.decompose_classes(mlp, data, labels, labels=DIGITS, retention=0.5, classes=["3"])
        for name, keep in ref.masks.items():
            assert torch.equal(got[0].masks[name], keep), name


@pytest.mark.parametrize(
    "args, message",
    [
        (
            lambda x, y: (x, y.float()),
            "decompose_classes(data=...): the labels of data are f32[300]; labels are integer class indices",
        ),
        (lambda x, y: (x, y.tolist()[:5]), "decompose_classes(data=...): data has 300 input rows but 5 labels"),
        (
            lambda x, y: ((x, y), DIGITS),
            "decompose_classes: y is a LabelSpace; with data that carries its labels, pass the label space by keyword",
        ),
        (
            lambda x, y: (x, None),
            "decompose_classes: the data has no labels; give y, an (inputs, labels) pair or batches of pairs",
        ),
        (
            lambda x, y: ({"x": x}, y),
            "decompose_classes: with y given, x is the input tensor; got dict",
        ),
        (
            lambda x, y: ([({"x": x}, y)], None),
            "decompose_classes(data=...): batch 0 is a dict batch (keys ['x']); decompose_classes needs one input "
            "tensor per batch",
        ),
    ],
    ids=["float-labels", "count", "labelspace-as-y", "no-labels", "dict-with-y", "dict-batch"],
)
def test_bad_data_is_named(mlp, digits, args, message):
    x, y = digits.x_train[:300], digits.y_train[:300]
    data, y_arg = args(x, y)
    with pytest.raises(SpecError) as e:
        if isinstance(y_arg, mp.LabelSpace):
            mp.decompose_classes(mlp, data, y_arg)
        else:
            mp.decompose_classes(mlp, data, y_arg, labels=DIGITS)
    assert message in str(e.value)
