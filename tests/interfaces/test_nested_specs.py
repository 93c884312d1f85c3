"""Nested specs: tuples, lists, dicts and dataclasses, optional and opaque values."""

import copy
import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from iface_strategies import specs

from modpact.errors import InterfaceViolation, SpecError
from modpact.interfaces import (
    DictSpec,
    Interface,
    ListSpec,
    OpaqueSpec,
    OptionalSpec,
    TensorSpec,
    TupleSpec,
    check_compatible,
)
from modpact.interfaces.nested import is_instance_of, leaves, type_name

H = TensorSpec("2 batch 8", dtype="float32")
LSTM = Interface(
    "lstm",
    inputs={"input": TensorSpec("batch seq 4", dtype="float32"), "hx": OptionalSpec(TupleSpec([H, H]))},
    outputs={"out": TensorSpec("batch seq 8", dtype="float32", finite=True), "state": TupleSpec([H, H])},
)


def _problems(spec, value):
    return [str(p) for p in spec.check(value, name="v")]


# ---- checks -----------------------------------------------------------------------------------


def test_lstm_interface_accepts_the_real_lstm():
    lstm = torch.nn.LSTM(4, 8, num_layers=2, batch_first=True)
    x = torch.randn(3, 5, 4)
    b = LSTM.check_inputs({"input": x, "hx": None})
    LSTM.check_outputs(lstm(x), b)
    b = LSTM.check_inputs((x, (torch.zeros(2, 3, 8), torch.zeros(2, 3, 8))))
    LSTM.check_outputs(lstm(x), b)


def test_problems_name_the_path_and_dims_bind_across_leaves():
    x = torch.randn(3, 5, 4)
    b = LSTM.check_inputs({"input": x, "hx": None})
    bad = (torch.randn(3, 5, 8), (torch.randn(2, 3, 8), torch.randn(2, 4, 8)))
    with pytest.raises(InterfaceViolation) as info:
        LSTM.check_outputs(bad, b, module="lstm")
    text = str(info.value)
    assert "outputs.state[1]: shape expected 2 batch 8, got (2, 4, 8)" in text
    assert "bound to 3 by inputs.input[0]" in text
    with pytest.raises(InterfaceViolation) as info:
        LSTM.check_outputs((torch.randn(3, 5, 8), torch.randn(2, 3, 8)), b)
    assert "outputs.state: type expected a tuple of 2, got f32[2,3,8]" in str(info.value)
    with pytest.raises(InterfaceViolation) as info:
        LSTM.check_outputs((torch.randn(3, 5, 8), (torch.randn(2, 3, 8),)), b)
    assert "outputs.state: count expected 2 items, got 1" in str(info.value)


def test_nested_value_domain_is_checked_and_named():
    spec = TupleSpec([TensorSpec("2", finite=True), ListSpec([TensorSpec("1", range=(0, 1))])])
    assert _problems(spec, (torch.zeros(2), [torch.ones(1)])) == []
    out = _problems(spec, (torch.tensor([0.0, float("nan")]), [torch.tensor([2.0])]))
    assert out[0].startswith("v[0]: finite expected finite values, got 1 of 2 failing")
    assert out[1].startswith("v[1][0]: range expected values in [0, 1], got 1 of 1 failing")
    assert spec.has_value_domain and not TupleSpec([H]).has_value_domain
    ok = spec.value_ok((torch.zeros(2), [torch.ones(1)]))
    assert isinstance(ok, torch.Tensor) and bool(ok)
    assert not bool(spec.value_ok((torch.zeros(2), [torch.tensor([5.0])])))
    assert [p for p, _ in leaves(spec, "out")] == ["out[0]", "out[1][0]"]


def test_list_and_tuple_are_distinct():
    assert _problems(ListSpec([H]), (torch.zeros(2, 1, 8),)) == ["v: type expected a list of 1, got tuple(f32[2,1,8])"]
    assert _problems(TupleSpec([H]), [torch.zeros(2, 1, 8)]) == ["v: type expected a tuple of 1, got list(f32[2,1,8])"]


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extra: torch.Tensor | None = None


