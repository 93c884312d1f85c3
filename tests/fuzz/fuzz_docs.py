"""Valid documents to mutate, hostile values, and the one assertion every fuzz
test makes: a loader gives a valid object (which then renders, in every
renderer) or modpact's own error, never another exception."""

from __future__ import annotations

import copy
import functools
import json
import xml.etree.ElementTree as ET
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

import modpact as mp
from modpact.errors import ModpactError
from modpact.runtime import DiagnosisReport, Monitor
from modpact.runtime.render.common import clean

# -- valid documents (real ones: a monitored run, an interface, inferred contracts) ------------------------


@functools.cache
def report_doc() -> dict:
    """A monitored MLP with a NaN weight: roots, consequences, evidence, a histogram, contracts with an
    interface, edges."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    iface = mp.Interface(
        "head", inputs={"x": mp.TensorSpec("b 8", dtype="float32")}, outputs={"y": mp.TensorSpec("b 3", finite=True)}
    )
    mp.guard(model[2], interface=iface, name="2")
    mp.guard(model[0], ensures=[mp.in_range("result", -100, 100)], name="0")
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with Monitor(model, defaults=True) as mon:
        for _ in range(2):
            model(torch.randn(4, 4))
            mon.step()
    return json.loads(mon.report().to_json())


@functools.cache
def interface_doc() -> dict:
    labels = mp.LabelSpace("abc", ["a", "b", "c"])
    return mp.Interface(
        "clf",
        inputs={"x": mp.TensorSpec("*b 4", dtype="float32", range=(0, 1)), "n": mp.TensorSpec("b", indices=7)},
        outputs={"p": mp.TensorSpec("b 3", dtype="floating", finite=True, simplex=-1, labels=labels)},
        description="a classifier",
    ).to_dict()


@functools.cache
def inferred_doc() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(48, 4), torch.arange(48) % 3
    ic = mp.infer_contracts(model, (x, y), labels=mp.LabelSpace("abc", ["a", "b", "c"]), clusters=2)
    return json.loads(ic.to_json())


def copy_of(doc: dict) -> Any:
    return copy.deepcopy(doc)


# -- hostile values ---------------------------------------------------------------------------------------

CONTROL = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\r\x08\x00\x9b\u202e\ud800"


def nested(depth: int, leaf: Any = 1) -> Any:
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"k": out}
    return out


# values too deep or too big for Python's json and deepcopy stand in as markers; dumps() writes them out
DEEP = {n: f"@@deep{n}@@" for n in (63, 64, 70, 2000, 100_000)}
HUGE = "@@huge@@"  # a 5,000-digit integer


HOSTILE_VALUES = [
    None,
    True,
    0,
    -1,
    -(2**63),
    2**63,
    2**64,
    10**400,
    HUGE,
    1.5,
    float("nan"),
    float("inf"),
    -1e308,
    "",
    "x",
    CONTROL,
    "." * 5000,
    "a" * 100_000,
    "batch -5",
    "__import__('os').system('true')",
    [],
    [1, "a", None],
    {},
    {"a": 1},
    {"format_version": 1},
    nested(20),
    *DEEP.values(),
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(CONTROL)), max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
hostile = st.one_of(st.sampled_from(HOSTILE_VALUES), json_values)


def paths(doc: Any, limit: int = 400) -> list[tuple]:
    """Every path into ``doc`` (dict keys and list indices), breadth first."""
    out: list[tuple] = [()]
    todo = [((), doc)]
    while todo and len(out) < limit:
        path, node = todo.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            out.append((*path, k))
            todo.append(((*path, k), v))
    return out


def mutate(doc: Any, path: tuple, how: str, value: Any) -> Any:
    """``doc`` with the node at ``path`` replaced by ``value`` (``how="set"``),
    deleted, wrapped in a list, or given an extra key."""
    doc = copy.deepcopy(doc)
    if not path:
        return value if how == "set" else [doc] if how == "wrap" else doc
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if how == "set":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "extra" and isinstance(parent[last], dict):
        parent[last]["surprise"] = value
    return doc


@st.composite
def mutations(draw, doc: Any) -> Any:
    """1-3 mutations at random paths of ``doc``."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)))
        how = draw(st.sampled_from(["set", "set", "set", "delete", "wrap", "extra"]))
        doc = mutate(doc, path, how, draw(hostile))
    return doc


def dumps(data: Any) -> str:
    """JSON text of ``data``, the markers written out: nesting ``n`` deep, a 5,000-digit integer."""
    text = json.dumps(data)
    for n, marker in DEEP.items():
        text = text.replace(f'"{marker}"', "[" * n + "]" * n)
    return text.replace(f'"{HUGE}"', "9" * 5000)


# -- the assertion ----------------------------------------------------------------------------------------


def loads_or_refuses(load, *args: Any) -> Any:
    """``load(*args)``: the object, or None when it raised modpact's own error
    (with a message). Any other exception fails the test."""
    try:
        return load(*args)
    except ModpactError as e:
        assert str(e), "a modpact error without a message"
        return None


def renders(report: DiagnosisReport) -> None:
    """Every renderer shows a loaded report, and shows no control character raw."""
    text = report.render_text()
    assert clean(text) == text
    colored = report.render_text(color=True)
    assert "\x1b]" not in colored and "\x07" not in colored  # rich's own colours (CSI) only
    page = report.to_html()
    assert clean(page) == page
    ET.fromstring(report.to_junit())
    DiagnosisReport.from_json(report.to_json())  # what loaded saves and loads again (NaN in evidence as null)
