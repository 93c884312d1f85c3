import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iface_strategies import shape_strings, specs

from modpact.interfaces import (
    Bindings,
    CompatibilityError,
    Interface,
    LabelSpace,
    TensorSpec,
    check_compatible,
    parse_shape,
)
from modpact.interfaces.bindings import unify
from modpact.interfaces.subtyping import shape_reasons

A = LabelSpace("abc", ["a", "b", "c"])
CBA = LabelSpace("cba", ["c", "b", "a"])


@pytest.mark.parametrize(
    "producer,consumer,ok",
    [
        (TensorSpec("8 64"), TensorSpec("batch 64"), True),
        (TensorSpec("batch 64"), TensorSpec("8 64"), False),
        (TensorSpec("n n"), TensorSpec("a b"), True),
        (TensorSpec("a b"), TensorSpec("n n"), False),
        (TensorSpec("a b"), TensorSpec("x y"), True),
        (TensorSpec("a b c"), TensorSpec("*rest c"), True),
        (TensorSpec("*b c"), TensorSpec("..."), True),
        (TensorSpec("*b c"), TensorSpec("x c"), False),
        (TensorSpec("_ 3"), TensorSpec("n 3"), True),
        (TensorSpec("_ _"), TensorSpec("n n"), False),
        (TensorSpec("n"), TensorSpec("#n"), True),
        (TensorSpec("#n"), TensorSpec("n"), True),
        (TensorSpec("#n n"), TensorSpec("a a"), False),
        (TensorSpec("#n n"), TensorSpec("#a a"), True),
        (TensorSpec("5 6"), TensorSpec("n n+1"), True),
        (TensorSpec("5 7"), TensorSpec("n n+1"), False),
        (TensorSpec("n", dtype="float32"), TensorSpec("n", dtype="floating"), True),
        (TensorSpec("n", dtype="floating"), TensorSpec("n", dtype="float32"), False),
        (TensorSpec("n", dtype="any"), TensorSpec("n", dtype="bool"), False),
        (TensorSpec("n", device="cuda"), TensorSpec("n"), True),
        (TensorSpec("n"), TensorSpec("n", device="cuda"), False),
        (TensorSpec("n", range=(0, 1)), TensorSpec("n", range=(-1, None)), True),
        (TensorSpec("n", range=(0, None)), TensorSpec("n", range=(0, 1)), False),
        (TensorSpec("n", range=(0, 1)), TensorSpec("n", finite=True), True),
        (TensorSpec("n", dtype="int64"), TensorSpec("n", finite=True), True),
        (TensorSpec("n"), TensorSpec("n", finite=True), False),
        (TensorSpec("n", dtype="int64", indices=3), TensorSpec("n", dtype="int64", indices=5), True),
        (TensorSpec("n", dtype="int64", indices=5), TensorSpec("n", dtype="int64", indices=3), False),
        (TensorSpec("n", dtype="int64", indices=5), TensorSpec("n", range=(0, 4)), True),
        (TensorSpec("b k", simplex=-1), TensorSpec("b k", simplex=1, range=(0, 1)), True),
        (TensorSpec("b k", simplex=0), TensorSpec("b k", simplex=1), False),
        (TensorSpec("b 3", labels=A), TensorSpec("b 3", labels=LabelSpace("x", ["a", "b", "c"])), True),
        (TensorSpec("b 3", labels=A), TensorSpec("b 3"), True),
        (TensorSpec("b 3"), TensorSpec("b 3", labels=A), False),
    ],
)
def test_spec_rules(producer, consumer, ok):
    c = check_compatible(producer, consumer)
    assert bool(c) is ok, c.reasons


def test_every_reason_listed_and_raise():
    c = check_compatible(
        TensorSpec("n 3", dtype="floating", device="any"),
        TensorSpec("4 3 1", dtype="float32", device="cuda", finite=True),
    )
    assert not c and len(c.reasons) == 4, c.reasons  # rank, dtype, device, finite
    with pytest.raises(CompatibilityError) as e:
        c.raise_if_incompatible()
    assert e.value.reasons == c.reasons and "device any does not satisfy cuda" in str(e.value)


def test_labels_alignable_says_how():
    c = check_compatible(TensorSpec("b 3", labels=A), TensorSpec("b 3", labels=CBA))
    assert not c
    assert "alignable: insert abc.adapter(cba) (perm [2, 1, 0])" in c.reasons[0]
    c = check_compatible(TensorSpec("b 3", labels=A), TensorSpec("b 3", labels=LabelSpace("z", ["z", "y", "x"])))
    assert "not alignable" in c.reasons[0]


