"""The port operator to ONNX: dim names and the interface in the file, every
mismatch listed, an onnxruntime session proven substitutable, bad files named."""

import copy
import subprocess
import sys

import pytest
import torch
from test_port_export import Masked, f32, hf_example, hf_interface  # what both port tests export
from torch import nn

import modpact as mp
from modpact.decomposition.port_onnx import check_onnx, export_onnx, load_onnx, onnx_problems
from modpact.decomposition.portdoc import require_extra
from modpact.decomposition.training import digits_modular
from modpact.errors import ExtraMissing, LoadError, PortError

onnx = pytest.importorskip("onnx", reason="the ONNX tests need modpact[export] (onnx, onnxruntime, onnxscript)")
pytest.importorskip("onnxruntime", reason="the ONNX tests need modpact[export]")
pytest.importorskip("onnxscript", reason="the ONNX tests need modpact[export]")


# outputs in another order than the module returns them: matched by name
MASKED = mp.Interface(
    "masked",
    {"x": f32("batch seq 8", range=(-1, 1)), "mask": f32("batch seq", range=(0, 1))},
    {"total": f32("batch"), "y": f32("batch seq 8")},
)
LIN = mp.Interface("lin", {"x": f32("batch 8")}, {"y": f32("batch 4")})


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def masked_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = Masked().eval()
    path = tmp_path_factory.mktemp("onnx") / "masked.onnx"
    port = export_onnx(model, MASKED, {"x": torch.randn(2, 3, 8), "mask": torch.ones(2, 3)}, path)
    return model, port


def test_the_file_carries_dim_names_and_the_interface(masked_onnx):
    _, port = masked_onnx
    model = onnx.load(str(port.path))
    assert {v.name: _dims(v) for v in model.graph.input} == {"x": ["batch", "seq", 8], "mask": ["batch", "seq"]}
    assert {v.name: _dims(v) for v in model.graph.output} == {"y": ["batch", "seq", 8], "total": ["batch"]}
    meta = {e.key: e.value for e in model.metadata_props}
    assert mp.Interface.from_dict(__import__("json").loads(meta["modpact.json"])["interface"]) == MASKED
    assert onnx_problems(port.path) == [] and check_onnx(port.path) == MASKED
    assert port.port.document.artifact == "torch.export"  # the program's own document, for Port.save


def test_onnxruntime_session_is_proven_substitutable(masked_onnx):
    model, port = masked_onnx
    ported = load_onnx(port.path, threads=1)
    x, mask = torch.rand(3, 5, 8) * 2 - 1, torch.ones(3, 5)
    out = ported(x, mask)
    assert set(out) == {"y", "total"} and out["y"].shape == (3, 5, 8)
    res = mp.check_substitutable(mp.guard(model, interface=MASKED), ported, tolerance=1e-5, max_examples=30, seed=0)
    assert res.ok and res.generated.examples == 30 and res.generated.max_abs_diff < 1e-5
    with pytest.raises(mp.InterfaceViolation, match="inputs.x: range expected values in"):
        ported(torch.full((2, 3, 8), 5.0), torch.ones(2, 3))


def test_every_mismatch_with_another_interface_is_listed(masked_onnx):
    _, port = masked_onnx
    other = mp.Interface(
        "other",
        {"x": f32("n 4 8"), "mask": mp.TensorSpec("n seq", dtype="bool"), "extra": f32("n")},
        {"y": f32("n seq")},
    )
    assert onnx_problems(port.path, other) == [
        "inputs.extra: in the interface, not in the graph",
        "inputs.x[0]: the interface says 'n', the graph 'batch'",
        "inputs.x[1]: the interface says 4, the graph 'seq'",
        "inputs.mask: dtype: the interface says bool, the graph float32",
        "inputs.mask[0]: the interface says 'n', the graph 'batch'",
        "outputs.total: in the graph, not in the interface",
        "outputs.y: the interface says shape 'n seq', the graph has rank 3",
    ]
    with pytest.raises(PortError) as e:
        check_onnx(port.path, other)
    assert str(e.value).startswith(f"check_onnx: {port.path} does not match interface 'other'\n  - inputs.extra")
    assert len(e.value.reasons) == 7


def test_a_derived_dim_is_named_in_the_graph(tmp_path):
    class Cat(nn.Module):
        def forward(self, a, b):
            return torch.cat([a, b], 0)

    iface = mp.Interface("cat", {"a": f32("n 2"), "b": f32("n+1 2")}, {"out": f32("2*n+1 2")})
    port = export_onnx(Cat(), iface, {"a": torch.randn(3, 2), "b": torch.randn(4, 2)}, tmp_path / "cat.onnx")
    model = onnx.load(str(port.path))
    assert _dims(model.graph.input[1]) == ["n + 1", 2] and _dims(model.graph.output[0]) == ["2*n + 1", 2]
    out = port.module()(torch.randn(2, 2), torch.randn(3, 2))
    assert out.shape == (5, 2)