def test_dict_spec_reads_mappings_and_dataclasses_and_checks_the_type_by_name():
    spec = DictSpec({"logits": TensorSpec("batch 3"), "extra": OptionalSpec(TensorSpec("batch"))}, type=type_name(Out))
    assert spec.type == "test_nested_specs.Out"
    assert _problems(spec, Out(torch.zeros(2, 3))) == []
    assert _problems(spec, Out(torch.zeros(2, 3), torch.zeros(3))) == [
        "v.extra: shape expected batch, got (3) (dim 'batch' is 3 at v.extra[0] but was bound to 2 by v.logits[0])"
    ]
    got = _problems(spec, {"logits": torch.zeros(2, 3)})
    assert got == ["v: type expected a test_nested_specs.Out, got builtins.dict dict(logits=f32[2,3])"]
    plain = DictSpec({"logits": TensorSpec("batch 3")})
    assert _problems(plain, Out(torch.zeros(2, 3))) == ["v.extra: unexpected expected no such key, got None"]
    assert spec.check(Out(torch.zeros(2, 3)), name="v") == []
    assert _problems(plain, {}) == ["v.logits: missing expected a tensor, got nothing"]
    assert _problems(plain, 3) == ["v: type expected a mapping or dataclass, got builtins.int 3"]


def test_model_output_is_a_mapping_of_its_fields_that_are_set():
    from transformers.modeling_outputs import CausalLMOutputWithPast

    out = CausalLMOutputWithPast(logits=torch.zeros(2, 5, 10))
    spec = DictSpec({"logits": TensorSpec("b s 10")}, type="transformers.utils.generic.ModelOutput")
    assert _problems(spec, out) == []  # a base class by name: isinstance along the MRO
    assert is_instance_of(out, "collections.OrderedDict")


def test_optional_and_opaque():
    assert _problems(OptionalSpec(H), None) == []
    assert _problems(OptionalSpec(None), None) == []
    assert _problems(OptionalSpec(None), torch.zeros(1)) == ["v: type expected None, got f32[1]"]
    cache = OpaqueSpec("nowhere.never.Imported")  # checking never imports the named module
    (got,) = _problems(cache, object())
    assert got.startswith("v: type expected a nowhere.never.Imported, got builtins.object <object object at")
    assert _problems(OpaqueSpec("builtins.int"), True) == []  # bool is an int, by name along the MRO


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: OpaqueSpec("DynamicCache"), "OpaqueSpec(type=...): expected a qualified class name"),
        (lambda: OpaqueSpec("os.system('x')"), "expected a qualified class name"),
        (lambda: DictSpec({"a": 1}), "DictSpec(fields['a']): expected a spec (TensorSpec, TupleSpec"),
        (lambda: DictSpec({"": H}), "DictSpec(fields=...): key '' is not a non-empty string"),
        (lambda: TupleSpec("ab"), "TupleSpec(items='ab'): expected a list of specs"),
        (lambda: OptionalSpec(OptionalSpec(H)), "an optional value is optional once"),
        (lambda: Interface("i", {"x": (H,)}, {}), "'x' is a tuple; expected a TensorSpec (or TupleSpec"),
    ],
    ids=["unqualified", "code", "not-a-spec", "empty-key", "string-items", "optional-twice", "interface"],
)
def test_bad_arguments_say_what_was_wrong(make, message):
    with pytest.raises(SpecError) as info:
        make()
    assert message in str(info.value)


