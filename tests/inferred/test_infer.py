import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

import modpact as mp
from modpact.contracts import get_guard
from modpact.contracts.conditions import LabelsWithin
from modpact.errors import SpecError
from modpact.inference import Envelope
from modpact.interfaces.batches import ACCEPTED


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


rows = arrays(
    "float32", st.tuples(st.integers(1, 40), st.just(4)), elements=st.floats(-100, 100, width=32, allow_nan=False)
)


@settings(max_examples=30, deadline=None)
@given(x=rows, batch=st.integers(1, 16), margin=st.sampled_from([0.0, 0.1, 1.0]))
def test_envelopes_contain_the_reference_data(x, batch, margin):
    model = small_mlp()
    x = torch.from_numpy(x)
    ic = mp.infer_contracts(model, x, margin=margin, batch_size=batch)
    assert torch.equal(ic.score(x), torch.zeros(x.shape[0], dtype=torch.float64))
    first = next(e for e in ic.envelopes if e.module == "0" and e.side == "input")
    assert torch.equal(first.lo, x.double().amin(0)) and torch.equal(first.hi, x.double().amax(0))
    for req, ens in ic.conditions().values():
        assert req or ens
    # every check holds on every reference batch
    ic.install()
    try:
        for i in range(0, x.shape[0], batch):
            model(x[i : i + batch])  # eager checks raise on a violation
    finally:
        ic.uninstall()


def test_margin_widens_by_a_fraction_of_the_range_with_a_floor():
    model = small_mlp()
    x = torch.tensor([[0.0, 0.0, 1.0, 5.0], [2.0, 0.0, 1.0, 5.0]])
    ic = mp.infer_contracts(model, x, ["0"], margin=0.5, min_scale=0.1)
    e = next(e for e in ic.envelopes if e.side == "input")
    lo, hi = ic.bounds(e)
    # span of the tensor = 5 - 0; floor = 0.1 * 5 = 0.5; round-off tolerance 1e-4 * 5
    tol = 5e-4
    assert torch.allclose(lo, torch.tensor([-1.0, -0.25, 0.75, 4.75], dtype=torch.float64) - tol)
    assert torch.allclose(hi, torch.tensor([3.0, 0.25, 1.25, 5.25], dtype=torch.float64) + tol)
    narrow = mp.infer_contracts(model, x, ["0"], margin=0.0)
    n = next(e for e in narrow.envelopes if e.side == "input")
    assert torch.allclose(narrow.bounds(n)[0], x.amin(0).double() - tol)
    assert narrow.score(torch.tensor([[2.5, 0.0, 1.0, 5.0]]))[0] > 0
    assert ic.score(torch.tensor([[2.5, 0.0, 1.0, 5.0]]))[0] == 0


