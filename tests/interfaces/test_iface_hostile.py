"""Interface files that are broken or hostile: every loader (``from_json``,
``from_dict``, ``load``) gives an Interface or a ``SpecError`` / ``LoadError``
naming the problem, never ValueError, RecursionError or OverflowError from
below; shapes with negative dims are refused where they are written."""

from __future__ import annotations

import json
import re

import pytest

from modpact.errors import FormatVersionError, LoadError, SpecError
from modpact.interfaces import Interface, TensorSpec


def good() -> dict:
    return Interface("i", {"x": TensorSpec("b 4", range=(0, 1))}, {"y": TensorSpec("b 2")}).to_dict()


def with_x(**kw) -> dict:
    d = good()
    d["inputs"]["x"].update(kw)
    return d


BAD_TEXT = [
    ("digits", '{"format_version": "1", "name": ' + "7" * 5000 + "}", "Interface.from_json: a number has more digits"),
    ("nesting", "[" * 100_000 + "]" * 100_000, "Interface.from_json: nested more than 64 levels deep"),
    ("bytes", b"\xff\xfe{}", "Interface.from_json: not UTF-8 text (byte 0xff at offset 0)"),
    ("not-text", 42, "Interface.from_json: expected JSON text (str or bytes), got int"),
    ("not-json", "{nope", "Interface.from_json: not valid JSON: Expecting property name"),
]


@pytest.mark.parametrize("name, text, message", BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
def test_bad_text(name, text, message):
    with pytest.raises(SpecError) as info:
        Interface.from_json(text)
    assert str(info.value).startswith(message)


BAD_DICTS = [
    ("negative-dim", with_x(shape="batch -5"), "Interface.from_dict: inputs.x: TensorSpec(shape='batch -5'): dim '-5'"),
    ("negative-expr", with_x(shape="n 2-7"), "inputs.x: TensorSpec(shape='n 2-7'): dim '2-7' is negative (-5)"),
    ("huge-dim", with_x(shape="b " + "9" * 5000), "is not a size a tensor can have"),
    ("long-expr", with_x(shape="b " + "+".join(["1"] * 100_000)), "characters long; at most 200"),
    (
        "huge-bound",
        with_x(range=[10**400, None]),
        "Interface.from_dict: inputs.x.range[0]: integer of about 401 digits",
    ),
    ("nan-bound", with_x(range=[float("nan"), 1]), "bound nan is not a number or None"),
    ("deep", {**good(), "description": json.loads("[" * 500 + "]" * 500)}, "nested more than 64 levels deep"),
    ("extra", with_x(surprise=1), "Interface.from_dict: invalid document: inputs.x.surprise: Extra inputs are not"),
    ("key", {**good(), "inputs": {3: {}}}, "Interface.from_dict: inputs: key 3 is not a string"),
    ("surrogate", {**good(), "name": "\ud800"}, "Interface.from_dict: name: a string holds a lone surrogate"),
]


@pytest.mark.parametrize("name, data, message", BAD_DICTS, ids=[b[0] for b in BAD_DICTS])
def test_bad_documents_name_the_field(name, data, message):
    with pytest.raises(SpecError) as info:
        Interface.from_dict(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_negative_dims_are_refused_where_they_are_written():
    for shape, bad in [("batch -5", "-5"), ("n -1", "-1"), ("3-4", "3-4"), (["b", -2], "-2")]:
        with pytest.raises(SpecError, match=f"dim '?{re.escape(bad)}'? is negative"):  # the dim is named
            TensorSpec(shape)
    assert str(TensorSpec("n n-1 2*n").shape) == "n n-1 2*n"  # expressions of names are checked when bound


def test_load_names_the_file(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        Interface.load(tmp_path / "missing.json")
    path = tmp_path / "i.json"
    path.write_text(json.dumps(with_x(shape="batch -5")))
    with pytest.raises(SpecError) as info:
        Interface.load(path)
    assert str(info.value).startswith(f"{path}: Interface.from_dict: inputs.x:")
    path.write_text(json.dumps({**good(), "format_version": "9"}))
    with pytest.raises(FormatVersionError, match=f"^{path}: Interface.from_dict: format_version '9'"):
        Interface.load(path)
    path.write_text(Interface("ok", {"x": TensorSpec("b")}, {}).to_json())
    assert Interface.load(path).name == "ok"
