"""TensorSpec: what one tensor must look like (shape, dtype, device, value domain)."""

from __future__ import annotations

import math
from typing import Any

import torch

from modpact.errors import Problem, SpecError

from . import serialize
from . import values as V
from .bindings import Bindings, unify
from .dims import Shape
from .dtypes import allowed_dtypes, describe_dtype, normalize_dtype
from .labels import LabelSpace, label_space_from_model
from .summary import describe

__all__ = ["TensorSpec", "DEVICES"]

DEVICES = ("any", "cpu", "cuda", "mps", "meta", "xpu")


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _holds_zero(bounds: tuple) -> bool:
    lo, hi = bounds
    return (lo is None or lo <= 0) and (hi is None or hi >= 0)


def _int_text(v: int) -> str:
    return str(v) if v.bit_length() <= 100 else f"of {v.bit_length()} bits"


def _fmt_range(r) -> str:
    lo = "-inf" if r[0] is None else r[0]
    hi = "inf" if r[1] is None else r[1]
    return f"[{lo}, {hi}]"


class TensorSpec:
    """Spec of one tensor. Arguments are checked when the spec is built.

    ``metadata_problems`` reads shape/dtype/device only; ``value_ok`` is the
    device-side value check (0-dim bool tensor, no sync); ``value_problems``
    the slow path with evidence; ``check`` does both.
    """

    __slots__ = (
        "shape",
        "dtype",
        "device",
        "range",
        "finite",
        "simplex",
        "simplex_tol",
        "indices",
        "labels",
        "label_dim",
        "allowed",
        "padding",
    )

    def __init__(
        self,
        shape: Any = "...",
        dtype: Any = "any",
        device: Any = "any",
        range=None,
        finite: bool = False,
        simplex: int | None = None,
        simplex_tol: float = 1e-4,
        indices: int | None = None,
        labels: LabelSpace | None = None,
        label_dim: int = -1,
        padding: str | None = None,
    ):
        shown = repr(shape)
        self.shape = Shape(shape, where=f"TensorSpec(shape={shown if len(shown) <= 80 else shown[:77] + '...'})")
        self.dtype = normalize_dtype(dtype)
        self.allowed = allowed_dtypes(self.dtype)
        if isinstance(device, torch.device):
            device = device.type
        if device not in DEVICES:
            raise SpecError(f"TensorSpec(device={device!r}): unknown device; expected one of {', '.join(DEVICES)}")
        self.device = device
        self.range = self._check_range(range)
        if not isinstance(finite, bool):
            raise SpecError(f"TensorSpec(finite={finite!r}): expected True or False")
        self.finite = finite
        for arg, val in (("simplex", simplex), ("label_dim", label_dim)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int)):
                raise SpecError(f"TensorSpec({arg}={val!r}): expected an int dim index")
        self.simplex = simplex
        if not _num(simplex_tol) or not (0 <= simplex_tol < 1):
            raise SpecError(f"TensorSpec(simplex_tol={simplex_tol!r}): expected a number in [0, 1)")
        self.simplex_tol = simplex_tol
        if indices is not None and (isinstance(indices, bool) or not isinstance(indices, int) or indices < 1):
            raise SpecError(f"TensorSpec(indices={indices!r}): expected a positive int n (class labels in [0, n))")
        if indices is not None and not any(
            not (d.is_floating_point or d.is_complex or d == torch.bool) for d in self.allowed
        ):
            raise SpecError(
                f"TensorSpec(indices={indices!r}, dtype={describe_dtype(self.dtype)!r}): indices need an integer dtype"
            )
        self.indices = indices
        if labels is not None and not isinstance(labels, LabelSpace):
            raise SpecError(f"TensorSpec(labels={labels!r}): expected a LabelSpace or None")
        self.labels = labels
        self.label_dim = label_dim
        self.padding = self._check_padding(padding)
        self._check_dim_index("simplex", simplex)
        if labels is not None:
            self._check_dim_index("label_dim", label_dim)
            d = self._dim_at(label_dim)
            if d is not None and d.kind == "fixed" and d.size != len(labels):
                raise SpecError(
                    f"TensorSpec(shape={str(self.shape)!r}, labels={labels.name!r}): dim {label_dim} is "
                    f"{d.size} but the label space has {len(labels)} labels"
                )

    def _check_range(self, r):
        if r is None:
            return None
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise SpecError(f"TensorSpec(range={r!r}): expected (lo, hi) with numbers or None")
        lo, hi = r
        for v in (lo, hi):
            if v is not None and (not _num(v) or (isinstance(v, float) and math.isnan(v))):
                raise SpecError(f"TensorSpec(range={r!r}): bound {v!r} is not a number or None")
            if isinstance(v, int) and not -(2**63) <= v < 2**63:  # torch compares with int64 scalars
                raise SpecError(f"TensorSpec(range=...): integer bound {_int_text(v)} does not fit in 64 bits")
        lo = None if lo is not None and lo == -math.inf else lo
        hi = None if hi is not None and hi == math.inf else hi
        if lo is not None and hi is not None and lo > hi:
            raise SpecError(f"TensorSpec(range={r!r}): lo={lo} > hi={hi}")
        if (lo is not None and math.isinf(lo)) or (hi is not None and math.isinf(hi)):
            raise SpecError(f"TensorSpec(range={r!r}): an infinite bound excludes every value")
        return (lo, hi)

    def _check_padding(self, padding):
        if padding is None:
            return None
        if padding not in V.PADDINGS:
            raise SpecError(
                f"TensorSpec(padding={padding!r}): expected None or one of {', '.join(map(repr, V.PADDINGS))} "
                "(a 0/1 mask padded at the end of each row, or at its start)"
            )
        if not any(not (d.is_floating_point or d.is_complex) for d in self.allowed):
            raise SpecError(
                f"TensorSpec(padding={padding!r}, dtype={describe_dtype(self.dtype)!r}): a padding mask needs "
                "an integer or bool dtype"
            )
        if self.range is not None and not (_holds_zero(self.range) and (self.range[1] is None or self.range[1] >= 1)):
            raise SpecError(
                f"TensorSpec(padding={padding!r}, range={_fmt_range(self.range)}): a padding mask holds 0 and 1, "
                "which the range excludes"
            )
        if len(self.shape) == 0:
            raise SpecError(f"TensorSpec(padding={padding!r}): a padding mask has rows along its last dim; shape is ()")
        return padding

    def _dim_at(self, i: int):
        """The Dim at index ``i`` when the shape pins it down, else None."""
        before, var, after = self.shape.split()
        if var is None:
            return self.shape[i] if -len(self.shape) <= i < len(self.shape) else None
        if i >= 0:
            return before[i] if i < len(before) else None
        return after[i] if -len(after) <= i else None

    def _check_dim_index(self, arg: str, i: int | None) -> None:
        if i is None or self.shape.variadic_index is not None:
            return
        n = len(self.shape)
        if not -n <= i < n:
            raise SpecError(f"TensorSpec({arg}={i}): out of range for shape {str(self.shape)!r} of rank {n}")

    # ---- identity ---------------------------------------------------------------
    def _key(self):
        return (
            tuple(self.shape),
            self.dtype,
            self.device,
            self.range,
            self.finite,
            self.simplex,
            self.simplex_tol,
            self.indices,
            self.labels,
            None if self.labels is None else (self.labels.name, self.labels.id),
            self.label_dim,
            self.padding,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [repr(str(self.shape))]
        if self.dtype != "any":
            parts.append(f"dtype={self.dtype!r}")
        if self.device != "any":
            parts.append(f"device={self.device!r}")
        if self.range is not None:
            parts.append(f"range={self.range!r}")
        for k in ("finite", "simplex", "indices", "padding"):
            if getattr(self, k):
                parts.append(f"{k}={getattr(self, k)!r}")
        if self.labels is not None:
            parts.append(f"labels={self.labels.name!r}")
        return f"TensorSpec({', '.join(parts)})"

    @property
    def has_value_domain(self) -> bool:
        return (
            self.range is not None
            or self.finite
            or self.simplex is not None
            or self.indices is not None
            or self.padding is not None
        )

    # ---- checks -------------------------------------------------------------------
    def metadata_problems(self, t: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        """Shape (unifying into ``bindings``), dtype, device, label axis. Metadata only."""
        if not isinstance(t, torch.Tensor):
            return [Problem(name, "type", "a torch.Tensor", describe(t))]
        bindings = Bindings() if bindings is None else bindings
        if t.is_nested:  # ragged: only a shape that is one variadic dim ("...") fits
            fixed = not (len(self.shape) == 1 and self.shape[0].variadic)
            problems = (
                [Problem(name, "shape", str(self.shape), describe(t), "a nested tensor has no fixed shape")]
                if fixed
                else []
            )
        else:
            problems = unify(self.shape, tuple(t.shape), bindings, name)
        if t.dtype not in self.allowed:
            problems.append(Problem(name, "dtype", describe_dtype(self.dtype), str(t.dtype).replace("torch.", "")))
        if self.device != "any" and t.device.type != self.device:
            problems.append(Problem(name, "device", self.device, str(t.device)))
        if self.labels is not None:
            if not -t.dim() <= self.label_dim < t.dim():
                problems.append(Problem(name, "labels", f"a label axis at dim {self.label_dim}", f"rank {t.dim()}"))
            elif t.shape[self.label_dim] != len(self.labels):
                problems.append(
                    Problem(
                        name,
                        "labels",
                        f"{len(self.labels)} scores ({self.labels.name!r}) along dim {self.label_dim}",
                        str(t.shape[self.label_dim]),
                    )
                )
        return problems

    def value_ok(self, t: torch.Tensor) -> torch.Tensor | None:
        """Device-side check of the value domain: 0-dim bool tensor, no sync; None if no domain.
        Sparse and nested tensors are checked on their stored values; a bound
        on complex values fails (``value_problems`` says why)."""
        if not self.has_value_domain:
            return None
        ordered = self.range is not None or self.simplex is not None or self.indices is not None
        ordered = ordered or self.padding is not None
        if ordered and not V.orderable(t):
            return torch.zeros((), dtype=torch.bool, device=t.device)
        dense = t
        values, zeros = V.stored_values(t)
        if zeros and (self.simplex is not None or self.indices is not None or self.padding is not None):
            dense = values = t.to_dense()
        elif values is not t:
            dense = values
        oks = []
        if self.finite:
            oks.append(V.finite_ok(values))
        if self.range is not None:
            ok = V.range_ok(values, self.range[0], self.range[1])
            if zeros and not _holds_zero(self.range):
                ok = ok & False
            oks.append(ok)
        if self.simplex is not None:
            oks.append(V.simplex_ok(dense, self.simplex, self.simplex_tol))
        if self.indices is not None:
            oks.append(V.indices_ok(dense, self.indices))
        if self.padding is not None:
            oks.append(V.padding_ok(dense, self.padding))
        if not oks:
            return None
        out = oks[0]
        for o in oks[1:]:
            out = out & o
        return out

    def value_problems(self, t: torch.Tensor, name: str = "x") -> list[Problem]:
        """Slow path: reads values and returns evidence for each failing domain check."""
        if not isinstance(t, torch.Tensor) or t.device.type == "meta" or not self.has_value_domain:
            return []
        ordered = [
            f
            for f, v in (
                ("range", self.range),
                ("simplex", self.simplex),
                ("indices", self.indices),
                ("padding", self.padding),
            )
            if v is not None
        ]
        if ordered and not V.orderable(t):
            return [Problem(name, ordered[0], "real values (a bound does not order complex values)", describe(t))]
        values, zeros = V.stored_values(t)
        if zeros and self.range is not None and not _holds_zero(self.range):
            return [
                Problem(
                    name,
                    "range",
                    f"values in {_fmt_range(self.range)}",
                    f"{describe(t)} with unstored zeros",
                    "a sparse tensor's unstored elements are 0",
                )
            ]
        whole = self.simplex is not None or self.indices is not None or self.padding is not None
        t = t.to_dense() if zeros and whole else values
        checks = []
        if self.finite:
            checks.append(("finite", "finite values", V.finite_evidence(t)))
        if self.range is not None:
            checks.append(("range", f"values in {_fmt_range(self.range)}", V.range_evidence(t, *self.range)))
        if self.simplex is not None:
            checks.append(
                (
                    "simplex",
                    f"non-negative, sums to 1 along dim {self.simplex} (tol {self.simplex_tol})",
                    V.simplex_evidence(t, self.simplex, self.simplex_tol),
                )
            )
        if self.indices is not None:
            checks.append(
                ("indices", f"integer class indices in [0, {self.indices})", V.indices_evidence(t, self.indices))
            )
        if self.padding is not None:
            form = "ones then zeros" if self.padding == "right" else "zeros then ones"
            checks.append(
                (
                    "padding",
                    f"{self.padding} padding: each row (last dim) {form}, with at least one 1",
                    V.padding_evidence(t, self.padding),
                )
            )
        problems = []
        for field, expected, ev in checks:
            if ev["failing"]:
                problems.append(Problem(name, field, expected, f"{ev['failing']} of {ev['of']} failing", _detail(ev)))
        return problems

    def check(self, t: Any, bindings: Bindings | None = None, name: str = "x") -> list[Problem]:
        """Metadata and value problems; resolves dim expressions when it owns the bindings."""
        own = bindings is None
        if bindings is None:
            bindings = Bindings()
        problems = self.metadata_problems(t, bindings, name)
        if own:
            problems += bindings.resolve()
        if isinstance(t, torch.Tensor) and not any(p.field in ("type", "dtype") for p in problems):
            problems += self.value_problems(t, name)
        return problems

    # ---- serialization (see serialize.py) -----------------------------------------------
    def to_dict(self) -> dict:
        return serialize.to_dict(self)

    def to_json(self, **kw) -> str:
        return serialize.to_json(self, **kw)

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        m = serialize.read_document(data, cls.__name__)
        return serialize.rebuild(cls.__name__, lambda: spec_from_model(m))

    @classmethod
    def from_json(cls, text: str) -> TensorSpec:
        return serialize.from_json(text, cls)


def spec_from_model(m: serialize.TensorSpecModel) -> TensorSpec:
    """A TensorSpec from its validated JSON model."""
    return TensorSpec(
        m.shape,
        dtype=m.dtype if isinstance(m.dtype, str) else set(m.dtype),
        device=m.device,
        range=m.range,
        finite=m.finite,
        simplex=m.simplex,
        simplex_tol=m.simplex_tol,
        indices=m.indices,
        labels=None if m.labels is None else label_space_from_model(m.labels),
        label_dim=m.label_dim,
        padding=m.padding,
    )


def _detail(ev: dict) -> str:
    parts = []
    if "first_index" in ev:
        parts.append(
            f"first at {ev['first_index']} = {ev['first_value']:.4g}"
            if isinstance(ev["first_value"], float)
            else f"first at {ev['first_index']} = {ev['first_value']}"
        )
    for k in ("nan", "inf", "negative", "min", "max", "reason"):
        if k in ev:
            v = ev[k]
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)
