"""Bounds on named dims (``Interface(dims=...)``), padding masks
(``TensorSpec(padding=...)``) and label ranges: declared, checked, generated,
serialized, exported and inferred (Hugging Face BERT from a tiny config)."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import modpact as mp
from modpact.errors import InterfaceViolation, SpecError
from modpact.interfaces import Interface, TensorSpec
from modpact.interfaces.strategies import MAX_SIDE

TOKENS = Interface(
    "tokens",
    inputs={
        "ids": TensorSpec("batch seq", dtype="int64", range=(0, 99)),
        "mask": TensorSpec("batch seq", dtype="int64", range=(0, 1), padding="right"),
    },
    outputs={"h": TensorSpec("batch seq 4", dtype="float32")},
    dims={"seq": (1, 512)},
)


# ---- dim bounds: declared --------------------------------------------------------------


@pytest.mark.parametrize(
    "dims, message",
    [
        (
            {"len": (1, 5)},
            "Interface('t', dims={'len': ...}): no named dim 'len' in the shapes (named dims: batch, seq)",
        ),
        (
            {"seq": 5},
            "Interface('t', dims={'seq': 5}): expected a (lo, hi) pair of sizes (ints >= 0, either may be None: "
            "unbounded)",
        ),
        (
            {"seq": (1, -2)},
            "Interface('t', dims={'seq': (1, -2)}): expected a (lo, hi) pair of sizes (ints >= 0, either may be "
            "None: unbounded)",
        ),
        ({"seq": (9, 3)}, "Interface('t', dims={'seq': (9, 3)}): lo=9 > hi=3"),
        ("seq", "Interface('t', dims='seq'): expected a dict of dim name -> (lo, hi)"),
    ],
    ids=["unknown-dim", "not-a-pair", "negative", "lo-above-hi", "not-a-dict"],
)
def test_bad_dim_bounds_are_refused_naming_the_problem(dims, message):
    with pytest.raises(SpecError) as info:
        Interface("t", {"x": TensorSpec("batch seq")}, {}, dims=dims)
    assert str(info.value) == message


def test_a_call_outside_the_bound_is_a_violation_naming_the_bound():
    ids = torch.zeros(2, 600, dtype=torch.long)
    mask = torch.ones(2, 600, dtype=torch.long)
    problems, _ = TOKENS.input_problems({"ids": ids, "mask": mask})
    assert [str(p) for p in problems] == [
        "inputs.ids[1]: dims expected dim seq in [1, 512] (the interface's dims bounds), got seq=600"
    ]
    assert TOKENS.input_problems({"ids": ids[:, :512], "mask": mask[:, :512]})[0] == []
    # an output binding a bounded dim first is checked on the outputs
    out = Interface("o", {}, {"y": TensorSpec("n")}, dims={"n": (None, 3)})
    assert [str(p) for p in out.output_problems(torch.zeros(4))[0]] == [
        "outputs.y[0]: dims expected dim n in [0, 3] (the interface's dims bounds), got n=4"
    ]


def test_guard_checks_the_bound():
    emb = torch.nn.Embedding(100, 4)
    iface = Interface(
        "emb",
        {"input": TensorSpec("batch seq", dtype="int64")},
        {"result": TensorSpec("batch seq 4")},
        dims={"seq": (1, 8)},
    )
    mp.guard(emb, interface=iface)
    try:
        emb(torch.zeros(2, 8, dtype=torch.long))
        with pytest.raises(InterfaceViolation) as info:
            emb(torch.zeros(2, 9, dtype=torch.long))
        assert "inputs.input[1]: dims expected dim seq in [1, 8] (the interface's dims bounds), got seq=9" in str(
            info.value
        )
    finally:
        mp.unguard(emb)


def test_bounds_round_trip_and_old_documents_load():
    again = Interface.from_json(TOKENS.to_json())
    assert again == TOKENS and again.dims == {"seq": (1, 512)}
    assert again.inputs["mask"].padding == "right"
    doc = TOKENS.to_dict()
    assert doc["format_version"] == "1" and doc["dims"] == {"seq": (1, 512)}
    # without bounds or padding the document is what it was before they existed
    plain = Interface("p", {"x": TensorSpec("batch 3", dtype="float32")}, {})
    assert "dims" not in plain.to_dict() and "padding" not in plain.to_dict()["inputs"]["x"]
    old = {
        "format_version": "1",
        "kind": "Interface",
        "name": "p",
        "inputs": {"x": {"shape": "batch seq", "dtype": "int64"}},
        "outputs": {},
    }
    loaded = Interface.from_dict(json.loads(json.dumps(old)))
    assert loaded.dims == {} and loaded.inputs["x"].padding is None
    with pytest.raises(SpecError) as info:
        Interface.from_dict({**old, "dims": {"len": [1, 4]}})
    assert "no named dim 'len' in the shapes" in str(info.value)


def test_substitute_must_accept_the_sizes_the_original_accepts():
    narrow = Interface("narrow", TOKENS.inputs, TOKENS.outputs, dims={"seq": (1, 128)})
    assert TOKENS.is_substitutable_for(narrow).ok
    compat = narrow.is_substitutable_for(TOKENS)
    assert not compat.ok
    assert "dims: narrow accepts seq in [1, 128], tokens accepts seq in [1, 512]" in compat.reasons


# ---- dim bounds: generation and export --------------------------------------------------------


@settings(max_examples=30)
@given(st.data())
def test_generated_sizes_lie_inside_the_bound_and_stay_small(data):
    x = data.draw(TOKENS.strategy())
    assert 1 <= x["ids"].shape[1] <= MAX_SIDE
    tight = Interface("t", TOKENS.inputs, TOKENS.outputs, dims={"seq": (7, 9)})
    y = data.draw(tight.strategy())
    assert 7 <= y["ids"].shape[1] <= 9


def test_generation_refuses_sizes_outside_the_bound():
    with pytest.raises(SpecError) as info:
        TOKENS.strategy(dims={"seq": 600}).example()
    assert str(info.value) == (
        "cannot generate dim 'seq': dims={'seq': 600} is outside the interface's dims bounds seq in [1, 512]"
    )


def test_export_takes_the_interface_bounds_by_default():
    from modpact.decomposition.port_shapes import plan_shapes

    example = {"ids": torch.zeros(2, 5, dtype=torch.long), "mask": torch.ones(2, 5, dtype=torch.long)}
    plan = plan_shapes(TOKENS, example)
    assert plan.bounds == {"batch": (1, None), "seq": (1, 512)}
    assert plan_shapes(TOKENS, example, {"seq": (2, 64)}).bounds["seq"] == (2, 64)
    with pytest.raises(SpecError) as info:
        plan_shapes(TOKENS, example, {"seq": (1, 600)})
    assert str(info.value) == (
        "dims={'seq': (1, 600)}: outside the interface's dims bounds for 'seq' [1, 512]; give bounds within them"
    )


# ---- padding masks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"padding": "end"},
            "TensorSpec(padding='end'): expected None or one of 'right', 'left' (a 0/1 mask padded at the end of "
            "each row, or at its start)",
        ),
        (
            {"padding": "right", "dtype": "float32"},
            "TensorSpec(padding='right', dtype='float32'): a padding mask needs an integer or bool dtype",
        ),
        (
            {"padding": "right", "dtype": "int64", "range": (2, 5)},
            "TensorSpec(padding='right', range=[2, 5]): a padding mask holds 0 and 1, which the range excludes",
        ),
    ],
    ids=["unknown", "float", "range"],
)
def test_bad_padding_is_refused(kw, message):
    with pytest.raises(SpecError) as info:
        TensorSpec("batch seq", **kw)
    assert str(info.value) == message


def test_a_mask_against_its_padding_is_named():
    spec = TOKENS.inputs["mask"]
    good = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert spec.check(good) == [] and bool(spec.value_ok(good))
    for bad in ([[1, 1, 0, 0], [0, 1, 1, 1]], [[1, 1, 0, 0], [0, 0, 0, 0]], [[1, 1, 0, 0], [1, 0, 1, 0]]):
        t = torch.tensor(bad)
        assert not bool(spec.value_ok(t))
        (p,) = spec.check(t, name="mask")
        assert str(p) == (
            "mask: padding expected right padding: each row (last dim) ones then zeros, with at least one 1, "
            f"got 1 of 2 failing (first at (1,) = {bad[1]})"
        )
    left = TensorSpec("batch seq", dtype="bool", padding="left")
    assert left.check(torch.tensor([[False, True, True]])) == []
    assert left.check(torch.tensor([[True, True, False]])) != []


@settings(max_examples=40)
@given(st.data())
def test_generated_masks_follow_the_padding(data):
    x = data.draw(TOKENS.strategy())
    assert TOKENS.input_problems(x)[0] == []
    rows = x["mask"]
    assert bool((rows[:, 0] == 1).all()) and bool((rows[:, 1:] <= rows[:, :-1]).all())
    left = Interface("l", {"m": TensorSpec("b s", dtype="bool", padding="left")}, {})
    m = data.draw(left.strategy())["m"]
    assert bool(m[:, -1].all()) and left.input_problems(m)[0] == []


def test_infer_detects_padding_only_when_every_mask_has_it():
    class Masked(torch.nn.Module):
        def forward(self, x, attention_mask):
            return x * attention_mask

    x = torch.ones(2, 4)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    iface = mp.infer_interface(Masked(), (x, right))
    assert iface.inputs["attention_mask"].padding == "right"
    assert (
        "inputs.attention_mask: right padding: every observed row (2; 1 with padding) is ones then zeros with "
        "at least one 1" in iface.description
    )
    mixed = mp.infer_interface(Masked(), (x, right), (x, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])))
    assert mixed.inputs["attention_mask"].padding is None and mixed.inputs["attention_mask"].range == (0, 1)
    left = mp.infer_interface(Masked(), (x, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])))
    assert left.inputs["attention_mask"].padding == "left"


# ---- a real model: Hugging Face BERT from a tiny config ------------------------------------------


def _bert_batches(g):
    out = []
    for b, s in ((4, 16), (3, 12)):
        mask = torch.ones(b, s, dtype=torch.long)
        mask[1, s // 2 :] = 0  # padded at the end
        out.append(
            {
                "input_ids": torch.randint(1, 100, (b, s), generator=g),
                "attention_mask": mask,
                "labels": torch.randint(0, 3, (b,), generator=g),
            }
        )
    return out


@pytest.mark.usefixtures("one_thread")
def test_bert_gets_bounds_padding_and_label_range_with_their_sources():
    pytest.importorskip("transformers")
    import zoo

    torch.manual_seed(0)
    m = zoo.hf_bert().eval()
    batches = _bert_batches(torch.Generator().manual_seed(0))
    iface = mp.infer_interface(m, *batches)
    assert iface.dims == {"d1": (1, 32)}
    assert iface.inputs["attention_mask"] == TensorSpec("batch d1", dtype="int64", range=(0, 1), padding="right")
    assert iface.inputs["labels"] == TensorSpec("batch", dtype="int64", range=(0, 2))
    desc = iface.description
    assert (
        "dims: d1 (inputs.input_ids[-1], the sequence) in [1, 32] from "
        "BertForSequenceClassification.config.max_position_embeddings=32 (longer sequences have no position "
        "embedding)" in desc
    )
    assert (
        "inputs.labels: class labels, range [0, 2] from the last dim of outputs.logits (3), = "
        "BertForSequenceClassification.config.num_labels" in desc
    )
    # generated examples: sequences within the bound, right-padded masks, valid labels; the real batches too
    res = mp.validate(m, iface, max_examples=25, seed=0, data=batches)
    assert res.data_examples == 2 and res.examples >= 25
    # a sequence beyond max_position_embeddings is a violation naming the bound, not a crash inside BERT
    mp.guard(m, interface=iface)
    try:
        with pytest.raises(InterfaceViolation) as info:
            ones = torch.ones(2, 40, dtype=torch.long)
            m(input_ids=ones, attention_mask=ones, labels=torch.tensor([0, 1]))
        assert "inputs.input_ids[1]: dims expected dim d1 in [1, 32] (the interface's dims bounds), got d1=40" in str(
            info.value
        )
        bad = batches[0]["attention_mask"].clone()
        bad[0, 0] = 0  # starts with padding: not right-padded
        with pytest.raises(InterfaceViolation) as info:
            m(input_ids=batches[0]["input_ids"], attention_mask=bad, labels=batches[0]["labels"])
        assert "inputs.attention_mask: padding expected right padding" in str(info.value)
    finally:
        mp.unguard(m)


def test_labels_outside_the_class_count_get_no_range_and_say_why():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x, labels=None):
            return {"logits": self.lin(x)}

    y = torch.tensor([0, 2, -100])  # an ignore index
    iface = mp.infer_interface(Head(), {"x": torch.randn(3, 4), "labels": y})
    assert iface.inputs["labels"].range is None
    assert (
        "inputs.labels: no range claimed: the examples hold labels outside [0, 2] (the last dim of outputs.logits "
        "(3)), such as an ignore index" in iface.description
    )
    ok = mp.infer_interface(Head(), {"x": torch.randn(3, 4), "labels": torch.tensor([0, 2, 1])})
    assert ok.inputs["labels"].range == (0, 2)


def test_the_monitor_records_a_broken_bound_and_a_broken_padding():
    from modpact.runtime import Monitor

    class Tok(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(100, 4)

        def forward(self, ids, mask):
            return self.emb(ids) * mask[..., None]

    model = Tok()
    mp.guard(model, interface=Interface("tokens", TOKENS.inputs, TOKENS.outputs, dims={"seq": (1, 8)}))
    try:
        mask = torch.ones(2, 9, dtype=torch.long)
        with torch.no_grad(), Monitor(model, mode="record", replay=False) as mon:
            model(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))  # clean
            mon.step()
            model(torch.zeros(2, 9, dtype=torch.long), mask)  # seq=9 > 8
            mon.step()
            model(torch.zeros(2, 4, dtype=torch.long), torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]]))  # left-padded
            mon.step()
        rep = mon.report()
        text = str(rep)
        assert rep.total == 2, text
        assert "dims expected dim seq in [1, 8] (the interface's dims bounds), got seq=9" in text
        # a device-side flag (no re-run with replay=False): the check and the tensor are named
        assert [(v.step, v.check, v.tensor, v.blame) for v in rep.violations] == [
            (1, "dims dim seq in [1, 8] (the interface's dims bounds)", "inputs.ids[1]", "the input data"),
            (2, "value domain range=[0, 1] padding=right", "inputs.mask", "the input data"),
        ]
    finally:
        mp.unguard(model)


def test_batched_validation_never_exceeds_a_bounded_batch_dim():
    """A forward of concatenated examples stays inside the batch dim's declared bound: the module
    is never called outside its own interface (it packed 248 rows for a bound of 4)."""
    seen = []

    class Rows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x):
            seen.append(x.shape[0])
            return self.lin(x)

    iface = Interface(
        "rows",
        {"x": TensorSpec("batch 4", dtype="float32")},
        {"y": TensorSpec("batch 2", dtype="float32")},
        dims={"batch": (1, 4)},
    )
    res = mp.validate(Rows(), iface, max_examples=30, seed=0)
    assert res.batched and res.examples > res.forwards  # still several examples per forward
    assert max(seen) <= 4
