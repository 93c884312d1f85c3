"""The port operator to ONNX: export with the interface's dim names as
``dim_param`` and the interface in the model's ``metadata_props``, check a
graph against an interface, and run it with onnxruntime as a module.

    export_onnx(module, interface, example, "stage.onnx")   # via mp.export: the same checks, then torch.onnx
    onnx_problems("stage.onnx", interface)                  # every mismatch of names, ranks, dims, dtypes
    stage = load_onnx("stage.onnx")                         # PortedModule over an InferenceSession
    mp.check_substitutable(original, stage, tolerance=1e-4) # the port, proven on generated inputs

Needs ``modpact[export]`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from modpact.errors import LoadError, PortError, SpecError
from modpact.interfaces import Interface, TensorSpec
from modpact.interfaces.dtypes import describe_dtype

from .port import Port, export
from .port_shapes import linear_form, positions
from .portdoc import DOCUMENT_KEY, PortDocument, document_for, read_document, require_extra
from .ported import PortedModule, ported_module

__all__ = ["OnnxPort", "export_onnx", "onnx_problems", "check_onnx", "load_onnx", "ONNX_DTYPES"]

# onnx TensorProto element types -> torch dtypes
ONNX_DTYPES: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    4: torch.uint16,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    12: torch.uint32,
    13: torch.uint64,
    14: torch.complex64,
    15: torch.complex128,
    16: torch.bfloat16,
}


@dataclass
class OnnxPort:
    """An ONNX file written by ``export_onnx``, with what made it."""

    path: Path
    port: Port  # the torch.export program it was made from (checked against the interface)
    seconds: float  # time torch.onnx.export took (the torch.export before it: port.seconds)
    notes: list[str] = field(default_factory=list)

    @property
    def interface(self) -> Interface:
        return self.port.interface

    def module(self, threads: int | None = None) -> PortedModule:
        return load_onnx(self.path, threads=threads)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.onnx prints progress and warns about what it renames: keep the user's output clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _output_kind(program: Any) -> str:
    spec = program.call_spec.out_spec
    if spec.is_leaf():
        return "tensor"
    return "tuple" if spec.type in (tuple, list) else "dict"


def _output_order(program: Any, interface: Interface) -> list[str]:
    """The interface's output names in the order the program flattens its outputs."""
    spec = program.call_spec.out_spec
    n = spec.num_leaves
    shaped = pytree.tree_unflatten(list(range(n)), spec)
    names = list(interface.outputs)
    if isinstance(shaped, int):
        return names[:1]
    if isinstance(shaped, (tuple, list)):
        return [names[i] if i < len(names) else f"output{i}" for i in range(n)]
    order = {i: k for k, i in dict(shaped).items() if isinstance(i, int)}
    return [order.get(i, f"output{i}") for i in range(n)]


def export_onnx(
    module: nn.Module,
    interface: Interface | None = None,
    example: Any = None,
    path: str | Path = "module.onnx",
    *,
    dims: Mapping[str, Any] | None = None,
    opset: int | None = None,
) -> OnnxPort:
    """Export ``module`` to ONNX at ``path``: first ``mp.export`` (the
    interface's dynamic shapes, ``PortError`` for every contradiction), then
    ``torch.onnx.export`` of that program with the interface's input and
    output names, the dims' names as ``dim_param``, and the document in the
    model's ``metadata_props`` (key ``modpact.json``). The written file is
    checked with ``onnx_problems``: ``PortError`` lists every mismatch."""
    require_extra("onnx", "export_onnx")
    require_extra("onnxscript", "export_onnx (torch.onnx's exporter)")
    import onnx

    # ONNX names each graph input and output: an interface of tensors only (export itself takes nested ones)
    document_for(module, interface, "onnx").interface.tensor_specs("export_onnx")
    port = export(module, interface, example, dims=dims)
    # the ONNX file's own document; port.document stays the program's (Port.save writes it)
    doc = dataclasses.replace(port.document, artifact="onnx", extra=dict(port.document.extra))
    program = port.program
    args = doc.extra["arguments"]
    by_arg = {a: k for k, a in args.items()}
    _, kw_spec = pytree.tree_unflatten(list(range(len(program.graph_signature.user_inputs))), program.call_spec.in_spec)
    input_names = [by_arg[a] for a in kw_spec]
    order = _output_order(program, doc.interface)
    # ONNX names each value once: an output named like an input (a stage's h -> h) gets a name of its own
    renamed = {k: f"{k}.out" for k in order if k in input_names}
    output_names = [renamed.get(k, k) for k in order]
    doc.extra["outputs"] = _output_kind(program)
    doc.extra["graph_outputs"] = renamed
    p = Path(path)
    t0 = time.perf_counter()
    try:
        with _quiet():
            onnx_program = torch.onnx.export(
                program,
                (),
                kwargs=None,
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                dynamo=True,
                external_data=False,
            )
    except Exception as e:  # the exporter's own failure: say which step failed
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise PortError(f"export_onnx: torch.onnx.export failed on {type(module).__name__}: {first}") from None
    seconds = time.perf_counter() - t0
    assert onnx_program is not None  # dynamo=True always returns the program
    model = onnx_program.model_proto
    _rename_dims(model, _symbol_names(port))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = DOCUMENT_KEY, doc.to_json()
    try:
        onnx.save_model(model, str(p))
    except OSError as e:
        raise LoadError(f"cannot write {p}: {e.strerror or e}") from None
    problems = onnx_problems(p, doc.interface)
    if problems:
        raise PortError(f"export_onnx: {p} contradicts interface {doc.interface.name!r}", problems)
    return OnnxPort(p, port, seconds, notes=list(port.notes))


