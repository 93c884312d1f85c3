import copy
import importlib

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.decomposition.data import DIGITS
from modpact.decomposition.training import digits_modular
from modpact.errors import CompatibilityError, SpecError
from modpact.interfaces import Interface, LabelSpace, TensorSpec


def spec(shape, **kw):
    return TensorSpec(shape, dtype="float32", **kw)


@pytest.fixture
def mm(mlp):
    return digits_modular(copy.deepcopy(mlp))


def test_graph_runs_like_the_model_and_every_edge_holds(mm, mlp, digits):
    assert torch.equal(mm(digits.x_test), mlp(digits.x_test))
    assert mm.edges() == [("x", "encoder", "x"), ("encoder", "hidden", "h"), ("hidden", "head", "h")]
    assert mm.check() == []
    assert mm.interface.outputs["head"].labels == DIGITS
    assert mm.node_of("hidden.0") == "hidden"


def test_substitute_accepts_a_compatible_module(mm, digits):
    new = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
    mm.substitute("hidden", new, interface=mm.nodes["hidden"].interface)
    assert mm.module("hidden") is new
    assert mm(digits.x_test).shape == (len(digits.x_test), 10)


def test_substitute_refuses_naming_the_edge_and_every_reason(mm, mlp, digits):
    bad = Interface("hidden16", {"h": TensorSpec("batch 64", dtype="float64")}, {"h": spec("batch 16")})
    with pytest.raises(CompatibilityError) as e:
        mm.substitute("hidden", nn.Linear(64, 16).double(), interface=bad)
    assert (
        str(e.value)
        == """\
digits-mlp: substitute('hidden') refused: 7 incompatibilities
  - interface 'hidden16' for 'hidden': inputs: h: dtype float32 allows float32, not in float64
  - interface 'hidden16' for 'hidden': outputs: h: 16 does not satisfy fixed size 32
  - interface 'hidden16' for 'hidden': outputs: h: range [-inf, inf] is not within [0, inf]
  - interface 'hidden16' for 'hidden': outputs: h: finite values are required but not guaranteed \
(no finite=True or bounded range)
  - edge encoder -> hidden.h: dtype float32 allows float32, not in float64
  - edge hidden -> head.h: 16 does not satisfy fixed size 32
  - edge hidden -> head.h: finite values are required but not guaranteed (no finite=True or bounded range)"""
    )
    assert torch.equal(mm(digits.x_test), mlp(digits.x_test))  # unchanged


def test_augment_adds_a_node_and_refuses_bad_wiring(mm, digits):
    probe = Interface("probe", {"h": spec("batch 32")}, {"p": spec("batch 1")})
    mm.augment("probe", nn.Linear(32, 1), ["hidden"], interface=probe, output=True)
    logits, p = mm(digits.x_test)
    assert p.shape == (len(digits.x_test), 1)
    with pytest.raises(
        CompatibilityError,
        match=r"augment\('probe2'\) refused: 1 incompatibility\n"
        r"  - edge encoder -> probe2.h: 64 does not satisfy fixed size 32",
    ):
        mm.augment("probe2", nn.Linear(32, 1), ["encoder"], interface=probe)
    assert "probe2" not in mm.nodes
    with pytest.raises(SpecError, match=r"augment\('probe3'\): source 'nowhere' is neither a graph input"):
        mm.augment("probe3", nn.Linear(32, 1), ["nowhere"], interface=probe)
    with pytest.raises(SpecError, match=r"node 'probe4': no interface; pass interface=..."):
        mm.augment("probe4", nn.Linear(32, 1), ["hidden"])
    with pytest.raises(SpecError, match=r"augment\('forward'\): node names must be new identifiers"):
        mm.augment("forward", nn.Linear(32, 1), ["hidden"], interface=probe)