def test_guard_checks_nested_values_and_names_the_path():
    import modpact as mp

    lstm = torch.nn.LSTM(4, 8, num_layers=2, batch_first=True)
    iface = Interface(
        "lstm",
        inputs={
            "input": TensorSpec("batch seq 4"),
            "hx": OptionalSpec(TupleSpec([H, TensorSpec(H.shape, finite=True)])),
        },
        outputs={"out": TensorSpec("batch seq 8"), "state": TupleSpec([H, H])},
    )
    mp.guard(lstm, iface)
    try:
        x = torch.randn(3, 5, 4)
        lstm(x)
        lstm(x, (torch.zeros(2, 3, 8), torch.zeros(2, 3, 8)))
        with pytest.raises(InterfaceViolation) as info:
            lstm(x, (torch.zeros(2, 3, 8), torch.full((2, 3, 8), float("nan"))))
        assert "inputs.hx[1]: finite expected finite values, got 48 of 48 failing" in str(info.value)
        assert "blaming the caller of LSTM" in str(info.value)
    finally:
        mp.unguard(lstm)


# ---- JSON -------------------------------------------------------------------------------------


def test_json_round_trip_and_old_documents_still_load():
    doc = LSTM.to_dict()
    assert doc["format_version"] == "1"
    assert doc["inputs"]["hx"]["kind"] == "optional" and doc["inputs"]["hx"]["inner"]["kind"] == "tuple"
    assert "kind" not in doc["inputs"]["input"]  # a tensor spec is written as before
    assert Interface.from_json(LSTM.to_json()) == LSTM
    old = {
        "format_version": "1",
        "kind": "Interface",
        "name": "old",
        "inputs": {"x": {"shape": "batch 4", "dtype": "float32"}},
        "outputs": {"y": {"shape": "batch 2"}},
    }
    assert Interface.from_dict(old).inputs["x"] == TensorSpec("batch 4", dtype="float32")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "set", "items": []}, "inputs.x: Input tag 'set' found using _spec_kind() does not match"),
        ({"kind": "opaque", "type": "no dots"}, "inputs.x: OpaqueSpec(type=...): expected a qualified class name"),
        ({"kind": "tuple", "items": [{"shape": "a", "oops": 1}]}, "inputs.x.items[0].oops: Extra inputs are not"),
        ({"kind": "dict", "fields": {"a": {"kind": "optional", "inner": 3}}}, "inputs.x.fields.a.inner"),
        ({"kind": "opaque"}, "inputs.x.type: Field required"),
    ],
    ids=["unknown-kind", "bad-type-name", "extra-field", "bad-inner", "no-type"],
)
def test_bad_nested_documents_name_the_field(spec, message):
    doc = {"format_version": "1", "kind": "Interface", "name": "i", "inputs": {"x": spec}, "outputs": {}}
    with pytest.raises(SpecError) as info:
        Interface.from_dict(doc)
    assert message in str(info.value) and "\n" not in str(info.value)


def nested_specs(depth=2):
    leaf = specs(shape="batch _ 2")
    if depth == 0:
        return leaf
    inner = nested_specs(depth - 1)
    names = st.sampled_from(["a", "b", "logits"])
    return st.one_of(
        leaf,
        st.lists(inner, max_size=3).map(TupleSpec),
        st.lists(inner, max_size=2).map(ListSpec),
        st.builds(
            DictSpec,
            st.dictionaries(names, inner, max_size=2),
            st.none() | st.just("transformers.utils.generic.ModelOutput"),
        ),
        inner.filter(lambda s: not isinstance(s, OptionalSpec)).map(OptionalSpec),
        st.just(OptionalSpec(None)),
        st.builds(OpaqueSpec, st.sampled_from(["a.B", "transformers.cache_utils.DynamicCache"]), st.text(max_size=5)),
    )


@settings(max_examples=60)
@given(nested_specs(), nested_specs())
def test_nested_json_round_trip(a, b):
    iface = Interface("n", {"x": a}, {"y": b})
    back = Interface.from_json(iface.to_json())
    assert back == iface and json.loads(back.to_json()) == json.loads(iface.to_json())


# ---- compatibility ------------------------------------------------------------------------------


@settings(max_examples=60)
@given(nested_specs())
def test_nested_compatibility_is_reflexive(a):
    assert check_compatible(a, a).ok