def _symbol_names(port: Port) -> dict[str, str]:
    """The program's size symbols (``s31``) -> the interface's dim names, from the inputs."""
    from .port import input_exprs

    exprs = input_exprs(port.program, port.document.extra["arguments"])
    out: dict[str, str] = {}
    for (tname, axis), d in port.plan.meaning.items():
        e = exprs.get((tname, axis))
        if e is None or e.is_number or len(e.free_symbols) != 1:
            continue
        sym = str(next(iter(e.free_symbols)))
        if d.kind == "named":
            out.setdefault(sym, str(d.name) if not d.variadic else f"{d.name}_{_variadic_index(port, tname, axis)}")
        elif d.kind == "expr" and (lin := linear_form(str(d.name))) is not None:
            out.setdefault(sym, lin[0])
    return out


def _variadic_index(port: Port, tname: str, axis: int) -> int:
    spec = port.interface.tensor_specs("export_onnx")[0][tname]
    before, _, _ = spec.shape.split()
    return axis - len(before)


def _rename_dims(model: Any, names: Mapping[str, str]) -> None:
    """Every ``dim_param`` of the graph's inputs, outputs and values in the interface's names
    (``s31`` -> ``batch``, ``2*s77 + 1`` -> ``2*n + 1``)."""
    if not names:
        return
    import sympy  # imported when used: it takes a second to import

    subs = {sympy.Symbol(k): sympy.Symbol(v) for k, v in names.items()}
    cache: dict[str, str] = {}

    def renamed(text: str) -> str:
        if text not in cache:
            if text in names:
                cache[text] = names[text]
            else:
                try:
                    e = sympy.sympify(text, locals={k: sympy.Symbol(k) for k in names})
                    cache[text] = str(e.xreplace(subs)) if e.free_symbols & set(subs) else text
                except (sympy.SympifyError, TypeError, SyntaxError):
                    cache[text] = text
        return cache[text]

    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            for d in value.type.tensor_type.shape.dim:
                if d.HasField("dim_param"):
                    d.dim_param = renamed(d.dim_param)