def test_a_digits_stage_ports_to_onnxruntime(mlp, digits, tmp_path):
    mm = digits_modular(copy.deepcopy(mlp))
    hidden, iface = mm.module("hidden"), mm.nodes["hidden"].interface
    h = mm.module("encoder")(digits.x_test[:8]).detach()
    port = export_onnx(hidden, iface, h, tmp_path / "hidden.onnx")
    ported = load_onnx(port.path, threads=1)
    res = mp.check_substitutable(
        mp.guard(hidden, interface=iface),
        ported,
        tolerance=1e-5,
        data=mm.module("encoder")(digits.x_test).detach(),
        seed=0,
        max_examples=20,
    )
    assert res.ok and res.data.elements == len(digits.x_test) * 32
    assert res.data.agreeing_elements == res.data.elements


@pytest.mark.slow
def test_a_resnet_with_batchnorm_ports_within_tolerance(tmp_path):
    from zoo import SmallResNet

    torch.manual_seed(0)
    net = SmallResNet().eval()
    iface = mp.Interface("resnet", {"x": f32("batch 1 8 8", range=(0, 1))}, {"logits": f32("batch 10")})
    port = export_onnx(net, iface, torch.rand(4, 1, 8, 8), tmp_path / "resnet.onnx")
    res = mp.check_substitutable(
        mp.guard(net, interface=iface), load_onnx(port.path, threads=1), tolerance=1e-4, max_examples=20, seed=0
    )
    assert res.ok and res.generated.max_abs_diff < 1e-4


def test_foreign_and_corrupt_files_are_named(masked_onnx, tmp_path):
    _, port = masked_onnx
    missing = tmp_path / "missing.onnx"
    with pytest.raises(LoadError, match="no such file: .*missing.onnx"):
        load_onnx(missing)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07\x12\x99garbage" * 20)
    with pytest.raises(LoadError, match=r"junk.onnx: not an ONNX model \("):
        load_onnx(junk)
    text = tmp_path / "text.onnx"
    text.write_text("hello, not a model\n")
    with pytest.raises(LoadError, match=r"text.onnx: not (an|a valid) ONNX model"):
        onnx_problems(text, MASKED)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(port.path.read_bytes()[:300])
    with pytest.raises(LoadError, match=r"cut.onnx: not (an|a valid) ONNX model"):
        load_onnx(cut)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(port.path))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    with pytest.raises(LoadError) as e:
        load_onnx(foreign)
    assert (
        str(e.value) == f"{foreign}: an ONNX model without a modpact interface (no modpact.json in its metadata_props)"
    )
    ported = load_onnx(foreign, MASKED, threads=1)  # a foreign file with an interface given: checked, then run
    assert ported(torch.zeros(2, 3, 8), torch.ones(2, 3))["total"].tolist() == [3.0, 3.0]
    with pytest.raises(PortError, match="inputs.x\\[0\\]: the interface says 'n', the graph 'batch'"):
        load_onnx(
            foreign,
            mp.Interface("n", {"x": f32("n seq 8"), "mask": f32("n seq")}, {"y": f32("n seq 8"), "total": f32("n")}),
        )


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ExtraMissing) as e:
        require_extra("onnxruntime", "load_onnx")
    assert str(e.value) == 'load_onnx needs onnxruntime, which is not installed; run: pip install "modpact[export]"'
    assert isinstance(e.value, ImportError)
    with pytest.raises(ExtraMissing, match="load_onnx needs onnxruntime"):
        load_onnx("whatever.onnx")


def test_importing_modpact_imports_no_export_extra():
    extras = "('onnx', 'onnxruntime', 'onnxscript', 'safetensors', 'sympy')"
    code = f"import sys, modpact; print([m for m in {extras} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_gpt2_with_tied_weights_and_causal_attention_ports_within_tolerance(tmp_path):
    from zoo import hf_gpt2

    torch.manual_seed(0)
    model = hf_gpt2().eval()
    model.config.use_cache = False  # the cache is an opaque output: ports take tensors only
    iface, ex = hf_interface("gpt2", "batch seq 100"), hf_example()
    port = export_onnx(model, iface, ex, tmp_path / "gpt2.onnx", dims={"seq": (2, 32)})
    assert check_onnx(port.path, iface) == iface
    ported = load_onnx(port.path, threads=1)
    res = mp.check_substitutable(
        mp.guard(model, interface=iface), ported, tolerance=1e-4, max_examples=20, seed=0, raise_on_failure=False
    )
    mp.unguard(model)
    assert res.ok, res.failures
    assert 0 < res.generated.examples and res.generated.max_abs_diff < 1e-4