def test_nested_compatibility_reasons():
    h_named = TensorSpec("2 n 8", dtype="float32")
    assert check_compatible(TupleSpec([H, H]), TupleSpec([h_named, h_named])).ok
    r = check_compatible(TupleSpec([H, TensorSpec("2 batch 9", dtype="float32")]), TupleSpec([H, H])).reasons
    assert r == ["value[1]: 9 does not satisfy fixed size 8"]
    assert check_compatible(TupleSpec([H]), ListSpec([H])).reasons == [
        "value: a tuple of 1 does not satisfy a list of 1"
    ]
    assert check_compatible(H, OptionalSpec(H)).ok
    assert check_compatible(OptionalSpec(None), OptionalSpec(H)).ok
    assert check_compatible(OptionalSpec(H), H).reasons == [
        "value: an optional a tensor may be None, which a tensor does not allow"
    ]
    a = OpaqueSpec("transformers.cache_utils.DynamicCache")
    assert check_compatible(a, OpaqueSpec("transformers.cache_utils.Cache")).reasons == [
        "value: an opaque transformers.cache_utils.DynamicCache is not known to be a transformers.cache_utils.Cache "
        "(types are compared by name)"
    ]
    d = DictSpec({"logits": H, "cache": a}, type="transformers.modeling_outputs.CausalLMOutputWithPast")
    assert check_compatible(d, DictSpec({"logits": H, "cache": a})).ok
    assert check_compatible(DictSpec({"logits": H}), d).reasons == [
        "value: a mapping is not known to be a transformers.modeling_outputs.CausalLMOutputWithPast "
        "(types are compared by name)",
        "value.cache is required but the producer has no key 'cache'",
    ]
    # dims rename consistently across leaves: (n, m) cannot stand for (batch, batch)
    two = TupleSpec([TensorSpec("n 8"), TensorSpec("m 8")])
    same = TupleSpec([TensorSpec("batch 8"), TensorSpec("batch 8")])
    assert check_compatible(same, two).ok
    assert not check_compatible(two, same).ok


def test_substitutability_with_nested_outputs():
    other = Interface("lstm2", LSTM.inputs, {**LSTM.outputs, "state": TupleSpec([H])})
    r = other.is_substitutable_for(LSTM)
    assert r.reasons == ["outputs: state: a tuple of 1 does not satisfy a tuple of 2"]
    assert LSTM.is_substitutable_for(LSTM).ok


# ---- generation ---------------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.data())
def test_generated_nested_inputs_satisfy_the_interface(data):
    iface = Interface(
        "g",
        inputs={
            "x": TensorSpec("batch 3", dtype="float32", range=(0, 1)),
            "state": TupleSpec([TensorSpec("batch 2", dtype="int64", range=(0, 5)), ListSpec([H])]),
            "extra": OptionalSpec(DictSpec({"m": TensorSpec("batch", dtype="bool")})),
        },
        outputs={},
    )
    value = data.draw(iface.strategy())
    assert isinstance(value["state"], tuple) and isinstance(value["state"][1], list)
    assert value["extra"] is None or isinstance(value["extra"], dict)
    problems, _ = iface.input_problems(value)
    assert problems == []


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            OpaqueSpec("transformers.cache_utils.DynamicCache"),
            "cannot generate inputs.cache: an opaque value (declared by type transformers.cache_utils.DynamicCache) "
            "cannot be generated",
        ),
        (
            OptionalSpec(TupleSpec([H, OpaqueSpec("a.B")])),
            "cannot generate inputs.cache[1]: an opaque value (declared by type a.B)",
        ),
        (
            DictSpec({"a": H}, type="transformers.utils.generic.ModelOutput"),
            "cannot generate inputs.cache: a transformers.utils.generic.ModelOutput cannot be built from its name",
        ),
    ],
    ids=["opaque", "opaque-inside", "typed-dict"],
)
def test_what_cannot_be_generated_is_said(spec, message):
    iface = Interface("g", {"x": H, "cache": spec}, {})
    with pytest.raises(SpecError) as info:
        iface.strategy()
    assert message in str(info.value)


