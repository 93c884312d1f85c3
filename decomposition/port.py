"""The port operator with torch.export: export a module with the dynamic
shapes its interface gives, check the program against the interface, store
the interface and contracts with the program, load it back behind them.

    port = export(module, interface, example)      # PortError listing every contradiction
    port.save("stage.pt2")                         # torch.export.save, the document as an extra file
    stage = load_exported("stage.pt2")             # PortedModule: checks the interface on every call

Contradictions are found in two places and reported together: before
exporting (the example against the interface; a dynamic dim given as 0 or 1,
which torch.export would specialize) and in the program (each dim the graph
specializes or equates against the interface's word, found by exporting again
with ``Dim.AUTO``; each output's rank, dims and dtype against the output specs).
"""

from __future__ import annotations

import inspect
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from modpact.contracts import disabled
from modpact.errors import LoadError, PortError, SpecError
from modpact.interfaces import Interface
from modpact.interfaces.nested import DictSpec, ListSpec, TupleSpec, leaf_values
from modpact.interfaces.summary import describe

from .port_shapes import ShapePlan, leaf_specs, linear_form, plan_shapes, positions
from .portdoc import DOCUMENT_KEY, PortDocument, document_for, read_document
from .ported import PortedModule, ported_module
from .pt2_safety import unsafe_entries

__all__ = ["Port", "export", "load_exported", "program_problems", "named_example", "arguments", "input_exprs"]


@dataclass
class Port:
    """An exported program with the document that travels with it."""

    program: Any  # torch.export.ExportedProgram
    document: PortDocument
    plan: ShapePlan
    seconds: float  # time torch.export took
    notes: list[str] = field(default_factory=list)

    @property
    def interface(self) -> Interface:
        return self.document.interface

    def save(self, path: str | Path) -> Path:
        """``torch.export.save`` with the document as the extra file ``modpact.json``."""
        p = Path(path)
        try:
            torch.export.save(self.program, p, extra_files={DOCUMENT_KEY: self.document.to_json()})
        except OSError as e:
            raise LoadError(f"cannot write {p}: {e.strerror or e}") from None
        return p

    def module(self) -> PortedModule:
        """The program behind its interface and contracts (checked on every call)."""
        return _ported(self.program, self.document, "torch.export program")


def named_example(module: Any, interface: Interface, example: Any) -> dict[str, torch.Tensor]:
    """The example as ``{input name: tensor}``: a dict, a tuple in the interface's order, or one tensor."""
    names = list(interface.inputs)
    if isinstance(example, Mapping):
        return dict(example)
    if isinstance(example, (tuple, list)):
        if len(example) != len(names):
            raise SpecError(f"export: example has {len(example)} tensors; interface {interface.name!r} has {names}")
        return dict(zip(names, example))
    if isinstance(example, torch.Tensor) and len(names) == 1:
        return {names[0]: example}
    raise SpecError(
        f"export: example is {describe(example)}; expected a dict of the inputs {names}, a tuple, or one tensor"
    )


def arguments(module: nn.Module, interface: Interface) -> dict[str, str]:
    """Interface input name -> ``module.forward``'s parameter, as guards bind
    them: by name when every input names a parameter, else by position."""
    names = list(interface.inputs)
    try:
        params = [
            p
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError) as e:
        raise SpecError(f"export: cannot read the signature of {type(module).__name__}.forward: {e}") from None
    pnames = [p.name for p in params]
    if all(n in pnames for n in names):
        return {n: n for n in names}
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) <= len(positional):
        return dict(zip(names, positional))
    raise PortError(
        f"export: interface {interface.name!r} declares inputs {', '.join(names)} but "
        f"{type(module).__name__}.forward takes ({', '.join(pnames)}): neither names nor positions match"
    )


