"""Hypothesis strategies for generated dims, specs and interfaces (test helper)."""

from hypothesis import strategies as st

from modpact.interfaces import Interface, LabelSpace, TensorSpec

NAMES = ["a", "b", "c"]
DTYPES = ["float32", "float16", "int64", "bool", "floating", "integer", "signed", "any"]


@st.composite
def shape_strings(draw, max_len=4, variadic=True, broadcast=True, exprs=False):
    n = draw(st.integers(0, max_len))
    kinds = ["name", "fixed", "anon"] + (["bcast"] if broadcast else []) + (["expr"] if exprs else [])
    toks = []
    for _ in range(n):
        k = draw(st.sampled_from(kinds))
        if k == "name":
            toks.append(draw(st.sampled_from(NAMES)))
        elif k == "fixed":
            toks.append(str(draw(st.integers(1, 3))))
        elif k == "anon":
            toks.append("_")
        elif k == "bcast":
            toks.append("#" + draw(st.sampled_from(NAMES)))
        else:
            toks.append(draw(st.sampled_from(["a+1", "2*b", "c-1"])))
    if variadic and draw(st.booleans()):
        var = draw(st.sampled_from(["*v", "...", "*w"]))
        toks.insert(draw(st.integers(0, len(toks))), var)
    return " ".join(toks)


label_spaces = st.builds(
    lambda name, labels: LabelSpace(name, labels),
    st.sampled_from(["digits", "colors"]),
    st.lists(st.sampled_from(list("abcdefgh")), min_size=1, max_size=5, unique=True),
)


@st.composite
def specs(draw, shape=None):
    s = draw(shape_strings(exprs=True)) if shape is None else shape
    dtype = draw(st.sampled_from(DTYPES + [("float16", "bfloat16"), ("int32", "int64")]))
    dtype = set(dtype) if isinstance(dtype, tuple) else dtype
    device = draw(st.sampled_from(["any", "cpu", "cuda"]))
    lo = draw(st.none() | st.integers(-5, 0) | st.floats(-5, 0, allow_nan=False))
    hi = draw(st.none() | st.integers(1, 5) | st.floats(1, 5, allow_nan=False))
    rng = draw(st.none() | st.just((lo, hi)))
    finite = draw(st.booleans())
    labels = draw(st.none() | label_spaces)
    return TensorSpec(
        s + (" " + str(len(labels)) if labels else ""),
        dtype=dtype,
        device=device,
        range=rng,
        finite=finite,
        labels=labels,
    )


@st.composite
def interfaces(draw):
    ins = draw(st.dictionaries(st.sampled_from(["x", "y", "mask"]), specs(), min_size=1, max_size=2))
    outs = draw(st.dictionaries(st.sampled_from(["logits", "h"]), specs(), min_size=1, max_size=2))
    return Interface(
        draw(st.sampled_from(["enc", "head"])),
        ins,
        outs,
        version=draw(st.sampled_from(["1.0", "2.1"])),
        description=draw(st.text(max_size=10)),
    )
