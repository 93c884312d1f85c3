import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modpact.interfaces import CompatibilityError, LabelSpace, SpecError

LABELS = [f"l{i}" for i in range(8)]


def test_basics():
    ls = LabelSpace("digits", ["0", "1", "2"])
    assert len(ls) == 3 and list(ls) == ["0", "1", "2"] and ls.index("2") == 2
    assert ls == LabelSpace("other", ["0", "1", "2"]) and ls != LabelSpace("digits", ["1", "0", "2"])
    assert ls.id == LabelSpace("digits", ["0", "1", "2"]).id and ls.id.startswith("digits-")
    assert LabelSpace("d", ["0"]).issubset(ls) and not ls.issubset(LabelSpace("d", ["0"]))
    with pytest.raises(KeyError, match="label '9' is not in label space 'digits'"):
        ls.index("9")


def test_align_names_every_missing_label():
    a = LabelSpace("a", ["x", "y"])
    b = LabelSpace("b", ["y", "z", "w"])
    with pytest.raises(CompatibilityError) as e:
        a.align(b)
    assert e.value.reasons == ["label 'z' is missing from 'a'", "label 'w' is missing from 'a'"]


@settings(max_examples=60, deadline=None)
@given(st.permutations(LABELS), st.data())
def test_align_then_index_gives_other_order(perm_labels, data):
    src = LabelSpace("src", list(perm_labels))
    sub = data.draw(st.lists(st.sampled_from(LABELS), min_size=1, unique=True))
    dst = LabelSpace("dst", sub)
    perm = src.align(dst)
    assert len(perm) == len(dst)
    assert [src.labels[i] for i in perm] == list(dst.labels)
    scores = torch.arange(len(src), dtype=torch.float32).expand(2, -1)  # score == own index
    out = src.adapter(dst)(scores)
    assert out.shape == (2, len(dst))
    assert [src.labels[int(i)] for i in out[0]] == list(dst.labels)


def test_adapter_along_dim_0():
    src, dst = LabelSpace("s", ["a", "b", "c"]), LabelSpace("d", ["c", "a"])
    x = torch.tensor([[1.0], [2.0], [3.0]])
    assert src.adapter(dst, dim=0)(x).flatten().tolist() == [3.0, 1.0]
    assert "perm=[2, 0]" in repr(src.adapter(dst))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(name="d", labels=[]), "LabelSpace(name='d', labels=[]): empty label space"),
        (dict(name="d", labels=["a", "b", "a"]), "LabelSpace(name='d'): duplicate labels ['a']; labels must be unique"),
        (dict(name="d", labels="abc"), "expected a list or tuple of strings"),
        (dict(name="d", labels=[1, 2]), "label 1 is a int; labels must be strings"),
        (dict(name="", labels=["a"]), "LabelSpace(name=''): expected a non-empty string"),
    ],
    ids=["empty", "duplicate", "string", "non-str", "no-name"],
)
def test_bad_label_spaces(kwargs, fragment):
    with pytest.raises(SpecError) as e:
        LabelSpace(**kwargs)
    assert fragment in str(e.value)