def test_monitor_checks_nested_value_domains_by_path():
    import modpact as mp

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out)

    m = Tagger()
    h = TensorSpec("1 batch 8", finite=True)
    iface = Interface(
        "lstm",
        {"input": TensorSpec("batch s 4"), "hx": OptionalSpec(TupleSpec([h, h]))},
        {"out": TensorSpec("batch s 8"), "state": TupleSpec([h, h])},
    )
    mp.guard(m.lstm, iface, name="lstm")
    with mp.Monitor(m) as mon:
        m(torch.randn(2, 3, 4))
    assert not mon.report().violations  # the clean call: no violation
    with torch.no_grad():
        m.lstm.weight_hh_l0[0, 0] = float("nan")
    with mp.Monitor(m) as mon:
        m(torch.randn(2, 3, 4))
    found = {(v.check, v.tensor) for v in mon.report().violations}
    assert {("value domain finite", "outputs.state[0]"), ("value domain finite", "outputs.state[1]")} <= found


def test_deeply_nested_documents_are_refused_by_the_bounded_reader():
    spec: dict = {"shape": "a"}
    for _ in range(70):
        spec = {"kind": "tuple", "items": [spec]}
    doc = {"format_version": "1", "kind": "Interface", "name": "i", "inputs": {"x": spec}, "outputs": {}}
    with pytest.raises(SpecError) as info:
        Interface.from_dict(doc)
    assert "nested more than 64 levels deep" in str(info.value)


def test_check_substitutable_compares_nested_outputs():
    from modpact.validation import check_substitutable

    lstm = torch.nn.LSTM(4, 8, num_layers=2, batch_first=True)
    iface = Interface("lstm", {"input": TensorSpec("batch seq 4", dtype="float32", range=(0, 1))}, LSTM.outputs)
    res = check_substitutable(lstm, copy.deepcopy(lstm), iface, max_examples=3, seed=0)
    assert res.ok and res.not_compared == [] and res.generated.elements > 0


def test_reports_show_nested_specs_by_kind():
    from modpact.runtime.render.common import spec_text

    doc = LSTM.to_dict()
    assert spec_text(doc["inputs"]["hx"]) == 'optional(tuple("2 batch 8", dtype=float32, "2 batch 8", dtype=float32))'
    cache = Interface("c", {}, {"c": OpaqueSpec("a.B"), "d": DictSpec({"x": OptionalSpec(None)}, type="m.Out")})
    outs = cache.to_dict()["outputs"]
    assert [spec_text(outs["c"]), spec_text(outs["d"])] == ["opaque a.B", "m.Out(x: None)"]
    assert spec_text({"kind": "tuple", "items": 5}) == "tuple()"  # a hostile document is shown, not a crash
    assert spec_text({"kind": 3}) == "kind=3"


def generable_specs(depth=2):
    leaf = st.builds(
        TensorSpec,
        st.sampled_from(["batch 2", "batch n", "n 3", "2"]),
        dtype=st.sampled_from(["float32", "int64", "bool"]),
        range=st.none() | st.just((0, 3)),
    )
    if depth == 0:
        return leaf
    inner = generable_specs(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=3).map(TupleSpec),
        st.lists(inner, max_size=2).map(ListSpec),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2).map(DictSpec),
        inner.filter(lambda s: not isinstance(s, OptionalSpec)).map(OptionalSpec),
    )


@settings(max_examples=30)
@given(st.dictionaries(st.sampled_from(["x", "y"]), generable_specs(), min_size=1), st.data())
def test_generated_values_of_random_nested_specs_satisfy_them(inputs, data):
    iface = Interface("g", inputs, {})
    value = data.draw(iface.strategy())
    problems, _ = iface.input_problems(value)
    assert problems == []
    assert iface.is_substitutable_for(iface).ok
