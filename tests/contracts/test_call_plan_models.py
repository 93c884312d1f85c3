"""A guard's compiled plan on real modules: nn.MultiheadAttention called with
keywords and positionally, the MLPs inside a Hugging Face GPT-2 (tiny random
config), and an LSTM with state (nested output: no plan, the full check).
Each case runs twice, with the plan and with ``plan = None``, and must give
the same outcome and message."""

import copy
import math

import pytest
import torch
import zoo
from torch import nn

import modpact.contracts as mc
from modpact.errors import ContractViolation
from modpact.interfaces import Interface, TensorSpec, TupleSpec

MHA = Interface(
    "mha",
    inputs={"query": TensorSpec("b t 16"), "key": TensorSpec("b s 16"), "value": TensorSpec("b s 16")},
    outputs={"attn": TensorSpec("b t 16"), "weights": TensorSpec("b t s")},
)


def _both(make):
    """The same guarded module with its plan and without (the full check on every call)."""
    fast, full = make(), make()
    for m in (fast, full):
        for sub in m.modules():
            g = mc.get_guard(sub)
            if g is not None and m is full:
                g.plan = None
    return fast, full


def _outcome(f, *args):
    try:
        out = f(*args)
    except (ContractViolation, RuntimeError) as e:  # a RuntimeError: the module's own, past the guard
        return type(e).__name__, str(e)
    return "ok", tuple(out.shape) if isinstance(out, torch.Tensor) else len(out)


def _mha():
    torch.manual_seed(0)
    return mc.guard(nn.MultiheadAttention(16, 2, batch_first=True), interface=MHA, ensures=[mc.finite("attn")])


@pytest.mark.parametrize(
    "q, k, v",
    [
        (torch.randn(2, 3, 16), torch.randn(2, 5, 16), torch.randn(2, 5, 16)),
        (torch.randn(2, 3, 16), torch.randn(2, 5, 16), torch.randn(2, 4, 16)),  # s differs: the caller's fault
        (torch.randn(2, 3, 16), torch.randn(3, 5, 16), torch.randn(3, 5, 16)),  # b differs
        (torch.randn(2, 3, 16).double(), torch.randn(2, 5, 16), torch.randn(2, 5, 16)),  # fits the spec, not MHA
        (torch.full((2, 3, 16), math.nan), torch.randn(2, 5, 16), torch.randn(2, 5, 16)),  # NaN out: the module's
    ],
    ids=["fits", "s", "b", "dtype", "nan"],
)
def test_multihead_attention_with_keywords_and_positions(q, k, v):
    fast, full = _both(_mha)
    assert mc.get_guard(fast).plan is not None
    for call in (lambda m: m(q, k, v), lambda m: m(query=q, key=k, value=v), lambda m: m(q, k, value=v)):
        assert _outcome(call, fast) == _outcome(call, full)


def _gpt2():
    torch.manual_seed(0)
    model = zoo.hf_gpt2().eval()
    for block in model.transformer.h:
        mc.guard(
            block.mlp,
            interface=Interface("mlp", inputs={"h": TensorSpec("b t 32")}, outputs={"y": TensorSpec("b t 32")}),
            ensures=[mc.finite("y")],
        )
    return model


@pytest.mark.slow  # importing transformers and building two models: ~40 s on the shared 2-core VM
def test_gpt2_mlps_agree_clean_and_with_a_nan_weight():
    fast, full = _both(_gpt2)
    assert all(mc.get_guard(b.mlp).plan is not None for b in fast.transformer.h)
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        assert (
            _outcome(lambda: fast(input_ids=ids).logits)
            == _outcome(lambda: full(input_ids=ids).logits)
            == (
                "ok",
                (2, 7, 100),
            )
        )
        for m in (fast, full):
            m.transformer.h[1].mlp.c_proj.weight[0, 0] = math.nan
        a, b = _outcome(lambda: fast(input_ids=ids).logits), _outcome(lambda: full(input_ids=ids).logits)
    assert a == b
    assert a[0] == "PostconditionViolation" and "finite(y)" in a[1], a


def test_an_lstm_with_state_has_no_plan_and_keeps_the_full_check():
    iface = Interface(
        "lstm",
        inputs={"x": TensorSpec("b t 8")},
        outputs={"out": TensorSpec("b t 16"), "state": TupleSpec([TensorSpec("1 b 16"), TensorSpec("1 b 16")])},
    )
    m = mc.guard(nn.LSTM(8, 16, batch_first=True), interface=iface)
    assert mc.get_guard(m).plan is None
    out, (h, c) = m(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 16)
    with pytest.raises(mc.InterfaceViolation, match="inputs.x"):
        m(torch.randn(2, 5, 9))
    assert copy.deepcopy(m)(torch.randn(2, 5, 8))[0].shape == (2, 5, 16)
