"""Fuzzing the loaders of users' files: diagnosis reports, interfaces and
inferred contracts, as random JSON, as mutations of valid documents (wrong
types, huge integers, deep nesting, control characters, long strings,
deleted and extra fields) and as damaged text. Each gives a valid object,
which then renders (every renderer) or summarises, or modpact's own error
(``ModpactError``): never another exception."""

from __future__ import annotations

import json

from fuzz_docs import (
    CONTROL,
    dumps,
    inferred_doc,
    interface_doc,
    json_values,
    loads_or_refuses,
    mutations,
    nested,
    renders,
    report_doc,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modpact as mp
from modpact.runtime import DiagnosisReport

# four times the profile's examples (ci: 200 per test; the suite takes about 20 s on 2 cores)
FUZZ = settings(
    max_examples=4 * settings.default.max_examples,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)


def _report(text: str) -> None:
    report = loads_or_refuses(DiagnosisReport.from_json, text)
    if report is not None:
        renders(report)


def _interface(data) -> None:
    iface = loads_or_refuses(mp.Interface.from_dict, data)
    if iface is not None:
        assert mp.Interface.from_json(iface.to_json()) == iface
        repr(iface)
    loads_or_refuses(mp.Interface.from_json, dumps(data))


def _inferred(text: str) -> None:
    ic = loads_or_refuses(mp.InferredContracts.from_json, text)
    if ic is not None:
        ic.summary()
        repr(ic)
        for path in ic.shapes:
            ic.interface(path)
        mp.InferredContracts.from_json(ic.to_json())


# -- diagnosis reports ------------------------------------------------------------------------------------


@FUZZ
@given(json_values)
def test_report_from_random_json(data):
    _report(dumps(data))
    _report(dumps({"format_version": 1, "violations": data}))


@FUZZ
@given(st.data())
def test_report_from_mutated_documents(data):
    _report(dumps(data.draw(mutations(report_doc()))))


@FUZZ
@given(st.data())
def test_report_from_damaged_text(data):
    text = json.dumps(report_doc())
    cut = data.draw(st.integers(0, len(text)))
    how = data.draw(st.sampled_from(["truncate", "insert", "digits", "brackets", "control", "bytes"]))
    if how == "truncate":
        text = text[:cut]
    elif how == "insert":
        text = text[:cut] + data.draw(st.text(max_size=5)) + text[cut:]
    elif how == "digits":  # a number of 5,000 digits where a step was
        text = text.replace('"step": 0', '"step": ' + "9" * 5000, 1)
    elif how == "brackets":
        n = data.draw(st.sampled_from([64, 65, 1000, 100_000]))
        text = text.replace('"evidence": {', '"evidence": {"deep": ' + "[" * n + "]" * n + ", ", 1)
    elif how == "control":
        text = text.replace('"module": "', '"module": ' + json.dumps(CONTROL)[:-1], 1)
    else:
        _report(text.encode()[:cut] + b"\xff\xfe" + text.encode()[cut:])
        return
    _report(text)


# -- interfaces -------------------------------------------------------------------------------------------


@FUZZ
@given(json_values)
def test_interface_from_random_json(data):
    _interface(data)
    _interface({"format_version": "1", "kind": "Interface", "name": "x", "inputs": data, "outputs": {}})


@FUZZ
@given(st.data())
def test_interface_from_mutated_documents(data):
    _interface(data.draw(mutations(interface_doc())))


def test_interface_from_deep_and_huge_documents():
    for bad in (nested(100_000), {"format_version": "1", "kind": "Interface", "name": nested(5000)}):
        loads_or_refuses(mp.Interface.from_dict, bad)
    loads_or_refuses(mp.Interface.from_json, "[" * 100_000 + "]" * 100_000)
    loads_or_refuses(mp.Interface.from_json, '{"format_version": "1", "name": ' + "7" * 5000 + "}")


# -- inferred contracts -----------------------------------------------------------------------------------


@FUZZ
@given(json_values)
def test_inferred_from_random_json(data):
    _inferred(dumps(data))
    _inferred(dumps({**inferred_doc(), "shapes": data}))


@FUZZ
@given(st.data())
def test_inferred_from_mutated_documents(data):
    _inferred(dumps(data.draw(mutations(inferred_doc()))))
