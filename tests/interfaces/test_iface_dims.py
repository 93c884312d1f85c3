import jaxtyping
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from iface_strategies import shape_strings
from jaxtyping import Shaped

from modpact.interfaces import Bindings, Dim, Shape, SpecError, TensorSpec, parse_shape
from modpact.interfaces.bindings import unify
from modpact.interfaces.dims import eval_expr


def problems(shape, *actuals):
    b = Bindings()
    out = []
    for i, a in enumerate(actuals):
        out += unify(parse_shape(shape), a, b, f"t{i}")
    return out + b.resolve(), b


@pytest.mark.parametrize(
    "text,kinds",
    [
        ("batch 64", [("named", False, False), ("fixed", False, False)]),
        ("*b c h w", [("named", True, False)] + [("named", False, False)] * 3),
        ("#c _ ...", [("named", False, True), ("anon", False, False), ("anon", True, False)]),
        ("*_ n-1 2*n n+1", [("anon", True, False)] + [("expr", False, False)] * 3),
    ],
)
def test_parse_kinds(text, kinds):
    s = parse_shape(text)
    assert [(d.kind, d.variadic, d.broadcast) for d in s] == kinds
    assert parse_shape(str(s)) == s


def test_sequence_forms_and_roundtrip():
    s = Shape([4, "batch", Dim("named", "c"), "*rest"])
    assert str(s) == "4 batch c *rest"
    assert Shape(str(s)) == s


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ("*a *b", "at most one is allowed"),
        ("n**2", "uses Pow"),
        ("f(n)", "uses Call"),
        ("a.b", "uses Attribute"),
        ("n/2", "uses Div"),
        ("*3", "puts '*' or '#' on a number"),
        ("*", "cannot parse dim"),
        ("__import__('os')", "uses Call"),
    ],
)
def test_bad_shapes(bad, fragment):
    with pytest.raises(SpecError) as e:
        parse_shape(bad)
    assert fragment in str(e.value)


def test_binding_across_tensors_message():
    b = Bindings()
    assert unify(parse_shape("batch 64"), (4, 64), b, "inputs.x") == []
    ps = unify(parse_shape("batch 10"), (8, 10), b, "outputs.logits")
    assert [p.detail for p in ps] == ["dim 'batch' is 8 at outputs.logits[0] but was bound to 4 by inputs.x[0]"]
    assert b["batch"] == (4, "inputs.x[0]")


def test_variadic_binds_tuple():
    ps, b = problems("*b c", (2, 3, 4), (2, 3, 5))
    assert b["b"] == ((2, 3), "t0[0:2]") and b.value("c") == 4
    assert len(ps) == 1 and "dim 'c' is 5" in ps[0].detail
    ps, _ = problems("*b c", (2, 3, 4), (2, 4))
    assert "dims '*b' are (2,)" in ps[0].detail


def test_broadcast_and_anonymous():
    assert problems("#c", (1,), (3,), (1,))[0] == []
    assert problems("#c c", (3, 3))[0] == []
    assert problems("c #c", (3, 2))[0] != []
    assert problems("_ _ ...", (1, 2, 3, 4))[0] == []
    assert "rank 1, expected at least 2" in problems("_ _ ...", (1,))[0][0].detail


def test_expressions_evaluated_after_binding():
    assert problems("n n+1 2*n", (3, 4, 6))[0] == []
    assert problems("n+1 n", (4, 3))[0] == []  # expression before its name
    ps, _ = problems("n n-1", (3, 3))
    assert ps[0].detail == "dim 'n-1' is 3 at t0[1] but n-1 = 2 with n=3"
    # a linear expression with one unknown binds it
    ps, b = problems("2*n", (6,))
    assert ps == [] and b.value("n") == 3
    ps, _ = problems("2*n", (7,))
    assert "unbound dim(s) 'n'" in ps[0].detail
    ps, _ = problems("a*b", (6,))
    assert "unbound dim(s) 'a', 'b'" in ps[0].detail


def test_eval_expr_never_uses_eval():
    assert eval_expr("2*n+1", {"n": 3}) == 7
    assert eval_expr("n//2-1", {"n": 9}) == 3


def test_metadata_check_on_meta_tensor_reads_no_data():
    spec = TensorSpec("batch 64", dtype="float32", range=(0, 1), finite=True)
    t = torch.empty(8, 64, device="meta")
    b = Bindings()
    assert spec.metadata_problems(t, b, "x") == []
    assert b.value("batch") == 8
    assert spec.check(t) == []  # value checks are skipped on meta
    bad = spec.metadata_problems(torch.empty(8, 3, dtype=torch.int64, device="meta"), Bindings(), "x")
    assert {p.field for p in bad} == {"shape", "dtype"}


# ---- differential test against jaxtyping --------------------------------------------


def jaxtyping_accepts(shape: str, actual: tuple) -> bool:
    return isinstance(torch.empty(actual, device="meta"), Shaped[torch.Tensor, shape])


@settings(max_examples=300, deadline=None)
@given(shape_strings(max_len=4), st.lists(st.integers(1, 3), max_size=5))
def test_agrees_with_jaxtyping_single(shape, actual):
    ours = problems(shape, tuple(actual))[0] == []
    assert ours == jaxtyping_accepts(shape, tuple(actual)), (shape, actual)


@settings(max_examples=120, deadline=None)
@given(
    shape_strings(max_len=3),
    shape_strings(max_len=3),
    st.lists(st.integers(1, 3), max_size=4),
    st.lists(st.integers(1, 3), max_size=4),
)
def test_agrees_with_jaxtyping_across_two_tensors(s1, s2, a1, a2):
    from beartype import beartype

    def f(x, y):
        return None

    f.__annotations__ = {"x": Shaped[torch.Tensor, s1], "y": Shaped[torch.Tensor, s2]}
    checked = jaxtyping.jaxtyped(typechecker=beartype)(f)
    try:
        checked(torch.empty(tuple(a1), device="meta"), torch.empty(tuple(a2), device="meta"))
        theirs = True
    except Exception:
        theirs = False
    b = Bindings()
    ours = unify(parse_shape(s1), tuple(a1), b, "x") + unify(parse_shape(s2), tuple(a2), b, "y")
    assert (ours == []) == theirs, (s1, a1, s2, a2, ours)


@st.composite
def near_matching(draw):
    """A shape string and an actual shape built to (nearly) match it, so both
    verdicts are well represented."""
    shape = draw(shape_strings(max_len=4))
    env = {n: draw(st.integers(1, 3)) for n in "abc"}
    var_env = {v: tuple(draw(st.lists(st.integers(1, 3), max_size=2))) for v in ("*v", "*w")}
    out = []
    for tok in shape.split():
        if tok in var_env:
            out += var_env[tok]
        elif tok == "...":
            out += draw(st.lists(st.integers(1, 3), max_size=2))
        elif tok == "_":
            out.append(draw(st.integers(1, 3)))
        elif tok.startswith("#"):
            out.append(draw(st.sampled_from([1, env[tok[1:]]])))
        elif tok.isdigit():
            out.append(int(tok))
        else:
            out.append(env[tok])
    if out and draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(1, 3))
    return shape, tuple(out)


@settings(max_examples=300, deadline=None)
@given(near_matching())
def test_agrees_with_jaxtyping_near_matches(case):
    shape, actual = case
    assert (problems(shape, actual)[0] == []) == jaxtyping_accepts(shape, actual), case
