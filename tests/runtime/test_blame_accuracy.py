"""Right blame on real architectures: a representative handful of the cases of
bench/blame_accuracy.py (models in bench/zoo.py, faults in
bench/blame_faults.py, regimes in bench/blame_regimes.py).

Each faulty case asserts that the report's root cause names the expected
party (the module that owns the faulty parameter, or the input data); each
clean case asserts that the report is OK. Only the public API is used.
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch
from blame_faults import FAULTS, INPUT_DATA, fault, observable
from blame_regimes import run_case
from zoo import BLAME_MODELS

HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None

# (regime, fault key): the fault is injected after one clean step (the steady state)
FAULTY = [
    ("train_after", "resnet_inplace:bn1.weight=nan"),  # loss.backward(); opt.step(); mon.step()
    ("train_after", "gpt_layerscale:blocks.1.mlp.0.weight=nan"),
    ("eval", "resnet_inplace:layer2.0.downsample.0.weight=nan"),  # the shortcut, before `out += identity`
    ("eval", "vit:encoder.layers.0.self_attention.in_proj_weight=nan"),  # used by MultiheadAttention.forward
    ("train_before", "torch_encoder:encoder.layers.0.self_attn.in_proj_weight=inf"),
    ("eval", "vit:encoder.pos_embedding=nan"),  # a parameter of `encoder`, used in its own forward
    ("eval", "gpt_layerscale:blocks.2.gamma=nan"),  # LayerScale: `x + gamma * mlp(ln(x))` in the block
    ("eval", "lstm_tagger:id=vocab_size"),  # the embedding raises IndexError
    ("backward", "lstm_tagger:lstm.weight_hh_l1=inf"),
    ("eval", "hf_bert:inputs_embeds=nan"),  # NaN in a keyword input
    ("train_before", "hf_bert:bert.encoder.layer.0.attention.self.query.weight=nan"),
]
CLEAN = [
    ("bf16_autocast", "resnet_inplace"),
    ("bf16_autocast", "gpt_layerscale"),
    ("eval", "lstm_tagger"),
    ("train_after", "lstm_tagger"),
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is fastest, and does not spin when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(threads)


def _needs(model: str) -> None:
    package = BLAME_MODELS[model].needs
    if package:
        pytest.importorskip(package, reason=f"{model} is built with {package} (pip install {package})")


@pytest.mark.parametrize(("regime", "key"), FAULTY, ids=[f"{r}-{k}" for r, k in FAULTY])
def test_root_cause_names_the_faulty_party(regime, key):
    f = fault(key)
    _needs(f.model)
    o = run_case(f.model, regime, f)
    blamed = "nothing (report OK)" if o.ok else f"{o.root_module} [blame: {o.blame}] ({o.blame_reason})"
    assert o.correct, f"expected {o.expected}, got {blamed}: {o.said}" + (f"; raised {o.raised}" if o.raised else "")


@pytest.mark.parametrize(("regime", "model"), CLEAN, ids=[f"{r}-{m}" for r, m in CLEAN])
def test_clean_run_is_ok(regime, model):
    _needs(model)
    o = run_case(model, regime, None)
    assert o.raised is None, o.raised
    assert o.ok, f"false alarm: {o.said}; blaming {o.blame} ({o.blame_reason})"


@pytest.mark.parametrize(
    "f", [f for f in FAULTS if BLAME_MODELS[f.model].needs is None or HAVE_TRANSFORMERS], ids=lambda f: f.key
)
def test_every_fault_shows_without_a_monitor(f):
    """The benchmark is fair: each fault names a real module and breaks the model's output (or raises)."""
    names = dict(BLAME_MODELS[f.model].build(0).named_modules())
    assert all(p in names for p in f.accepted if p != INPUT_DATA)
    assert observable(f)
