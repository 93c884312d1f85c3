"""Interface: named input and output specs of one module; checks and variance.

A spec is a TensorSpec or a nested spec (``interfaces/nested.py``: tuples,
lists, dicts and dataclasses, optional values, opaque objects)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from modpact.errors import InterfaceViolation, Problem, SpecError

from . import serialize
from .annotations import specs_from_annotations
from .bindings import Bindings
from .nested import SPEC_TYPES, DictSpec, OpaqueSpec, OptionalSpec, Spec, leaves, spec_from_any_model
from .spec import TensorSpec
from .strategies import MAX_SIDE, interface_inputs
from .subtyping import Compatibility, mapping_compat
from .summary import describe, summarize

__all__ = ["Interface", "named_values"]


def _check_specs(arg: str, specs: Any, name: str) -> dict[str, Spec]:
    if not isinstance(specs, Mapping):
        raise SpecError(f"Interface({arg}={specs!r}): expected a dict of name -> TensorSpec (or a nested spec)")
    out = {}
    for k, v in specs.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise SpecError(f"Interface({name!r}, {arg}=...): tensor name {k!r} is not an identifier")
        if not isinstance(v, SPEC_TYPES):
            raise SpecError(
                f"Interface({name!r}, {arg}=...): {k!r} is a {type(v).__name__}; expected a TensorSpec "
                "(or TupleSpec, ListSpec, DictSpec, OptionalSpec, OpaqueSpec)"
            )
        out[k] = v
    return out


def _check_dims(dims: Any, name: str, specs: list[Mapping[str, Spec]]) -> dict[str, tuple[int | None, int | None]]:
    """``{dim name: (lo, hi)}`` bounds of named scalar dims used by the specs (None: unbounded)."""
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise SpecError(f"Interface({name!r}, dims={dims!r}): expected a dict of dim name -> (lo, hi)")
    scalar: list[str] = []
    for side in specs:
        for k, s in side.items():
            for _, leaf in leaves(s, k):
                for d in leaf.shape:
                    if d.kind == "named" and not d.variadic and d.name not in scalar:
                        scalar.append(str(d.name))
    out: dict[str, tuple[int | None, int | None]] = {}
    for k, v in dims.items():
        if k not in scalar:
            raise SpecError(
                f"Interface({name!r}, dims={{{k!r}: ...}}): no named dim {k!r} in the shapes "
                f"(named dims: {', '.join(scalar) or 'none'})"
            )
        ok = isinstance(v, (tuple, list)) and len(v) == 2
        ok = ok and all(x is None or (type(x) is int and 0 <= x < 2**63) for x in v)
        if not ok:
            raise SpecError(
                f"Interface({name!r}, dims={{{k!r}: {v!r}}}): expected a (lo, hi) pair of sizes "
                "(ints >= 0, either may be None: unbounded)"
            )
        lo, hi = v
        if lo is not None and hi is not None and lo > hi:
            raise SpecError(f"Interface({name!r}, dims={{{k!r}: {tuple(v)!r}}}): lo={lo} > hi={hi}")
        if (lo, hi) != (None, None):
            out[k] = (lo, hi)
    return out


def fmt_bounds(b: tuple[int | None, int | None]) -> str:
    return f"[{0 if b[0] is None else b[0]}, {'inf' if b[1] is None else b[1]}]"


class Interface:
    """What flows into and out of one module.

    Dims bind across all inputs and outputs of one call: pass the ``Bindings``
    returned by the input check to the output check.
    """

    __slots__ = ("name", "inputs", "outputs", "version", "description", "dims")

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, Spec],
        outputs: Mapping[str, Spec],
        version: str = "1.0",
        description: str = "",
        dims: Mapping[str, tuple[int | None, int | None]] | None = None,
    ):
        if not isinstance(name, str) or not name:
            raise SpecError(f"Interface(name={name!r}): expected a non-empty string")
        if not isinstance(version, str):
            raise SpecError(f"Interface(version={version!r}): expected a string like '1.0'")
        if not isinstance(description, str):
            raise SpecError(f"Interface(description={description!r}): expected a string")
        self.name = name
        self.inputs = _check_specs("inputs", inputs, name)
        self.outputs = _check_specs("outputs", outputs, name)
        self.version = version
        self.description = description
        #: bounds of named dims, ``{"seq": (1, 512)}``: checked on every call, used by generation and export
        self.dims = _check_dims(dims, name, [self.inputs, self.outputs])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Interface) and (
            self.name,
            self.inputs,
            self.outputs,
            self.version,
            self.description,
            self.dims,
        ) == (other.name, other.inputs, other.outputs, other.version, other.description, other.dims)

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.inputs.items()), tuple(self.outputs.items()), self.version))

    def __repr__(self) -> str:
        ins = ", ".join(f"{k}: {v!r}" for k, v in self.inputs.items())
        outs = ", ".join(f"{k}: {v!r}" for k, v in self.outputs.items())
        dims = f", dims={self.dims!r}" if self.dims else ""
        return f"Interface({self.name!r}, inputs={{{ins}}}, outputs={{{outs}}}{dims})"

    # ---- problems without raising -----------------------------------------------------
    def input_problems(
        self, values: Any, bindings: Bindings | None = None, *, values_too: bool = True
    ) -> tuple[list[Problem], Bindings]:
        """Problems of the inputs; dim expressions still unbound wait for the outputs."""
        return self._problems("inputs", self.inputs, values, bindings, values_too, final=False)

    def output_problems(
        self, values: Any, bindings: Bindings | None = None, *, values_too: bool = True
    ) -> tuple[list[Problem], Bindings]:
        return self._problems("outputs", self.outputs, values, bindings, values_too, final=True)

    def _problems(self, side, specs, values, bindings, values_too, final):
        bindings = Bindings() if bindings is None else bindings
        named, problems = _as_mapping(side, specs, values)
        for k, spec in specs.items():
            if k in named:
                problems += spec.metadata_problems(named[k], bindings, f"{side}.{k}")
        problems += bindings.resolve(final=final)
        if self.dims:
            problems += self.dim_problems(bindings, side)
        if values_too:
            bad = {p.tensor for p in problems if p.field in ("type", "dtype", "count", "missing")}
            for k, spec in specs.items():
                t = named.get(k)
                if isinstance(spec, TensorSpec):
                    if isinstance(t, torch.Tensor) and f"{side}.{k}" not in bad:
                        problems += spec.value_problems(t, f"{side}.{k}")
                elif k in named:  # nested: each tensor leaf whose type and dtype fit
                    problems += [p for p in spec.value_problems(t, f"{side}.{k}") if p.tensor not in bad]
        return problems, bindings

    def dims_hold(self, sizes: Mapping[str, Any]) -> bool:
        """Whether every bound dim in ``sizes`` (name -> int, as a guard's fast path binds
        them) lies inside the declared ``dims`` bounds; no text is built."""
        for n, (lo, hi) in self.dims.items():
            v = sizes.get(n)
            if type(v) is int and ((lo is not None and v < lo) or (hi is not None and v > hi)):
                return False
        return True

    def dim_problems(self, bindings: Bindings, side: str = "") -> list[Problem]:
        """A problem for each dim bound (by a tensor of ``side``, or by any when empty) outside
        the interface's declared ``dims`` bounds. Metadata only."""
        problems = []
        for n, (lo, hi) in self.dims.items():
            if n not in bindings:
                continue
            value, where = bindings[n]
            if side and not where.startswith(side):
                continue
            if isinstance(value, int) and ((lo is not None and value < lo) or (hi is not None and value > hi)):
                problems.append(
                    Problem(
                        where,
                        "dims",
                        f"dim {n} in {fmt_bounds((lo, hi))} (the interface's dims bounds)",
                        f"{n}={value}",
                    )
                )
        return problems

    # ---- raising checks ------------------------------------------------------------
    def check_inputs(
        self, values: Any, bindings: Bindings | None = None, *, module: Any = None, values_too: bool = True
    ) -> Bindings:
        __tracebackhide__ = True
        problems, b = self.input_problems(values, bindings, values_too=values_too)
        if problems:
            raise self._violation("input", problems, b, values, self.inputs, module) from None
        return b

    def check_outputs(
        self, values: Any, bindings: Bindings | None = None, *, module: Any = None, values_too: bool = True
    ) -> Bindings:
        __tracebackhide__ = True
        problems, b = self.output_problems(values, bindings, values_too=values_too)
        if problems:
            raise self._violation("output", problems, b, values, self.outputs, module) from None
        return b

    def _violation(self, side, problems, bindings, values, specs, module) -> InterfaceViolation:
        mod = module if isinstance(module, str) or module is None else type(module).__name__
        if side == "input":
            blame = f"the caller of {mod}" if mod else "the input data"
        else:
            blame = mod or f"the module implementing {self.name!r}"
        sidename = "inputs" if side == "input" else "outputs"
        named, _ = _as_mapping(sidename, specs, values)
        slow = any(
            p.field not in ("shape", "dtype", "device", "type", "labels", "missing", "unexpected", "dims")
            for p in problems
        )
        shown = {f"{sidename}.{k}": (summarize(v) if slow else describe(v)) for k, v in named.items()}
        where = f"{mod}: " if mod else ""
        n = len(problems)
        return InterfaceViolation(
            f"{where}{sidename} do not match interface {self.name!r} ({n} problem{'s' if n > 1 else ''})",
            module=mod,
            blame=blame,
            problems=problems,
            values=shown,
            bindings=bindings.as_dict(),
            side=side,
            contract=f"interface {self.name!r} v{self.version}",
        )

    # ---- generation ------------------------------------------------------------------------
    def strategy(self, *, dims: Mapping[str, Any] | None = None, device: Any = None, max_side: int | None = None):
        """Hypothesis strategy of ``{input name: tensor}`` satisfying the inputs; dims are
        drawn once per example and shared by all inputs. Needs ``modpact[hypothesis]``."""
        return interface_inputs(self, dims=dims, device=device, max_side=max_side or MAX_SIDE)

    # ---- variance --------------------------------------------------------------------------
    def is_substitutable_for(self, other: Interface) -> Compatibility:
        """Can ``self`` replace ``other``? Inputs contravariant (other's inputs must
        satisfy self's), outputs covariant (self's outputs must satisfy other's)."""
        ins = mapping_compat(
            other.inputs, self.inputs, f"{other.name}.inputs", f"{self.name}.inputs", allow_extra=False
        )
        outs = mapping_compat(
            self.outputs, other.outputs, f"{self.name}.outputs", f"{other.name}.outputs", allow_extra=False
        )
        dims = []
        for n, mine in self.dims.items():  # a substitute accepts at least the sizes the other accepts
            theirs = other.dims.get(n, (None, None))
            lo_ok = mine[0] is None or (theirs[0] is not None and theirs[0] >= mine[0])
            hi_ok = mine[1] is None or (theirs[1] is not None and theirs[1] <= mine[1])
            if not (lo_ok and hi_ok):
                dims.append(
                    f"dims: {self.name} accepts {n} in {fmt_bounds(mine)}, "
                    f"{other.name} accepts {n} in {fmt_bounds(theirs)}"
                )
        return Compatibility(
            ["inputs: " + r for r in ins.reasons] + ["outputs: " + r for r in outs.reasons] + dims,
            ins.notes + outs.notes,
            producer=self.name,
            consumer=f"a substitute for {other.name}",
        )

    # ---- serialization / construction helpers --------------------------------------
    def tensor_specs(self, what: str) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        """The inputs and outputs as tensor specs, for what handles tensors only
        (``what`` names it in the error): a nested, optional or opaque part is a
        ``SpecError`` naming it, never passed over."""
        parts = [
            f"{side}.{k} ({type(s).__name__})"
            for side, specs in (("inputs", self.inputs), ("outputs", self.outputs))
            for k, s in specs.items()
            if not isinstance(s, TensorSpec)
        ]
        if parts:
            raise SpecError(
                f"{what}: interface {self.name!r} has parts that are not tensors: {', '.join(parts)}; "
                f"{what} handles interfaces of tensors only"
            )
        ins = {k: s for k, s in self.inputs.items() if isinstance(s, TensorSpec)}
        outs = {k: s for k, s in self.outputs.items() if isinstance(s, TensorSpec)}
        return ins, outs

    def to_dict(self) -> dict:
        return serialize.to_dict(self)

    def to_json(self, **kw) -> str:
        return serialize.to_json(self, **kw)

    @classmethod
    def from_dict(cls, data: dict) -> Interface:
        """Build from ``to_dict()``'s form; ``SpecError`` naming the field for a
        malformed document, ``FormatVersionError`` for another version."""
        m = serialize.read_document(data, cls.__name__)

        def specs(side: str, models: dict) -> dict[str, Spec]:
            out = {}
            for k, v in models.items():
                try:
                    out[k] = serialize.rebuild(cls.__name__, functools.partial(spec_from_any_model, v))
                except SpecError as e:  # name the field: the spec's own message names the value
                    raise SpecError(f"{cls.__name__}.from_dict: {side}.{k}: {e}") from None
            return out

        return serialize.rebuild(
            cls.__name__,
            lambda: cls(
                m.name,
                specs("inputs", m.inputs),
                specs("outputs", m.outputs),
                version=m.version,
                description=m.description,
                dims={k: tuple(v) for k, v in m.dims.items()},
            ),
        )

    @classmethod
    def from_json(cls, text: str) -> Interface:
        return serialize.from_json(text, cls)

    @classmethod
    def load(cls, path: Any) -> Interface:
        """``from_json`` of a file: ``LoadError`` when it cannot be read,
        ``SpecError`` naming the file and the problem when it is not an interface."""
        return serialize.load(path, cls)

    @staticmethod
    def json_schema() -> dict:
        return serialize.interface_json_schema()

    @classmethod
    def from_annotations(cls, fn, name: str | None = None) -> Interface:
        """Inputs from annotated parameters (non-array ones are skipped); the return
        annotation gives output ``result``, or ``result0``, ``result1``.. for tuples."""
        inputs, outputs = specs_from_annotations(fn)
        return cls(name or fn.__qualname__, inputs, outputs)


