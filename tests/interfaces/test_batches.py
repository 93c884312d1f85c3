"""The one reader of data arguments (interfaces/batches.py): what it accepts,
how it reads each form, and the text of what it refuses."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from modpact.errors import SpecError
from modpact.interfaces.batches import ACCEPTED, read_all, read_batches


def _read(data, **kw):
    return list(read_batches(data, "f", **kw))


def test_a_tensor_is_one_batch_cut_by_batch_size():
    x = torch.randn(10, 3)
    (b,) = _read(x)
    assert b.inputs is x and b.labels is None and b.rows == 10 and not b.keywords
    parts = _read(x, batch_size=4)
    assert [p.rows for p in parts] == [4, 4, 2]
    assert torch.equal(torch.cat([p.inputs for p in parts]), x)


def test_a_pair_takes_labels_as_a_tensor_or_a_list_of_ints():
    x = torch.randn(4, 3)
    (a,) = _read((x, torch.tensor([0, 1, 2, 1])))
    (b,) = _read((x, [0, 1, 2, 1]))
    assert torch.equal(a.labels, b.labels) and b.labels.dtype == torch.int64
    parts = _read((x, [0, 1, 2, 1]), batch_size=3)
    assert [p.labels.tolist() for p in parts] == [[0, 1, 2], [1]]


def test_a_dict_batch_is_passed_as_keywords():
    ids = torch.randint(0, 9, (5, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    (b,) = _read(batch)
    assert b.keywords and b.rows == 5
    assert b.call(lambda input_ids, attention_mask: (input_ids, attention_mask))[0] is ids
    (p,) = _read((batch, [0, 1, 0, 1, 1]))
    assert p.keywords and p.labels.tolist() == [0, 1, 0, 1, 1]
    assert [q.rows for q in _read(batch, batch_size=2)] == [2, 2, 1]


def test_iterables_of_every_form_and_a_dataloader():
    x, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    items = _read([x[:2], (x[2:4], y[2:4]), {"x": x[4:]}, [x[:1]]])
    assert [i.rows for i in items] == [2, 2, 2, 1]
    assert items[1].labels is not None and items[2].keywords and items[3].labels is None
    loaded = _read(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b.rows for b in loaded] == [4, 2]
    assert torch.equal(torch.cat([b.labels for b in loaded]), y)
    # inside an iterable the second item may be any per-row target (regression); class labels say so
    (reg,) = _read(DataLoader(TensorDataset(x, torch.randn(6)), batch_size=8))
    with pytest.raises(SpecError) as e:
        reg.class_labels("f")
    assert "f(data=...): batch 0 has labels f32[6]; class labels are integers" in str(e.value)


def test_read_all_concatenates():
    x, y = torch.randn(6, 3), [0, 1, 2, 0, 1, 2]
    got_x, got_y = read_all([(x[:4], y[:4]), (x[4:], y[4:])], "f")
    assert torch.equal(got_x, x) and got_y.tolist() == y


@pytest.mark.parametrize(
    "data, message",
    [
        (3.0, f"f(data=...): got 3.0 (float); expected {ACCEPTED}"),
        ("digits", f"f(data=...): got 'digits' (str); expected {ACCEPTED}"),
        (
            [torch.randn(2, 3), "oops"],
            "f(data=...): batch 1 is 'oops' (str); a batch is a tensor, a dict batch or an (inputs, labels) pair",
        ),
        (
            (torch.randn(4, 3), torch.randn(4)),
            "f(data=...): the labels of data are f32[4]; labels are integer class indices "
            "(a tensor of an integer dtype, or a list of ints)",
        ),
        (
            (torch.randn(4, 3), [0, 1, "a", 2]),
            "f(data=...): the labels of data are a list whose item 2 is 'a'; a list of labels holds ints",
        ),
        (
            (torch.randn(4, 3), [0, 1]),
            "f(data=...): data has 4 input rows but 2 labels (i64[2]); give one per row",
        ),
        (
            {"input_ids": torch.zeros(2, 3), "mask": [1, 2]},
            "f(data=...): data['mask'] is a list of 2 (1 (int), 2 (int)); every value of a dict batch is a "
            "tensor (it is passed as a keyword argument)",
        ),
        (
            {"a": torch.zeros(2, 3), "b": torch.zeros(3, 3)},
            "f(data=...): data has tensors with different numbers of rows: a=2, b=3",
        ),
        (
            [(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2))],
            "f(data=...): batch 0 is a tuple of 3 (f32[2,3], f32[2], f32[2]); a batch is a tensor, a dict "
            "batch or an (inputs, labels) pair",
        ),
        (
            ("x", torch.zeros(2)),
            "f(data=...): got a tuple of 2 ('x' (str), f32[2]); an (inputs, labels) pair starts with a tensor "
            "or a dict batch (a list of batches is a list, not a tuple)",
        ),
        (torch.tensor(1.0), "f(data=...): data is f32[], with no rows (dim 0)"),
    ],
    ids=[
        "float",
        "str",
        "item",
        "float-labels",
        "str-label",
        "count",
        "dict-value",
        "dict-rows",
        "triple",
        "pair",
        "0d",
    ],
)
def test_refusals_name_what_was_given(data, message):
    with pytest.raises(SpecError) as e:
        _read(data)
    assert str(e.value) == message


def test_read_all_refuses_dicts_and_partial_labels():
    with pytest.raises(SpecError) as e:
        read_all({"x": torch.zeros(2, 3)}, "f")
    assert str(e.value) == "f(data=...): batch 0 is a dict batch (keys ['x']); f needs one input tensor per batch"
    with pytest.raises(SpecError) as e:
        read_all([torch.zeros(2, 3), (torch.zeros(2, 3), [0, 1])], "f")
    assert "batch(es) [0] have no labels but other batches do" in str(e.value)
    with pytest.raises(SpecError) as e:
        read_all([], "f")
    assert str(e.value) == "f(data=...): the data gave no batches"