def test_interfaces_by_name_and_position_with_shared_renaming():
    enc = Interface("enc", {"x": TensorSpec("b 8")}, {"h": TensorSpec("b 16"), "m": TensorSpec("b")})
    head = Interface("head", {"h": TensorSpec("n 16"), "m": TensorSpec("n")}, {"y": TensorSpec("n 2")})
    assert check_compatible(enc, head)
    bad_head = Interface("head", {"h": TensorSpec("n 16"), "m": TensorSpec("k"), "z": TensorSpec("k")}, {})
    c = check_compatible(enc, bad_head)
    assert any("head.inputs.z is required" in r for r in c.reasons)
    single = Interface("s", {"feat": TensorSpec("n 16")}, {})
    one_out = Interface("o", {}, {"h": TensorSpec("4 16")})
    c = check_compatible(one_out, single)
    assert c and "by position" in c.notes[0]


def test_substitutability_variance():
    base = Interface("base", {"x": TensorSpec("b 8", dtype="float32")}, {"y": TensorSpec("b 2", dtype="floating")})
    wider_in = Interface("w", {"x": TensorSpec("b 8", dtype="floating")}, {"y": TensorSpec("b 2", dtype="float32")})
    assert wider_in.is_substitutable_for(base)  # accepts more, promises more
    c = base.is_substitutable_for(wider_in)
    assert not c and len(c.reasons) == 2
    assert c.reasons[0].startswith("inputs: ") and c.reasons[1].startswith("outputs: ")


# ---- properties ------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(specs())
def test_reflexive(s):
    assert check_compatible(s, s), check_compatible(s, s).reasons


small_specs = st.builds(
    TensorSpec,
    st.sampled_from(["n", "n 3", "3 3", "_ 3", "a b", "...", "*v 3", "3", "n n", "#n n", "1 3", "n+1 n"]),
    dtype=st.sampled_from(["float32", "floating", "any", "int64"]),
    device=st.sampled_from(["any", "cpu"]),
    range=st.sampled_from([None, (0, 1), (0, None), (-1, 2)]),
    finite=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(small_specs, small_specs, small_specs)
def test_transitive(a, b, c):  # exhaustive over the shape POOL too: see test_transitive_pool
    if check_compatible(a, b) and check_compatible(b, c):
        assert check_compatible(a, c), (a, b, c)


@st.composite
def weaker_shape(draw, s):
    out = []
    for tok in s.split():
        out.append(draw(st.sampled_from([tok, "_"])) if not tok.startswith("*") and tok != "..." else tok)
    return " ".join(out)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_transitive_on_weakening_chains(data):
    s1 = data.draw(shape_strings(broadcast=False))
    s2 = data.draw(weaker_shape(s1))
    s3 = data.draw(weaker_shape(s2))
    a = TensorSpec(s1, dtype="float32", range=(0, 1))
    b = TensorSpec(s2, dtype="floating", range=(0, 2))
    c = TensorSpec(s3, dtype="any", finite=True)
    assert check_compatible(a, b) and check_compatible(b, c) and check_compatible(a, c)


POOL = [
    "n",
    "n 3",
    "3 3",
    "_ 3",
    "a b",
    "...",
    "*v 3",
    "3",
    "n n",
    "#n n",
    "1 3",
    "n+1 n",
    "a a+1",
    "*v",
    "*v n",
    "#a 3",
    "2 3",
    "_ _",
    "a _ a",
    "*v a a",
    "#a #a",
    "*v #n n",
    "#n *v",
    "*#v 3",
    "a #a",
    "n #n 3",
    "*#v",
    "*#v n",
]


def accepts(shape, actual):
    b = Bindings()
    return unify(parse_shape(shape), tuple(actual), b, "t") + b.resolve() == []


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(POOL) | shape_strings(max_len=3),
    st.sampled_from(POOL) | shape_strings(max_len=3),
    st.lists(st.integers(1, 3), max_size=4),
)
def test_shape_subtyping_is_sound(sa, sb, actual):
    """If A satisfies B, every shape A accepts is accepted by B."""
    if shape_reasons(parse_shape(sa), parse_shape(sb), "t") == [] and accepts(sa, actual):
        assert accepts(sb, actual), (sa, sb, actual)


def test_transitive_pool():
    S = [TensorSpec(p) for p in POOL]
    ok = {(i, j): bool(check_compatible(a, b)) for i, a in enumerate(S) for j, b in enumerate(S)}
    n = len(S)
    bad = [
        (S[i], S[j], S[k])
        for i in range(n)
        for j in range(n)
        for k in range(n)
        if ok[i, j] and ok[j, k] and not ok[i, k]
    ]
    assert bad == []