def test_exclude_refuses_while_consumed_then_removes(mm, digits):
    probe = Interface("probe", {"h": spec("batch 32")}, {"p": spec("batch 1")})
    mm.augment("probe", nn.Linear(32, 1), ["hidden"], interface=probe, output=True)
    with pytest.raises(CompatibilityError) as e:
        mm.exclude("hidden")
    assert str(e.value) == (
        "digits-mlp: exclude('hidden') refused: 2 incompatibilities\n"
        "  - edge hidden -> head.h: node 'head' still consumes 'hidden'\n"
        "  - edge hidden -> probe.h: node 'probe' still consumes 'hidden'"
    )
    mm.exclude("probe")
    assert list(mm.nodes) == ["encoder", "hidden", "head"] and mm.outputs == ["head"]
    with pytest.raises(CompatibilityError, match="'head' is the model's only output"):
        mm.exclude("head")
    with pytest.raises(SpecError, match=r"exclude\('nope'\): no node named 'nope'"):
        mm.exclude("nope")


def test_port_reuses_a_module_of_another_model(mm, mlp, digits):
    from modpact.decomposition.training import train_digits_mlp

    other = digits_modular(train_digits_mlp(3, data=digits)[0])
    mm.port("head", other)  # same name: substitutes
    assert torch.equal(mm.module("head").weight, other.module("head").weight)
    assert mm.module("head") is not other.module("head")  # a copy
    mm.port("head2", other, "head", inputs=["hidden"])
    assert "head2" in mm.nodes
    with pytest.raises(SpecError, match=r"port\('head3'\): 'head3' is a new node here; say which sources"):
        mm.port("head3", other, "head")
    with pytest.raises(CompatibilityError, match=r"edge encoder -> head4.h: 64 does not satisfy fixed size 32"):
        mm.port("head4", other, "head", inputs=["encoder"])


def test_split_a_node_into_stages_keeps_outputs_exact(mm, mlp, digits):
    big = digits_modular(copy.deepcopy(mlp))
    seq = nn.Sequential(*list(mlp))
    mm2 = mp.ModularModel({"x": spec("batch 64", range=(0, 1))})
    mm2.add(
        "net",
        seq,
        ["x"],
        interface=Interface("net", {"x": spec("batch 64")}, {"y": spec("batch 10", labels=DIGITS)}),
        output=True,
    )
    mm2.split("net", at=["1", "3"], example=digits.x_test[:4])
    assert list(mm2.nodes) == ["net_0", "net_1", "net_2"]
    assert mm2.nodes["net_2"].interface.outputs["y"].labels == DIGITS  # the outer ends keep the declared interface
    assert torch.equal(mm2(digits.x_test), big(digits.x_test))
    assert mm2.check() == []


def composed_head(mlp, digits, classes):
    mods = mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, retention=0.8, classes=classes)
    return mp.compose_classes(mods, LabelSpace("digits", list(classes)))


def test_augment_and_exclude_class_check_the_consumers(mlp, digits):
    mm = mp.ModularModel({"x": spec("batch 64", range=(0, 1))}, name="clf")
    head = composed_head(mlp, digits, [str(i) for i in range(9)])
    mm.add("head", head, ["x"], output=True)
    ten = mp.decompose_classes(mlp, digits.x_train, digits.y_train, DIGITS, classes=["9"])[0]
    mm.augment_class("head", ten)
    assert mm.module("head").labels == DIGITS
    acc = float((mm(digits.x_test).argmax(-1) == digits.y_test).float().mean())
    assert acc > 0.9
    # a consumer that needs the ten-digit label space
    needs = Interface("report", {"s": TensorSpec("batch 10", labels=DIGITS)}, {"r": spec("batch 10")})
    mm.augment("report", nn.Identity(), ["head"], interface=needs, output=True)
    with pytest.raises(CompatibilityError) as e:
        mm.exclude_class("head", "3")
    assert "exclude_class('head', '3') refused" in str(e.value)
    assert "edge head -> report.s: 9 does not satisfy fixed size 10" in str(e.value)
    assert "label space 'digits' lacks ['3'] of 'digits'; not alignable" in str(e.value)
    assert mm.module("head").labels == DIGITS  # unchanged
    mm.exclude("report")
    mm.exclude_class("head", "3")
    assert "3" not in mm.module("head").labels