def test_per_channel_envelopes_shapes_and_labels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x = torch.randn(10, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    ic = mp.infer_contracts(model, (x, y), batch_size=4)
    conv_out = next(e for e in ic.envelopes if e.module == "0" and e.side == "output")
    assert conv_out.granularity == "channel" and list(conv_out.lo.shape) == [3, 1, 1]
    iface = ic.interface("0")
    assert str(iface.inputs["input"].shape) == "batch 1 8 8" and iface.inputs["input"].dtype == "float32"
    assert ic.labels is not None and list(ic.labels.labels) == ["0", "1", "2", "3"]
    assert ic.label_counts == [3, 3, 2, 2] and ic.output_module == "3"
    ic.install()
    try:
        g = get_guard(model[3])
        assert any(isinstance(c, LabelsWithin) for c in g.ensures)
        assert get_guard(model[0]).interface is not None
        assert any(isinstance(c, Envelope) for c in get_guard(model[0]).requires)
        assert get_guard(model[0]).producer == {"input": "the input data"}
        assert get_guard(model[3]).producer is None
        assert not get_guard(model[1]).requires  # its input is checked as the conv's postcondition
        model(torch.randn(7, 1, 8, 8) * 0.1)  # another batch size: the batch dim is symbolic
    finally:
        ic.uninstall()
    assert all(get_guard(m) is None for m in model.modules())


def test_preconditions_all_checks_every_input():
    model = small_mlp()
    ic = mp.infer_contracts(model, torch.randn(20, 4))
    req = {p: r for p, (r, _) in ic.conditions("all").items()}
    assert all(req[p] for p in ("0", "1", "2"))
    with pytest.raises(SpecError, match="Expected preconditions to be one of 'boundary', 'all', got 'some'"):
        ic.conditions("some")


def test_existing_guards_are_kept_and_restored():
    model = small_mlp()
    mine = mp.finite("result")
    mp.guard(model[2], ensures=[mine])
    ic = mp.infer_contracts(model, torch.randn(20, 4)).install()
    g = get_guard(model[2])
    assert g.ensures[-1] is mine and len(g.ensures) > 1
    ic.uninstall()
    assert get_guard(model[2]) is g and g.ensures == (mine,)
    assert get_guard(model[0]) is None


def test_install_twice_and_missing_modules_are_errors():
    model = small_mlp()
    ic = mp.infer_contracts(model, torch.randn(20, 4)).install()
    with pytest.raises(SpecError, match="already installed; call uninstall"):
        ic.install()
    ic.uninstall()
    with pytest.raises(SpecError, match=r"Sequential has no submodule\(s\) '2' recorded"):
        ic.install(nn.Sequential(nn.Linear(4, 8), nn.ReLU()))


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"modules": ["body"]}, "infer_contracts: Sequential has no submodule 'body' (submodules: 0, 1, 2)"),
        ({"modules": "0"}, "expected a list of module paths, not a string"),
        ({"margin": -1}, "Expected margin to be a number >= 0.0, got -1 (type=int)"),
        ({"clusters": 0}, "Expected clusters to be None or a positive int (boxes per class), got 0"),
        ({"granularity": "pixel"}, "Expected granularity to be one of 'auto', 'element', 'channel', 'last', 'tensor'"),
        ({"labels": "digits"}, "Expected labels to be a LabelSpace or a list of label names, got 'digits'"),
    ],
    ids=["path", "str-path", "margin", "clusters", "granularity", "labels"],
)
def test_bad_arguments(kwargs, msg):
    with pytest.raises(SpecError) as e:
        mp.infer_contracts(small_mlp(), torch.randn(8, 4), **kwargs)
    assert msg in str(e.value)


def test_bad_data_is_named():
    with pytest.raises(SpecError) as e:
        mp.infer_contracts(small_mlp(), 3.0)
    assert str(e.value) == f"infer_contracts(data=...): got 3.0 (float); expected {ACCEPTED}"
    with pytest.raises(SpecError) as e:
        mp.infer_contracts(small_mlp(), [torch.randn(2, 4), "oops"])
    assert str(e.value) == (
        "infer_contracts(data=...): batch 1 is 'oops' (str); "
        "a batch is a tensor, a dict batch or an (inputs, labels) pair"
    )
    x = torch.randn(4, 4)
    x[1, 2] = float("nan")
    with pytest.raises(SpecError, match="non-finite values in 0 input input"):
        mp.infer_contracts(small_mlp(), x)
    with pytest.raises(SpecError, match="outputs 3 scores per row but the label space has 2 labels"):
        mp.infer_contracts(small_mlp(), torch.randn(4, 4), labels=["a", "b"])


def test_clusters_give_boxes_per_class():
    torch.manual_seed(0)
    model = small_mlp()
    x = torch.cat([torch.randn(30, 4) - 5, torch.randn(30, 4) + 5])
    y = torch.cat([torch.zeros(30), torch.ones(30)]).long()
    ic = mp.infer_contracts(model, (x, y), clusters=2, boxes="every", margin=0.0)
    e = next(e for e in ic.envelopes if e.module == "0" and e.side == "input")
    assert e.box_mode == "union"
    assert e.box_lo.shape == (4, 4) and sorted(e.box_labels) == [0, 0, 1, 1]
    assert torch.equal(ic.score(x), torch.zeros(60, dtype=torch.float64))
    # inside the overall envelope, outside every box: only the boxes see it
    assert ic.score(torch.zeros(1, 4))[0] > 0
    ident = nn.Sequential(nn.Identity(), nn.Linear(4, 2))
    plain = mp.infer_contracts(ident, (x, y), ["0"], margin=0.0)
    assert plain.score(torch.zeros(1, 4))[0] == 0
    boxed = mp.infer_contracts(ident, (x, y), ["0"], margin=0.0, clusters=2, boxes="every")
    assert boxed.score(torch.zeros(1, 4))[0] > 0


