"""Checkpoints carrying their interface (safetensors metadata): round trips,
refusals with every reason, bad files named."""

import copy
import json

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.decomposition.checkpoint import load_checkpoint, read_checkpoint_document, save_checkpoint
from modpact.decomposition.training import digits_modular
from modpact.errors import FormatVersionError, LoadError, PortError, SpecError

pytest.importorskip("safetensors", reason="the checkpoint tests need modpact[export] (safetensors)")
from safetensors.torch import save_file  # noqa: E402


def test_a_digits_stage_round_trips_with_its_interface_and_contracts(mlp, tmp_path, digits):
    mm = digits_modular(copy.deepcopy(mlp))
    hidden = mp.guard(mm.module("hidden"), interface=mm.nodes["hidden"].interface, ensures=[mp.finite("h")])
    path = save_checkpoint(hidden, tmp_path / "hidden.safetensors")
    fresh = digits_modular(copy.deepcopy(mlp)).module("hidden")
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    mp.guard(fresh, interface=mm.nodes["hidden"].interface)
    doc = load_checkpoint(fresh, path)
    assert doc.interface == mm.nodes["hidden"].interface
    assert [c.text for c in doc.ensures] == ["finite(h)"]
    x = mm.module("encoder")(digits.x_test[:16])
    torch.testing.assert_close(fresh(x), hidden(x), rtol=0, atol=0)


def test_tied_weights_and_buffers_round_trip(tmp_path):
    from zoo import SmallResNet, hf_gpt2

    torch.manual_seed(0)
    gpt = hf_gpt2().eval()
    iface = mp.Interface(
        "gpt", {"input_ids": mp.TensorSpec("batch seq", dtype="int64")}, {"logits": mp.TensorSpec("batch seq 100")}
    )
    path = save_checkpoint(gpt, tmp_path / "gpt.safetensors", interface=iface)
    other = hf_gpt2().eval()
    load_checkpoint(other, path, interface=iface)
    assert other.lm_head.weight.data_ptr() == other.transformer.wte.weight.data_ptr()  # still tied
    ids = torch.randint(0, 100, (2, 5))
    torch.testing.assert_close(other(ids).logits, gpt(ids).logits)
    net = SmallResNet()
    net.train()
    net(torch.randn(4, 1, 8, 8))  # running stats move away from their initial values
    rn = mp.Interface("resnet", {"x": mp.TensorSpec("batch 1 8 8")}, {"logits": mp.TensorSpec("batch 10")})
    p2 = save_checkpoint(net, tmp_path / "resnet.safetensors", interface=rn)
    copy_ = SmallResNet()
    load_checkpoint(copy_, p2, interface=rn)
    torch.testing.assert_close(copy_.stem[1].running_mean, net.stem[1].running_mean)


def test_loading_into_a_different_module_lists_every_reason_and_loads_nothing(tmp_path):
    iface = mp.Interface("lin", {"x": mp.TensorSpec("batch 8")}, {"y": mp.TensorSpec("batch 4")})
    path = save_checkpoint(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), tmp_path / "lin.safetensors", interface=iface)
    other_iface = mp.Interface("lin", {"x": mp.TensorSpec("batch 6", dtype="float32")}, {"z": mp.TensorSpec("batch 4")})
    other = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 4).double())
    before = other[0].weight.clone()
    with pytest.raises(PortError) as e:
        load_checkpoint(other, path, interface=other_iface)
    assert e.value.reasons == [
        "inputs.x: shape: the checkpoint says 'batch 8', the module 'batch 6'",
        "inputs.x: dtype: the checkpoint says 'any', the module 'float32'",
        "outputs.y: in the checkpoint's interface, not in the module's",
        "outputs.z: in the module's interface, not in the checkpoint's",
        "0.weight: shape in the checkpoint [4, 8], in the module [4, 6]",
        "2.weight: in the module (f64[4,4]), not in the checkpoint",
        "2.bias: in the module (f64[4]), not in the checkpoint",
    ]
    assert str(e.value).startswith(f"load_checkpoint: {path} does not fit Sequential\n  - inputs.x: shape")
    assert torch.equal(other[0].weight, before)


def test_dtype_differences_are_named(tmp_path):
    iface = mp.Interface("lin", {"x": mp.TensorSpec("batch 8")}, {"y": mp.TensorSpec("batch 4")})
    path = save_checkpoint(nn.Linear(8, 4), tmp_path / "lin.safetensors", interface=iface)
    with pytest.raises(PortError) as e:
        load_checkpoint(nn.Linear(8, 4).half(), path)
    assert e.value.reasons == [
        "weight: dtype in the checkpoint F32, in the module F16",
        "bias: dtype in the checkpoint F32, in the module F16",
    ]


def test_bad_files_are_named(tmp_path):
    with pytest.raises(LoadError, match="no such file: .*none.safetensors"):
        read_checkpoint_document(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(LoadError, match=r"junk.safetensors: not a safetensors file \("):
        load_checkpoint(nn.Linear(8, 4), junk)
    bare = tmp_path / "bare.safetensors"
    save_file({"weight": torch.zeros(4, 8), "bias": torch.zeros(4)}, str(bare))
    with pytest.raises(LoadError) as e:
        load_checkpoint(nn.Linear(8, 4), bare)
    assert str(e.value) == f"{bare}: a safetensors file without a modpact interface (no modpact.json in its metadata)"
    iface = mp.Interface("lin", {"x": mp.TensorSpec("batch 8")}, {"y": mp.TensorSpec("batch 4")})
    doc = json.loads(json.dumps(mp.decomposition.portdoc.document_for(nn.Linear(8, 4), iface, "checkpoint").to_dict()))
    doc["format_version"] = "7"
    future = tmp_path / "future.safetensors"
    save_file(
        {"weight": torch.zeros(4, 8), "bias": torch.zeros(4)}, str(future), metadata={"modpact.json": json.dumps(doc)}
    )
    with pytest.raises(FormatVersionError, match=f"{future}: modpact metadata: format_version '7' is not supported"):
        read_checkpoint_document(future)
    doc["format_version"] = "1"
    doc["artifact"] = "onnx"
    save_file({"weight": torch.zeros(4, 8)}, str(future), metadata={"modpact.json": json.dumps(doc)})
    with pytest.raises(SpecError, match="describes a 'onnx' artifact, not a 'checkpoint' one"):
        read_checkpoint_document(future)
    save_file({"weight": torch.zeros(4, 8)}, str(future), metadata={"modpact.json": "{not json"})
    with pytest.raises(SpecError, match=f"{future}: modpact metadata: not valid JSON"):
        read_checkpoint_document(future)