def test_class_operators_need_a_composed_node(mm):
    with pytest.raises(SpecError, match=r"exclude_class\('head'\): node 'head' is a Linear, not a composed"):
        mm.exclude_class("head", "3")


def test_bad_graph_inputs_are_named():
    with pytest.raises(SpecError, match=r"ModularModel\(inputs=\{\}\): expected a non-empty dict"):
        mp.ModularModel({})


def test_split_node_with_a_skip_connection_wires_named_outputs(digits):
    from test_split import Residual

    torch.manual_seed(0)
    block = Residual()
    iface = Interface("res", {"x": spec("batch 6")}, {"y": spec("batch 3")})
    mm = mp.ModularModel({"x": spec("batch 6")}, name="res-model")
    mm.add("block", block, ["x"], interface=iface, output=True)
    x = torch.randn(5, 6)
    expected = block(x)
    mm.split("block", at=["a"], example=x)
    assert mm.edges() == [("x", "block_0", "x"), ("block_0.x", "block_1", "x"), ("block_0.a", "block_1", "a")]
    assert torch.equal(mm(x), expected)


def test_split_refusals_name_the_problem(mm, digits):
    with pytest.raises(SpecError, match=r"split\(at=\['9'\]\): Sequential has no submodule named '9'"):
        mm.split("hidden", at=["9"], example=digits.x_test[:4])
    with pytest.raises(SpecError, match=r"split\('nope'\): no node named 'nope'"):
        mm.split("nope", at=["2"], example=digits.x_test[:4])


def _tagger_model():
    from test_split import Tagger

    torch.manual_seed(0)
    ids = torch.randint(0, 20, (3, 7))
    ids_spec = TensorSpec("batch 7", dtype="int64")
    mm = mp.ModularModel({"ids": ids_spec}, name="tagger")
    mm.add(
        "net", Tagger(), ["ids"], interface=Interface("net", {"ids": ids_spec}, {"y": spec("batch 7 3")}), output=True
    )
    return mm, ids


def test_split_after_an_lstm_checks_the_edge_its_tuple_crosses():
    mm, ids = _tagger_model()
    want = mm(ids)
    mm.split("net", at=["lstm"], example=ids)
    assert list(mm.nodes) == ["net_0", "net_1"]
    assert isinstance(mm.nodes["net_0"].interface.outputs["lstm"], mp.TupleSpec)  # (out, (h, c)), described
    assert mm.check() == []
    assert torch.equal(mm(ids), want)


def test_split_refuses_values_no_interface_describes(monkeypatch):
    """infer_interface describes every value today (an opaque one by its type);
    should a stage's interface leave a crossing value out, the edge could not
    be checked, and the split is refused rather than wired unchecked."""
    split_module = importlib.import_module("modpact.decomposition.split")  # the module, not the function

    real = split_module.stage_interfaces

    def leaving_the_tuple_out(*args, **kwargs):
        interfaces, undescribed = real(*args, **kwargs)
        first = interfaces[0]
        interfaces[0] = Interface(first.name, first.inputs, {}, description=first.description)
        return interfaces, undescribed

    monkeypatch.setattr(split_module, "stage_interfaces", leaving_the_tuple_out)
    mm, ids = _tagger_model()
    with pytest.raises(SpecError) as e:
        mm.split("net", at=["lstm"], example=ids)
    assert str(e.value) == (
        "split('net'): values cross the cuts that no interface describes, so their edges cannot be checked: "
        "net_0: lstm (Split.undescribed says what they are)"
    )
    assert list(mm.nodes) == ["net"]  # nothing changed


def test_a_source_naming_a_missing_output_is_refused(mm):
    probe = Interface("probe", {"h": spec("batch 32")}, {"p": spec("batch 1")})
    with pytest.raises(SpecError, match=r"source 'hidden.z': node 'hidden' has no output 'z'; outputs are \['h'\]"):
        mm.augment("probe", nn.Linear(32, 1), ["hidden.z"], interface=probe)