def test_score_of_rows_that_fit_no_box_is_infinite():
    # a fully convolutional front: images of another size give conv rows of another width
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)
    )
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    ic = mp.infer_contracts(model, (x, y), clusters=2, boxes="every")
    assert any(e.box_lo is not None and e.module == "1" for e in ic.envelopes)
    assert torch.isfinite(ic.score(x)).all()
    assert torch.isinf(ic.score(torch.randn(5, 1, 6, 6))).all()


def test_summary_lists_each_envelope():
    ic = mp.infer_contracts(small_mlp(), (torch.randn(20, 4), torch.randint(0, 3, (20,))))
    text = str(ic)
    assert text.startswith(
        "InferredContracts: 3 modules, 6 envelopes, margin=0.5, min_scale=0.2, from 20 reference rows"
    )
    assert "labels: 3 (0, 1, 2) on 2" in text
    assert "0       input   precondition       4 features" in text
    assert "0: (input: TensorSpec('batch 4', dtype='float32'))" in text


def _swapping_head():
    model = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
        model[1].bias.zero_()
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.randn(40, 2, generator=g) * 0.3 + torch.tensor([3.0, 0.0]),
            torch.randn(40, 2, generator=g) * 0.3 + torch.tensor([0.0, 3.0]),
        ]
    )
    y = torch.cat([torch.zeros(40), torch.ones(40)]).long()
    return model, x, y


def test_class_boxes_check_the_prediction_against_its_class():
    model, x, y = _swapping_head()
    ic = mp.infer_contracts(model, (x, y), clusters=2)
    e = next(e for e in ic.envelopes if e.module == "1" and e.side == "input")
    assert e.box_mode == "class" and sorted(e.box_labels) == [0, 0, 1, 1]
    assert torch.equal(ic.score(x), torch.zeros(80, dtype=torch.float64))
    text = str(ic)
    assert "4 (of the predicted class)" in text
    ic.install()
    try:
        with torch.no_grad():
            model[1].weight.copy_(torch.eye(2).flip(0))  # the head now swaps the classes
        with mp.Monitor(model) as mon:
            model(x[:8])
            mon.step()
        rep = mon.report()
    finally:
        ic.uninstall()
    root = rep.root_cause
    assert root is not None and root.module == "1" and root.check == "in_class_boxes(input, result, 4 boxes)"
    assert root.blame == "1" and root.evidence["predicted_class"] == 1
    assert float(ic.score(x[:8], model=model).min()) > 0


def test_class_boxes_need_labels():
    model, x, y = _swapping_head()
    with pytest.raises(SpecError, match="boxes='head'\\) needs labels"):
        mp.infer_contracts(model, x, clusters=2)
    with pytest.raises(SpecError, match="Expected boxes to be one of 'head', 'every', got 'all'"):
        mp.infer_contracts(model, (x, y), clusters=2, boxes="all")


@pytest.mark.parametrize("name", ["MLP", "SmallResNet", "TinyTransformer"])
def test_zoo_models_pass_their_own_reference_data(name):
    import zoo

    torch.manual_seed(0)
    model = getattr(zoo, name)()
    x = zoo.example_input(model, 16)
    ic = mp.InferredContracts.from_json(mp.infer_contracts(model, x, batch_size=8).to_json())
    model.eval()  # inferred in eval mode; BatchNorm in train mode uses batch statistics
    ic.install(model)
    try:
        with mp.Monitor(model) as mon:
            model(x[:8])
            model(x[8:])
            mon.step()
        rep = mon.report()
    finally:
        ic.uninstall()
    assert rep.ok, str(rep)
    assert rep.checks >= len(ic.modules)