def _as_mapping(side: str, specs: Mapping[str, Spec], values: Any) -> tuple[dict[str, Any], list[Problem]]:
    """Name the given values after the specs: dict, tuple/list (positional) or one tensor."""
    problems: list[Problem] = []
    names = list(specs)
    if _whole(specs, values):
        return {names[0]: values}, problems
    if isinstance(values, Mapping):
        named = dict(values)
    elif isinstance(values, (tuple, list)):
        if len(values) != len(names):
            problems.append(Problem(side, "count", f"{len(names)} values ({', '.join(names)})", str(len(values))))
        named = dict(zip(names, values))
    elif len(names) == 1:
        named = {names[0]: values}
    else:
        problems.append(Problem(side, "count", f"{len(names)} values ({', '.join(names)})", f"one {describe(values)}"))
        return {}, problems
    for k in names:
        if k not in named:
            problems.append(Problem(f"{side}.{k}", "missing", "a value", "nothing"))
    for k in named:
        if k not in specs:
            problems.append(Problem(f"{side}.{k}", "unexpected", "no such name", describe(named[k])))
    return {k: v for k, v in named.items() if k in specs}, problems


def _whole(specs: Mapping[str, Spec], values: Any) -> bool:
    """One nested spec given its whole value: a tuple for a TupleSpec, a mapping
    without that name for a DictSpec, anything for an optional or opaque one."""
    if len(specs) != 1:
        return False
    ((name, spec),) = specs.items()
    if isinstance(spec, TensorSpec):
        return False
    if isinstance(values, Mapping):
        return name not in values and isinstance(spec, (DictSpec, OptionalSpec, OpaqueSpec))
    return True


def named_values(specs: Mapping[str, Spec], values: Any) -> dict[str, Any]:
    """The values named after ``specs`` (as the checks name them): a mapping by key,
    a tuple or list by position, one value by the one name; unknown names are left out."""
    return _as_mapping("values", specs, values)[0]