def _read_model(path: str | Path) -> Any:
    require_extra("onnx", "reading an ONNX file")
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {p}" if not p.exists() else f"{p} is not a file")
    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise LoadError(f"{p}: not an ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not model.graph.node and not model.graph.output:
        raise LoadError(f"{p}: not an ONNX model (no graph in it)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise LoadError(f"{p}: not a valid ONNX model ({str(e).strip().splitlines()[0][:200]})") from None
    return model


def _document(model: Any, p: Path) -> PortDocument:
    meta = {e.key: e.value for e in model.metadata_props}
    if DOCUMENT_KEY not in meta:
        raise LoadError(f"{p}: an ONNX model without a modpact interface (no {DOCUMENT_KEY} in its metadata_props)")
    return read_document(meta[DOCUMENT_KEY], str(p), "onnx")


def onnx_problems(path: str | Path, interface: Interface | None = None) -> list[str]:
    """Every mismatch between the ONNX graph's inputs and outputs and
    ``interface`` (default: the one in the file's metadata): missing or
    unexpected names, ranks, fixed sizes, dim names (``dim_param``) and
    dtypes. An empty list: the graph's signature is the interface's."""
    p = Path(path)
    model = _read_model(p)
    doc = _document(model, p) if _has_document(model) else None
    if interface is None and doc is None:
        _document(model, p)  # raises: nothing to compare with
    iface = interface if interface is not None else doc.interface  # type: ignore[union-attr]  # checked above
    renamed = _graph_outputs(doc)
    out: list[str] = []
    ins, outs = iface.tensor_specs("check_onnx")
    for side, values, specs in (
        ("inputs", _graph_inputs(model), ins),
        ("outputs", list(model.graph.output), outs),
    ):
        back = {v: k for k, v in renamed.items()} if side == "outputs" else {}
        got = {back.get(v.name, v.name): v for v in values}
        out += [f"{side}.{k}: in the interface, not in the graph" for k in specs if k not in got]
        out += [f"{side}.{k}: in the graph, not in the interface" for k in got if k not in specs]
        for k, spec in specs.items():
            if k in got:
                out += _value_problems(f"{side}.{k}", got[k], spec)
    return out


def _has_document(model: Any) -> bool:
    return any(e.key == DOCUMENT_KEY for e in model.metadata_props)


def _graph_outputs(doc: PortDocument | None) -> dict[str, str]:
    """Interface output name -> the graph's, where export_onnx had to rename one."""
    names = doc.extra.get("graph_outputs", {}) if doc is not None else {}
    return (
        {k: v for k, v in names.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(names, dict) else {}
    )


def _graph_inputs(model: Any) -> list[Any]:
    inits = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def _value_problems(where: str, value: Any, spec: TensorSpec) -> list[str]:
    tt = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if tt is None:
        return [f"{where}: the graph's value is not a tensor"]
    out = []
    dt = ONNX_DTYPES.get(tt.elem_type)
    if dt is None or dt not in spec.allowed:
        shown = str(dt).replace("torch.", "") if dt is not None else f"ONNX element type {tt.elem_type}"
        out.append(f"{where}: dtype: the interface says {describe_dtype(spec.dtype)}, the graph {shown}")
    if not tt.HasField("shape"):
        return out + [f"{where}: the graph gives no shape (the interface says '{spec.shape}')"]
    dims = list(tt.shape.dim)
    pos = positions(spec.shape, len(dims))
    if pos is None:
        return out + [f"{where}: the interface says shape '{spec.shape}', the graph has rank {len(dims)}"]
    for axis, d, j in pos:
        g = dims[axis]
        got = g.dim_param if g.HasField("dim_param") else g.dim_value if g.HasField("dim_value") else None
        want: Any = None
        if d.kind == "fixed":
            want = d.size
        elif d.kind == "named":
            want = d.name if not d.variadic else f"{d.name}_{j}"
        elif d.kind == "expr" and linear_form(str(d.name)) is not None:
            want = str(d.name)
        if want is None:
            continue  # anonymous dims (and expressions torch.export cannot relate) take any size or name
        if isinstance(want, str) and isinstance(got, str) and _same_expr(want, got):
            continue
        if got != want:
            shown = "unnamed" if got is None or got == "" else repr(got)
            out.append(f"{where}[{axis}]: the interface says {want!r}, the graph {shown}")
    return out


def _same_expr(a: str, b: str) -> bool:
    if a == b:
        return True
    import sympy  # imported when used: it takes a second to import

    try:
        return bool(sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0)
    except (sympy.SympifyError, TypeError, SyntaxError):
        return False


def check_onnx(path: str | Path, interface: Interface | None = None) -> Interface:
    """``onnx_problems``, raising ``PortError`` with every mismatch; returns the interface checked."""
    problems = onnx_problems(path, interface)
    p = Path(path)
    iface = interface if interface is not None else _document(_read_model(p), p).interface
    if problems:
        raise PortError(f"check_onnx: {p} does not match interface {iface.name!r}", problems)
    return iface


def load_onnx(path: str | Path, interface: Interface | None = None, *, threads: int | None = None) -> PortedModule:
    """An onnxruntime ``InferenceSession`` (CPU) as a ``PortedModule``: inputs
    by the interface's names, torch tensors in and out, the outputs in the
    structure the original module returned (one tensor, a tuple, or a dict),
    the interface and the contracts that travelled checked on every call.
    The graph is checked against the interface first (``PortError``)."""
    require_extra("onnxruntime", "load_onnx")
    import onnxruntime as ort

    p = Path(path)
    model = _read_model(p)
    doc = _document(model, p) if interface is None else _doc_or_bare(model, p, interface)
    check_onnx(p, doc.interface)
    opts = ort.SessionOptions()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise SpecError(f"load_onnx(threads={threads!r}): expected a positive int")
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors (an operator it lacks): name the file
        raise LoadError(f"{p}: onnxruntime cannot run it ({str(e).strip().splitlines()[0][:200]})") from None
    out_names = [o.name for o in session.get_outputs()]
    back = {v: k for k, v in _graph_outputs(doc).items()}
    names = [back.get(n, n) for n in out_names]
    kind = doc.extra.get("outputs", "tensor" if len(out_names) == 1 else "dict")

    def run(**inputs: torch.Tensor) -> Any:
        feed = {}
        for k, t in inputs.items():
            if t.dtype == torch.bfloat16:
                raise SpecError(f"{p}: inputs.{k} is bfloat16, which onnxruntime's numpy interface cannot pass")
            feed[k] = t.detach().cpu().contiguous().numpy()
        results = [torch.from_numpy(r) for r in session.run(out_names, feed)]
        if kind == "tensor":
            return results[0]
        if kind == "tuple":
            return tuple(results)
        return dict(zip(names, results))

    return ported_module(run, doc, str(p))


def _doc_or_bare(model: Any, p: Path, interface: Interface) -> PortDocument:
    """The file's document with ``interface`` in place of its interface, or a
    bare one for a foreign file that carries none."""
    if _has_document(model):
        doc = _document(model, p)
        doc.interface = interface
        return doc
    return PortDocument("onnx", interface)