def export(
    module: nn.Module,
    interface: Interface | None = None,
    example: Any = None,
    *,
    dims: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Port:
    """Export ``module`` with ``torch.export.export`` (inputs as keyword
    arguments named after the interface), the dynamic shapes its interface
    gives (``port_shapes``), and check the program against the interface.

    ``interface`` defaults to the module's guard's; its conditions that can be
    serialized travel with it. ``dims``: ``{name: (min, max)}`` bounds of named
    dims. Raises ``PortError`` listing every contradiction (a dim the graph
    specializes or equates, an output's rank, dim or dtype), ``SpecError`` for
    bad arguments.
    """
    if not isinstance(module, nn.Module):
        raise SpecError(f"export: expected an nn.Module, got {describe(module)}")
    doc = document_for(module, interface, "torch.export")
    iface = doc.interface
    leaf_specs(iface, "export")  # an optional or opaque part is refused here, by this call's name
    if example is None:
        raise SpecError(f"export: give an example of the inputs of {iface.name!r} ({', '.join(iface.inputs)})")
    named = named_example(module, iface, example)
    reasons = [str(p) for p in iface.input_problems(named, values_too=False)[0]]
    if reasons:
        raise PortError(f"export: the example does not fit interface {iface.name!r}", reasons)
    args = arguments(module, iface)
    plan = plan_shapes(iface, named, dims)
    if plan.problems:
        raise PortError(f"export: cannot export {iface.name!r} with its dynamic dims", plan.problems)
    kwargs = {args[k]: v for k, v in named.items()}
    shapes = {args[k]: v for k, v in plan.nested(iface).items()}
    was_training = module.training
    t0 = time.perf_counter()
    try:
        with disabled():  # a guard's hooks check eagerly: the program is the module's own computation
            program = torch.export.export(module, (), kwargs=kwargs, dynamic_shapes=shapes, strict=strict)
    except torch._dynamo.exc.UserError as e:
        found, auto = _specializations(module, iface, kwargs, args, plan, strict)
        if auto is not None:
            found += program_problems(auto, iface, plan, args)
        raise PortError(
            f"export: the graph of {type(module).__name__} contradicts interface {iface.name!r}",
            found or _torch_reasons(e),
        ) from None
    except Exception as e:  # anything else torch.export cannot trace: say so, keep its traceback as the cause
        lines = str(e).strip().splitlines()
        raise PortError(
            f"export: torch.export cannot export {type(module).__name__}",
            [f"{type(e).__name__}: {lines[0][:300] if lines else ''}"],
        ) from e
    finally:
        module.train(was_training)
    seconds = time.perf_counter() - t0
    problems = program_problems(program, iface, plan, args)
    if problems:
        raise PortError(
            f"export: the program of {type(module).__name__} contradicts interface {iface.name!r}", problems
        )
    doc.extra["dims"] = {k: list(v) for k, v in plan.bounds.items()}
    doc.extra["arguments"] = args
    return Port(program, doc, plan, seconds, notes=list(plan.notes))


def _torch_reasons(e: Exception) -> list[str]:
    """torch.export's own reasons (its ``- ...`` lines and suggested fixes), when the
    diagnosis found none of its own: a range the graph needs (``seq <= 32``)."""
    lines = [ln.strip() for ln in str(e).splitlines()]
    out = [f"torch.export: {ln[2:]}" for ln in lines if ln.startswith("- ")]
    if "Suggested fixes:" in lines:
        fixes = lines[lines.index("Suggested fixes:") + 1 :]
        out += [f"torch.export suggests: {ln}" for ln in fixes if ln and not ln.startswith("The error above")][:5]
    return out or [f"torch.export: {lines[0] if lines else type(e).__name__}"]


def _specializations(
    module: nn.Module, iface: Interface, kwargs: dict[str, Any], args: dict[str, str], plan: ShapePlan, strict: bool
) -> tuple[list[str], Any]:
    """Every dim the graph specializes, or ties to another the interface leaves free,
    found by exporting with ``Dim.AUTO`` where the plan has Dims; and that program."""
    auto = {args[k]: v for k, v in plan.nested(iface, plan.with_auto()).items()}
    try:
        with disabled():
            program = torch.export.export(module, (), kwargs=kwargs, dynamic_shapes=auto, strict=strict)
    except Exception:  # the diagnosis is best effort: the caller reports the first error instead
        return [], None
    exprs = input_exprs(program, args)
    out = []
    seen: dict[Any, tuple[str, Any]] = {}
    for (tname, axis), d in plan.meaning.items():
        e = exprs.get((tname, axis))
        if e is None:
            continue
        where = f"inputs.{tname}[{axis}]"
        if e.is_number:
            out.append(f"{where}: the interface says '{d}' (a dynamic dim) but the graph specializes it to {e}")
            continue
        if e in seen and _differ(seen[e][1], d):
            out.append(
                f"{where}: the interface says '{d}' but the graph requires it to equal {seen[e][0]} ('{seen[e][1]}')"
            )
        seen.setdefault(e, (where, d))
    return out, program


def _differ(a: Any, b: Any) -> bool:
    """Two interface dims that the interface does not declare equal."""
    return not (a.kind == b.kind == "named" and a.name == b.name and a.variadic == b.variadic)


def _user_placeholders(program: Any) -> list[Any]:
    user = set(program.graph_signature.user_inputs)
    return [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]


def input_exprs(program: Any, args: dict[str, str]) -> dict[tuple[str, int], Any]:
    """(interface input leaf path, axis) -> the sympy expression of its size in the program;
    a tuple, list or dict input's tensors by their paths (``hx[0]``, ``batch.ids``)."""
    _, kw = pytree.tree_unflatten([n.meta.get("val") for n in _user_placeholders(program)], program.call_spec.in_spec)
    by_arg = {a: k for k, a in args.items()}
    out = {}
    for path, val in _tensor_paths(((by_arg.get(arg, arg), v) for arg, v in (kw or {}).items())):
        for axis, s in enumerate(val.shape):
            out[(path, axis)] = _expr(s)
    return out


def _tensor_paths(items: Any) -> list[tuple[str, torch.Tensor]]:
    """(path, tensor) inside (name, value) pairs, named as ``interfaces.nested.leaves`` names them."""
    out: list[tuple[str, torch.Tensor]] = []
    stack = list(reversed(list(items)))
    while stack:
        path, v = stack.pop()
        if isinstance(v, torch.Tensor):
            out.append((path, v))
        elif isinstance(v, (tuple, list)):
            stack += [(f"{path}[{i}]", x) for i, x in reversed(list(enumerate(v)))]
        elif isinstance(v, Mapping):
            stack += [(f"{path}.{k}", x) for k, x in reversed(list(v.items()))]
    return out


def _expr(s: Any) -> Any:
    import sympy  # imported when used: it takes a second to import

    return s.node.expr if isinstance(s, torch.SymInt) else sympy.Integer(int(s))


def program_problems(program: Any, interface: Interface, plan: ShapePlan, args: dict[str, str]) -> list[str]:
    """Contradictions between an exported program's outputs and the interface's
    output specs: names, ranks, dims (as the graph computes them from the input
    dims) and dtypes."""
    import sympy  # imported when used: it takes a second to import

    env: dict[str, Any] = {}  # interface dim name -> sympy expression in the program
    exprs = input_exprs(program, args)
    for (tname, axis), d in plan.meaning.items():
        e = exprs.get((tname, axis))
        if e is not None and d.kind == "named" and not d.variadic:
            env.setdefault(str(d.name), e)
        elif e is not None and d.kind == "expr" and (lin := linear_form(str(d.name))) is not None:
            root, a, b = lin
            env.setdefault(root, sympy.simplify((e - b) / a))
    ins, outs = leaf_specs(interface, "export")
    for tname, spec in ins.items():  # constants (fixed by the graph or a label space) bind too
        for axis, d, _ in positions(spec.shape, _rank(exprs, tname)) or []:
            if d.kind == "named" and not d.variadic and (tname, axis) in exprs:
                env.setdefault(str(d.name), exprs[(tname, axis)])
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    vals = [a.meta.get("val") if isinstance(a, torch.fx.Node) else a for a in out_node.args[0]]
    user_out = vals[len(vals) - len(program.graph_signature.user_outputs) :]
    result = pytree.tree_unflatten(user_out, program.call_spec.out_spec)
    named, problems = _outputs_named(interface, result)
    problems += _structure_problems(interface, named)
    leaf = {path: v for path, _, v in leaf_values(interface.outputs, named)}
    for oname, spec in outs.items():
        t = leaf.get(oname)
        if t is None:
            continue
        where = f"outputs.{oname}"
        if not isinstance(t, torch.Tensor):
            problems.append(f"{where}: the interface says a tensor, the program returns {describe(t)}")
            continue
        if t.dtype not in spec.allowed:
            problems.append(
                f"{where}: dtype: the interface says {spec.dtype if isinstance(spec.dtype, str) else set(spec.dtype)}, "
                f"the program returns {str(t.dtype).replace('torch.', '')}"
            )
        pos = positions(spec.shape, t.dim())
        if pos is None:
            problems.append(f"{where}: the interface says shape '{spec.shape}', the program returns rank {t.dim()}")
            continue
        for axis, d, _ in pos:
            e = _expr(t.shape[axis])
            got = _shown(e, env)
            if d.kind == "fixed" and e != d.size:
                problems.append(f"{where}[{axis}]: the interface says {d.size}, the program gives {got}")
            elif d.kind == "named" and not d.variadic:
                want = env.setdefault(str(d.name), e)
                if sympy.simplify(want - e) != 0:
                    problems.append(
                        f"{where}[{axis}]: the interface says '{d.name}' ({_shown(want, env)}), the program gives {got}"
                    )
            elif d.kind == "expr" and all(n in env for n in _names(str(d.name))):
                want = sympy.sympify(str(d.name).replace("//", "/"), locals={n: env[n] for n in _names(str(d.name))})
                if "//" not in str(d.name) and sympy.simplify(want - e) != 0:
                    problems.append(f"{where}[{axis}]: the interface says '{d.name}', the program gives {got}")
    return problems


def _rank(exprs: dict[tuple[str, int], Any], tname: str) -> int:
    return sum(1 for t, _ in exprs if t == tname)


def _names(text: str) -> list[str]:
    from modpact.interfaces.dims import expr_names

    return expr_names(text)


def _shown(e: Any, env: dict[str, Any]) -> str:
    """A program's size in the interface's names where it can (``batch``, ``2*n + 1``)."""
    import sympy  # imported when used: it takes a second to import

    if getattr(e, "is_number", False):
        return str(e)
    back = {v: sympy.Symbol(k) for k, v in env.items() if getattr(v, "is_Symbol", False)}
    return str(e.xreplace(back))


def _outputs_named(interface: Interface, result: Any) -> tuple[dict[str, Any], list[str]]:
    names = list(interface.outputs)
    if isinstance(result, Mapping):
        named = dict(result)
    elif isinstance(result, (tuple, list)):
        if len(result) != len(names):
            return {}, [
                f"outputs: the interface says {len(names)} ({', '.join(names)}), the program returns {len(result)}"
            ]
        named = dict(zip(names, result))
    elif len(names) == 1:
        named = {names[0]: result}
    else:
        return {}, [f"outputs: the interface says {len(names)} ({', '.join(names)}), the program returns one"]
    problems = [
        f"outputs.{k}: the interface says a tensor, the program returns nothing" for k in names if k not in named
    ]
    return named, problems


def _structure_problems(interface: Interface, named: Mapping[str, Any]) -> list[str]:
    """Where the program's outputs are not the structure the interface says: a tuple of
    another length, a missing or extra key (the tensors inside are checked by the caller)."""
    out: list[str] = []
    stack = [(f"outputs.{k}", spec, named[k]) for k, spec in interface.outputs.items() if k in named]
    while stack:
        where, spec, v = stack.pop()
        if isinstance(spec, (TupleSpec, ListSpec)):
            if not isinstance(v, (tuple, list)) or len(v) != len(spec.items):
                out.append(
                    f"{where}: the interface says a {spec.kind} of {len(spec.items)}, the program returns {describe(v)}"
                )
            else:
                stack += [(f"{where}[{i}]", x, y) for i, (x, y) in enumerate(zip(spec.items, v))]
        elif isinstance(spec, DictSpec):
            got = spec.fields_of(v)
            if got is None:
                out.append(
                    f"{where}: the interface says a mapping of {', '.join(spec.fields)}, "
                    f"the program returns {describe(v)}"
                )
                continue
            out += [
                f"{where}.{k}: the interface says a value, the program returns nothing"
                for k in spec.fields
                if k not in got
            ]
            out += [
                f"{where}.{k}: the program returns a value the interface does not declare"
                for k in got
                if k not in spec.fields
            ]
            stack += [(f"{where}.{k}", x, got[k]) for k, x in spec.fields.items() if k in got]
    return sorted(out)


def _ported(program: Any, document: PortDocument, source: str) -> PortedModule:
    inner = program.module()
    args = document.extra.get("arguments") or {k: k for k in document.interface.inputs}
    return ported_module(
        lambda **kw: inner(**{args.get(k, k): v for k, v in kw.items()}), document, source, inner=inner
    )


def load_exported(path: str | Path) -> PortedModule:
    """A program saved by ``Port.save`` behind its interface and contracts.
    ``LoadError`` naming the file when it cannot be read or carries no modpact
    document; ``FormatVersionError`` / ``SpecError`` naming it when the
    document is of another version or malformed."""
    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {p}" if not p.exists() else f"{p} is not a file")
    try:
        unsafe = unsafe_entries(p)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _not_a_program(p, e) from None
    if unsafe:
        listed = "".join(f"\n  - {u}" for u in unsafe)
        raise LoadError(f"{p}: refused, nothing loaded: it holds pickled data that could run code when loaded{listed}")
    extra = {DOCUMENT_KEY: ""}
    try:
        program = torch.export.load(p, extra_files=extra)
    except Exception as e:  # a zip or a program torch cannot read: name the file, never a traceback
        raise _not_a_program(p, e) from None
    if not extra[DOCUMENT_KEY]:
        raise LoadError(f"{p}: a torch.export program without a modpact interface (no {DOCUMENT_KEY} in it)")
    doc = read_document(extra[DOCUMENT_KEY], str(p), "torch.export")
    return _ported(program, doc, str(p))


def _not_a_program(p: Path, e: Exception) -> LoadError:
    lines = str(e).strip().splitlines()
    return LoadError(f"{p}: not a torch.export program ({type(e).__name__}: {lines[0][:200] if lines else ''})")
