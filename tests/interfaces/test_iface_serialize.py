import json

import pytest
from hypothesis import given, settings
from iface_strategies import interfaces, label_spaces, specs

from modpact.interfaces import FormatVersionError, Interface, LabelSpace, SpecError, TensorSpec


@settings(max_examples=80, deadline=None)
@given(specs())
def test_spec_roundtrip(s):
    assert TensorSpec.from_json(s.to_json()) == s
    assert TensorSpec.from_dict(s.to_dict()) == s


@settings(max_examples=40, deadline=None)
@given(interfaces())
def test_interface_roundtrip(iface):
    back = Interface.from_json(iface.to_json())
    assert back == iface and back.to_dict() == iface.to_dict()


@settings(max_examples=30, deadline=None)
@given(label_spaces)
def test_label_space_roundtrip(ls):
    back = LabelSpace.from_json(ls.to_json())
    assert back == ls and (back.name, back.id) == (ls.name, ls.id)


def test_document_shape():
    d = TensorSpec("batch 3", dtype={"float16", "bfloat16"}, range=(0, 1.5)).to_dict()
    assert d["format_version"] == "1" and d["kind"] == "TensorSpec"
    assert d["shape"] == "batch 3" and d["dtype"] == ["bfloat16", "float16"] and d["range"] == (0, 1.5)
    schema = Interface.json_schema()
    assert schema["title"] == "InterfaceModel" and "inputs" in schema["properties"]


def test_unknown_format_version():
    d = Interface("i", {"x": TensorSpec("n")}, {}).to_dict()
    d["format_version"] = "99"
    with pytest.raises(FormatVersionError) as e:
        Interface.from_dict(d)
    assert str(e.value) == "Interface.from_dict: format_version '99' is not supported; this modpact reads '1'"
    del d["format_version"]
    with pytest.raises(FormatVersionError, match="format_version None"):
        Interface.from_json(json.dumps(d))


def test_loading_validates_and_never_executes():
    d = TensorSpec("n").to_dict()
    for bad, fragment in [
        ({**d, "shape": "__import__('os').system('x')"}, "uses Call"),
        ({**d, "dtype": "float33"}, "unknown dtype 'float33'"),
        ({**d, "surprise": 1}, "Extra inputs are not permitted"),
        ({**d, "kind": "Interface"}, "document kind is 'Interface'"),
    ]:
        with pytest.raises(SpecError) as e:
            TensorSpec.from_dict(bad)
        assert fragment in str(e.value)
    with pytest.raises(SpecError, match="not valid JSON"):
        Interface.from_json("{nope")
