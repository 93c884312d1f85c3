"""Hypothesis strategies built from TensorSpecs and Interfaces.

    import modpact as mp
    mp.strategies.tensors(mp.TensorSpec("batch 10", dtype="float32", range=(0, 1)))
    iface.strategy()            # dict name -> tensor, dims drawn once per example

Strategies are built from the merged constraints of each spec (shape, dtype,
device, range, finite, simplex, indices, labels), never from ``.filter()``
chains. A spec that no tensor can satisfy fails when the strategy is built
(:class:`SpecError` naming the conflicting constraints).

Values are parametric: Hypothesis draws a tensor's parameters (dtype, shape, a
seed, the fill, special values and where they go: :func:`draw_params`) and torch
makes the tensor in one call from them (``interfaces/_materialise.py``), so a
tensor costs a few draws whatever its size. Edge values (0, the bounds of the
range, subnormals, the largest finite values and NaN/inf where the domain allows
them) are special values; a special value may also be one Hypothesis draws
element-wise. Shrinking works on the parameters: small dims, seed 0, the fill
nearest 0 and few special values, so a counterexample is a small tensor of
zeros with the entries that matter.

Nested inputs (``interfaces/nested.py``) are generated leaf by leaf, with
dims shared across every leaf: a ``TupleSpec`` gives a tuple, a ``ListSpec``
a list, a ``DictSpec`` without ``type`` a dict, an ``OptionalSpec`` None or
its value (drawn; shrinking goes to the value). An ``OpaqueSpec`` (a cache,
a state object) or a ``DictSpec`` naming a ``type`` cannot be generated:
nothing in the interface says how to build one, and types are recorded by
name, never imported; building the strategy raises ``SpecError`` naming it.

Hypothesis is imported when a strategy is built, never at ``import modpact``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from modpact.errors import SpecError

from ._materialise import SIMPLEX_WEIGHT, TensorParams, materialise
from .dims import Dim, eval_expr, expr_names
from .dtypes import describe_dtype
from .nested import DictSpec, OpaqueSpec, OptionalSpec, Spec, _SeqSpec, leaves
from .spec import TensorSpec, _fmt_range

__all__ = [
    "tensors",
    "interface_inputs",
    "dim_sizes",
    "require_hypothesis",
    "HypothesisMissing",
    "INSTALL_HINT",
    "MAX_SIDE",
]

INSTALL_HINT = 'pip install "modpact[hypothesis]"'
#: default largest size drawn for a named or anonymous dim
MAX_SIDE = 6
#: default most dims a variadic (``*v``, ``...``) expands to
MAX_VARIADIC = 2

# the dtypes strategies generate, in shrinking order (the first allowed one is the simplest)
_ORDER = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


class HypothesisMissing(SpecError, ImportError):
    """Hypothesis is not installed; the message carries the install command."""


def require_hypothesis(what: str = "property-based validation"):
    """Import Hypothesis or raise with the install command."""
    try:
        import hypothesis  # noqa: F401
        import hypothesis.extra.numpy  # noqa: F401
    except ImportError:
        raise HypothesisMissing(f"{what} needs Hypothesis, which is not installed; run: {INSTALL_HINT}") from None
    return hypothesis


# ---- dims -------------------------------------------------------------------------------


@dataclass
class DimPlan:
    """Every dim name used by some specs, with its allowed sizes (merged constraints)."""

    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # scalar name -> (lo, hi)
    why: dict[str, str] = field(default_factory=dict)  # name -> which constraint pinned it
    variadic: list[str] = field(default_factory=list)  # named variadics (*v)
    max_side: int = MAX_SIDE
    max_variadic: int = MAX_VARIADIC


def _pin(plan: DimPlan, name: str, lo: int, hi: int, why: str) -> None:
    """Narrow ``name`` to [lo, hi]; the default sizes give way, an earlier constraint does not."""
    if name in plan.why:
        old_lo, old_hi = plan.bounds[name]
        new = (max(old_lo, lo), min(old_hi, hi))
        if new[0] > new[1]:
            raise SpecError(f"cannot generate dim {name!r}: {why} conflicts with {plan.why[name]}")
    else:
        new = (lo, hi)
    plan.bounds[name] = new
    plan.why[name] = why if name not in plan.why or lo == hi else plan.why[name]


def plan_dims(
    specs: Mapping[str, TensorSpec],
    given: Mapping[str, Any] | None = None,
    min_side: int = 1,
    max_side: int = MAX_SIDE,
    max_variadic: int = MAX_VARIADIC,
    prefix: str = "",
    declared: Mapping[str, tuple[int | None, int | None]] | None = None,
) -> DimPlan:
    """Collect dim names and merge every constraint on them (given sizes, label counts, expressions).
    ``declared``: an interface's dims bounds; sizes stay small (``max_side``) inside them."""
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise SpecError(f"Expected max_side to be a positive int, got {max_side!r}")
    plan = DimPlan(max_side=max_side, max_variadic=max_variadic)
    for spec in specs.values():
        for d in spec.shape:
            if d.name is None:  # fixed dims and '...'
                continue
            if d.kind == "named" and d.variadic:
                if d.name not in plan.variadic:
                    plan.variadic.append(d.name)
            elif d.kind == "named":
                plan.bounds.setdefault(d.name, (min_side, max_side))
            elif d.kind == "expr":
                for n in expr_names(d.name):
                    plan.bounds.setdefault(n, (min_side, max_side))
    known = list(plan.bounds) + plan.variadic
    for name, value in (given or {}).items():
        if name not in known:
            raise SpecError(
                f"dims={{{name!r}: {value!r}}}: no dim {name!r} in the shapes (dims: {', '.join(known) or 'none'})"
            )
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
            lo, hi = value
        elif isinstance(value, int) and not isinstance(value, bool):
            lo = hi = value
        else:
            raise SpecError(f"dims={{{name!r}: {value!r}}}: expected an int size or a (lo, hi) pair of ints")
        if lo < 0 or lo > hi:
            raise SpecError(f"dims={{{name!r}: {value!r}}}: expected 0 <= lo <= hi")
        if name in plan.variadic:
            raise SpecError(f"dims={{{name!r}: ...}}: '*{name}' is variadic; fixed sizes apply to scalar dims")
        plan.bounds[name] = (lo, hi)
        plan.why[name] = f"dims={{{name!r}: {value!r}}}"
    for name, (dlo, dhi) in (declared or {}).items():
        if name not in plan.bounds:
            continue
        why = f"the interface's dims bounds {name} in [{0 if dlo is None else dlo}, {'inf' if dhi is None else dhi}]"
        if name in plan.why:  # sizes given to the strategy must lie inside the declared bounds
            lo, hi = plan.bounds[name]
            if (dlo is not None and lo < dlo) or (dhi is not None and hi > dhi):
                raise SpecError(f"cannot generate dim {name!r}: {plan.why[name]} is outside {why}")
            continue
        lo = min_side if dlo is None else max(min_side, dlo)
        hi = max(max_side, lo) if dhi is None else min(dhi, max(max_side, lo))
        if lo > hi:  # a bound below min_side: its smallest sizes
            lo = hi
        plan.bounds[name] = (lo, hi)
        plan.why[name] = why
    for tname, spec in specs.items():
        tname = prefix + tname
        if spec.labels is not None:
            d = spec._dim_at(spec.label_dim)
            count = len(spec.labels)
            if d is not None and d.kind == "named" and not d.broadcast:
                assert d.name is not None  # named dims have a name
                _pin(
                    plan,
                    d.name,
                    count,
                    count,
                    f"{tname}: labels={spec.labels.name!r} ({count} labels) along dim {spec.label_dim}",
                )
            elif d is not None and d.kind == "expr":
                assert d.name is not None  # the expression's text
                _solve_expr(plan, d.name, count, f"{tname}: labels={spec.labels.name!r} ({count} labels)")
            elif d is None:
                raise SpecError(
                    f"cannot generate {tname}: the label axis (dim {spec.label_dim}) of shape "
                    f"{str(spec.shape)!r} falls inside its variadic dims"
                )
    for tname, spec in specs.items():  # expressions must not go negative
        tname = prefix + tname
        for d in spec.shape:
            if d.kind == "expr" and d.name is not None and len(expr_names(d.name)) == 1:
                n = expr_names(d.name)[0]
                lo, hi = plan.bounds[n]
                ok = [v for v in range(lo, hi + 1) if eval_expr(d.name, {n: v}) >= 0]
                if not ok:
                    raise SpecError(
                        f"cannot generate {tname}: dim '{d.name}' is negative for every size of "
                        f"{n!r} in [{lo}, {hi}] ({plan.why.get(n, 'default sizes')})"
                    )
                plan.bounds[n] = (ok[0], ok[-1])
    return plan


def _solve_expr(plan: DimPlan, expr: str, size: int, why: str) -> None:
    names = expr_names(expr)
    if len(names) != 1:
        raise SpecError(f"cannot generate: {why} must equal dim '{expr}', which uses several dims")
    n = names[0]
    lo, hi = plan.bounds.get(n, (0, plan.max_side))
    sols = [v for v in range(0, max(hi, size) + 1) if eval_expr(expr, {n: v}) == size]
    if not sols:
        raise SpecError(f"cannot generate: {why} needs dim '{expr}' == {size}, which no size of {n!r} gives")
    _pin(plan, n, sols[0], sols[0], f"{why} via '{expr}'")


def draw_dims(draw, plan: DimPlan) -> dict[str, Any]:
    """One size per scalar name, one tuple per named variadic."""
    from hypothesis import strategies as st

    out: dict[str, Any] = {}
    for name, (lo, hi) in plan.bounds.items():
        out[name] = lo if lo == hi else draw(st.integers(lo, hi), label=f"dim {name}")
    for name in plan.variadic:
        out["*" + name] = tuple(
            draw(st.lists(st.integers(1, plan.max_side), max_size=plan.max_variadic), label=f"dims *{name}")
        )
    return out


# ---- one tensor ---------------------------------------------------------------------------


@dataclass
class _Values:
    """How the values of one dtype are drawn: bounds after merging range/indices/dtype limits."""

    dtype: torch.dtype
    lo: float | int | None
    hi: float | int | None
    allow_nan: bool = False
    allow_inf: bool = False


def _inward(x: float, dtype: torch.dtype, up: bool) -> float:
    """``x`` rounded inward to a value representable in ``dtype``."""
    t = torch.tensor(x, dtype=torch.float64).to(dtype)
    if up and float(t) < x:
        t = torch.nextafter(t, torch.tensor(math.inf, dtype=dtype))
    if not up and float(t) > x:
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype))
    return float(t)


def _value_plan(spec: TensorSpec, dt: torch.dtype) -> _Values | str:
    """The value bounds for ``dt``, or a string saying why ``dt`` cannot satisfy the spec."""
    lo, hi = spec.range if spec.range is not None else (None, None)
    if dt == torch.bool or not dt.is_floating_point:
        if dt == torch.bool:
            if spec.indices is not None:
                return "bool is not an index dtype"
            info_lo, info_hi = 0, 1
        else:
            info = torch.iinfo(dt)
            info_lo, info_hi = info.min, info.max
        if spec.indices is not None:
            info_lo, info_hi = max(info_lo, 0), min(info_hi, spec.indices - 1)
        ilo = info_lo if lo is None else max(info_lo, math.ceil(lo))
        ihi = info_hi if hi is None else min(info_hi, math.floor(hi))
        if ilo > ihi:
            what = f"range={_fmt_range(spec.range)}" if spec.range is not None else ""
            if spec.indices is not None:
                what += (" and " if what else "") + f"indices={spec.indices} (values in [0, {spec.indices}))"
            return f"{str(dt).replace('torch.', '')} has no value within {what}"
        return _Values(dt, ilo, ihi)
    if spec.indices is not None:
        return f"{str(dt).replace('torch.', '')} is not an index dtype"
    fmax = float(torch.finfo(dt).max)
    if lo is not None and lo > fmax or hi is not None and hi < -fmax:
        return f"{str(dt).replace('torch.', '')} cannot hold values in {_fmt_range(spec.range)}"
    flo = None if lo is None else _inward(max(lo, -fmax), dt, up=True)
    fhi = None if hi is None else _inward(min(hi, fmax), dt, up=False)
    if flo is not None and fhi is not None and flo > fhi:
        return f"{str(dt).replace('torch.', '')} has no value in {_fmt_range(spec.range)}"
    nan = spec.range is None and not spec.finite
    inf = not spec.finite and (flo is None or fhi is None)
    return _Values(dt, flo, fhi, allow_nan=nan, allow_inf=inf)


@dataclass
class TensorPlan:
    name: str
    spec: TensorSpec
    values: list[_Values]
    device: str


def plan_tensor(spec: TensorSpec, name: str = "x", device: str | torch.device | None = None) -> TensorPlan:
    """Merge a spec's dtype, device and value constraints; SpecError names the conflict."""
    if not isinstance(spec, TensorSpec):
        raise SpecError(f"Expected a TensorSpec, got {spec!r} (type={type(spec).__name__})")
    where = f"cannot generate {name} ({spec!r})"
    cands = [d for d in _ORDER if d in spec.allowed]
    if not cands:
        raise SpecError(
            f"{where}: dtype={describe_dtype(spec.dtype)!r} has no dtype the strategies generate "
            f"({', '.join(str(d).replace('torch.', '') for d in _ORDER)})"
        )
    if spec.simplex is not None:
        floats = [d for d in cands if d.is_floating_point]
        if not floats:
            raise SpecError(
                f"{where}: simplex={spec.simplex} needs a floating dtype, "
                f"dtype={describe_dtype(spec.dtype)!r} allows none"
            )
        if spec.range is not None and not (
            (spec.range[0] is None or spec.range[0] <= 0) and (spec.range[1] is None or spec.range[1] >= 1)
        ):
            raise SpecError(
                f"{where}: simplex={spec.simplex} rows with range={_fmt_range(spec.range)}: "
                "the strategy generates simplex rows only when the range contains [0, 1]"
            )
        cands = floats
    plans: list[_Values] = []
    reasons: list[str] = []
    for dt in cands:
        p = _value_plan(spec, dt)
        if isinstance(p, str):
            reasons.append(p)
        else:
            plans.append(p)
    if not plans:
        raise SpecError(f"{where}: no allowed dtype satisfies the value constraints: " + "; ".join(reasons))
    dev = _device(spec, device, where)
    return TensorPlan(name, spec, plans, dev)


def _device(spec: TensorSpec, device, where: str) -> str:
    want = None if device is None else torch.device(device).type
    if spec.device == "any":
        return str(device) if device is not None else "cpu"
    if want is not None and want != spec.device:
        raise SpecError(f"{where}: device={spec.device!r} conflicts with the requested device {str(device)!r}")
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"{where}: device='cuda' but no CUDA device is visible to torch")
    if spec.device not in ("cpu", "cuda", "meta"):
        raise SpecError(f"{where}: device={spec.device!r} is not generated (cpu, cuda and meta are)")
    return str(device) if device is not None else spec.device


def concrete_shape(
    draw, plan: TensorPlan, dims: Mapping[str, Any], max_side: int = MAX_SIDE, max_variadic: int = MAX_VARIADIC
) -> tuple[int, ...]:
    from hypothesis import assume
    from hypothesis import strategies as st

    spec = plan.spec
    out: list[int] = []
    for d in spec.shape:
        if d.variadic:
            if d.kind == "named":
                assert d.name is not None  # named dims have a name
                out.extend(dims["*" + d.name])
            else:
                out.extend(draw(st.lists(st.integers(1, max_side), max_size=max_variadic), label=f"{plan.name} ..."))
            continue
        out.append(_one_dim(draw, d, dims, max_side, plan.name))
    if spec.labels is not None:
        label_pos = spec.label_dim % len(out) if out else None
        d = spec._dim_at(spec.label_dim)
        if label_pos is not None and d is not None and d.kind == "anon":
            out[label_pos] = len(spec.labels)
    assume(all(s >= 0 for s in out))  # only a multi-name dim expression can go negative
    return tuple(out)


def _one_dim(draw, d: Dim, dims: Mapping[str, Any], max_side: int, tname: str) -> int:
    from hypothesis import strategies as st

    if d.kind == "fixed":
        assert d.size is not None  # fixed dims have a size
        return d.size
    if d.kind == "named":
        assert d.name is not None  # named dims have a name
        size = dims[d.name]
        if d.broadcast and size != 1 and draw(st.booleans(), label=f"{tname} #{d.name} is 1"):
            return 1
        return size
    if d.kind == "expr":
        assert d.name is not None  # the expression's text
        return eval_expr(d.name, dims)
    return draw(st.integers(1, max_side), label=f"{tname} _")


def draw_tensor(draw, plan: TensorPlan, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of ``shape`` satisfying the plan's dtype, device and value domain: its
    parameters drawn by Hypothesis (:func:`draw_params`), the tensor made by torch."""
    return materialise(draw_params(draw, plan, shape))


#: most special values written at drawn positions of one tensor
MAX_SPECIALS = 4


def draw_params(draw, plan: TensorPlan, shape: tuple[int, ...]) -> TensorParams:
    """The parameters of one tensor of ``shape`` (:class:`TensorParams`): the dtype (where the
    spec allows several); how many entries get random values (uniform within ``10**scale`` of
    the fill, the value nearest 0; the first entries of a permutation drawn from the seed),
    the seed and the scale; special values (the bounds of the range, 0, the smallest
    subnormal, the largest finite value, NaN and inf where the domain allows, or a value
    Hypothesis draws) at drawn positions, and one scattered over a drawn fraction. Each
    choice shrinks to the simplest: no random entries (or fewer, the same ones), seed 0,
    scale 0, no special values."""
    from hypothesis import strategies as st

    vp = plan.values[0] if len(plan.values) == 1 else draw(st.sampled_from(plan.values), label=f"{plan.name} dtype")
    simplex = plan.spec.simplex
    if simplex is not None:  # integer weights, normalised along the simplex dim by materialise
        vp = _Values(vp.dtype, 0, SIMPLEX_WEIGHT)
    padding = None
    if plan.spec.padding is not None and shape:
        # a padding mask: the parameters are of its rows' lengths (in [1, n], shrinking to 1),
        # which materialise turns into rows of ones then zeros ("right") or zeros then ones
        from hypothesis import assume

        n_last = shape[-1]
        assume(n_last >= 1 or math.prod(shape[:-1]) == 0)  # a row of no element has no 1
        padding = (plan.spec.padding, n_last, vp.dtype)
        vp, shape = _Values(torch.int64, 1, max(n_last, 1)), shape[:-1]
    kinds = _special_kinds(vp, simplex is not None)
    near0 = _near0(vp)
    base = TensorParams(vp.dtype, shape, plan.device, vp.lo, vp.hi, near0, simplex=simplex, padding=padding)
    if plan.device == "meta":
        return base
    n = math.prod(shape)
    # how many entries get random values: 0 (all the fill), some, or all (a draw above n: about
    # half of them); shrinking lowers the count, keeping the first entries of the same seeded
    # permutation, so a counterexample keeps only the random entries that matter
    random = min(n, draw(st.integers(0, 2 * n), label=f"{plan.name} random entries")) if n else 0
    seed = scale = 0
    if random:
        seed = draw(st.integers(0, 2**32 - 1), label=f"{plan.name} seed")
        scale = draw(st.integers(*_scales(vp, simplex is not None)), label=f"{plan.name} scale (log10)")
    specials: list[tuple[int, float | int | bool]] = []
    scatter = None
    if n:
        count = draw(st.integers(0, min(n, MAX_SPECIALS)), label=f"{plan.name} special values")
        for _ in range(count):
            at = draw(st.integers(0, n - 1), label=f"{plan.name} special at")
            specials.append((at, _special(draw, vp, kinds, plan.name)))
        if draw(st.booleans(), label=f"{plan.name} scattered special value"):
            if not random:  # positions come from the seed
                seed = draw(st.integers(0, 2**32 - 1), label=f"{plan.name} seed")
            frac = draw(st.sampled_from(_FRACTIONS), label=f"{plan.name} scattered fraction")
            scatter = (_special(draw, vp, kinds, plan.name), frac)
    return replace(base, seed=seed, random=random, scale=scale, specials=tuple(specials), scatter=scatter)


_FRACTIONS = (0.1, 0.5, 1.0)


def _near0(vp: _Values) -> float | int | bool:
    """The value nearest 0 within the bounds (the fill a counterexample shrinks to)."""
    near0 = 0 if vp.lo is None or vp.lo <= 0 else vp.lo
    near0 = near0 if vp.hi is None or near0 <= vp.hi else vp.hi
    return bool(near0) if vp.dtype == torch.bool else near0


def _scales(vp: _Values, weights: bool) -> tuple[int, int]:
    """The range of the random fill's window, as powers of 10 (0 first: shrinking goes there)."""
    if vp.dtype == torch.bool:
        return 0, 0
    if weights:
        return 0, 3
    if vp.dtype.is_floating_point:
        return -6, int(math.log10(torch.finfo(vp.dtype).max))
    return 0, 19


def _special_kinds(vp: _Values, weights: bool) -> list[str]:
    """The special values the bounds allow, simplest first ("value": one Hypothesis draws)."""
    kinds = ["value"]
    lo, hi = vp.lo, vp.hi
    if weights or not vp.dtype.is_floating_point:
        return kinds + [k for k, v in (("lo", lo), ("hi", hi)) if v is not None]
    inside = lambda x: (lo is None or lo <= x) and (hi is None or x <= hi)  # noqa: E731
    tiny = _subnormal(vp.dtype)
    kinds += [k for k, x in (("zero", 0.0), ("tiny", tiny), ("-tiny", -tiny)) if inside(x)]
    kinds += [k for k, v in (("lo", lo), ("hi", hi)) if v is not None]
    kinds += [k for k, v in (("max", hi), ("-max", lo)) if v is None]
    if vp.allow_nan:
        kinds.append("nan")
    if vp.allow_inf:
        kinds += [k for k, v in (("inf", hi), ("-inf", lo)) if v is None]
    return kinds


_SUBNORMAL = {dt: float(torch.nextafter(torch.zeros((), dtype=dt), torch.ones((), dtype=dt))) for dt in _ORDER[:4]}


def _subnormal(dt: torch.dtype) -> float:
    """The smallest positive value of a floating dtype."""
    return _SUBNORMAL[dt]


def _special(draw, vp: _Values, kinds: list[str], name: str) -> float | int | bool:
    from hypothesis import strategies as st

    kind = draw(st.sampled_from(kinds), label=f"{name} special kind")
    if kind == "value":
        return draw(_elements(vp), label=f"{name} special value")
    if kind in ("lo", "hi"):
        v = vp.lo if kind == "lo" else vp.hi
        assert v is not None  # offered only when bounded
        return v
    fmax = float(torch.finfo(vp.dtype).max)
    return {
        "zero": 0.0,
        "tiny": _subnormal(vp.dtype),
        "-tiny": -_subnormal(vp.dtype),
        "max": fmax,
        "-max": -fmax,
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
    }[kind]


def _elements(vp: _Values):
    from hypothesis import strategies as st

    dt = vp.dtype
    if dt == torch.bool or not dt.is_floating_point:
        lo, hi = vp.lo, vp.hi
        assert isinstance(lo, int) and isinstance(hi, int)  # _value_plan bounds bool and integer dtypes with ints
        if dt == torch.bool:
            return st.sampled_from([v for v in (False, True) if lo <= v <= hi])
        return st.integers(lo, hi)
    widths: dict[torch.dtype, Literal[16, 32, 64]] = {torch.float16: 16, torch.float64: 64}
    width = widths.get(dt, 32)
    return st.floats(min_value=vp.lo, max_value=vp.hi, allow_nan=vp.allow_nan, allow_infinity=vp.allow_inf, width=width)


# ---- public strategies ---------------------------------------------------------------------


def tensors(spec: TensorSpec, *, dims: Mapping[str, Any] | None = None, device: Any = None, max_side: int = MAX_SIDE):
    """A strategy of tensors satisfying ``spec`` (shape, dtype, device, value domain).

    ``dims`` fixes sizes (``{"batch": 4}``) or bounds them (``{"batch": (1, 64)}``);
    ``device`` is used where the spec says ``device="any"``.
    """
    require_hypothesis("modpact.strategies.tensors")
    from hypothesis import strategies as st

    dplan = plan_dims({"x": spec}, dims, max_side=max_side)
    tplan = plan_tensor(spec, "x", device)

    @st.composite
    def _draw(draw):
        bound = draw_dims(draw, dplan)
        return draw_tensor(draw, tplan, concrete_shape(draw, tplan, bound, max_side))

    return _draw()


def _check_generable(spec: Spec, name: str) -> None:
    """SpecError when some part of ``spec`` cannot be generated (an opaque value, a named type)."""
    stack: list[tuple[str, Any]] = [(name, spec)]
    while stack:
        path, s = stack.pop()
        if isinstance(s, OpaqueSpec):
            raise SpecError(
                f"cannot generate {path}: an opaque value (declared by type {s.type}) cannot be generated; "
                "nothing in the interface says how to build one. Leave it out of the interface's inputs "
                "(if the module has a default for it) or validate with inputs you build yourself"
            )
        if isinstance(s, DictSpec):
            if s.type is not None:
                raise SpecError(
                    f"cannot generate {path}: a {s.type} cannot be built from its name (types are recorded "
                    "by name, never imported); only plain dicts (DictSpec without type) are generated"
                )
            stack += [(f"{path}.{k}", x) for k, x in s.fields.items()]
        elif isinstance(s, _SeqSpec):
            stack += [(f"{path}[{i}]", x) for i, x in enumerate(s.items)]
        elif isinstance(s, OptionalSpec) and s.inner is not None:
            stack.append((path, s.inner))


class InputsPlan:
    """Merged constraints of an interface's inputs: dims shared across tensors,
    nested ones included (a dim ``batch`` has one size in ``x`` and in ``hx[0]``)."""

    def __init__(
        self,
        specs: Mapping[str, Spec],
        dims: Mapping[str, Any] | None = None,
        device: Any = None,
        max_side: int = MAX_SIDE,
        prefix: str = "inputs.",
        declared: Mapping[str, tuple[int | None, int | None]] | None = None,
    ):
        flat: dict[str, TensorSpec] = {}
        for k, s in specs.items():
            _check_generable(s, prefix + k)
            flat.update(leaves(s, k))
        self.specs = dict(specs)
        self.dims = plan_dims(flat, dims, max_side=max_side, prefix=prefix, declared=declared)
        self.tensors = {k: plan_tensor(s, prefix + k, device) for k, s in flat.items()}
        self.max_side = max_side

    def draw(self, draw, bound: Mapping[str, Any] | None = None) -> dict[str, Any]:
        bound = draw_dims(draw, self.dims) if bound is None else bound
        return {k: self._value(draw, s, k, bound) for k, s in self.specs.items()}

    def _value(self, draw, spec: Spec, path: str, bound: Mapping[str, Any]) -> Any:
        if isinstance(spec, TensorSpec):
            p = self.tensors[path]
            return draw_tensor(draw, p, concrete_shape(draw, p, bound, self.max_side))
        if isinstance(spec, _SeqSpec):
            return spec.pytype(self._value(draw, x, f"{path}[{i}]", bound) for i, x in enumerate(spec.items))
        if isinstance(spec, DictSpec):
            return {k: self._value(draw, x, f"{path}.{k}", bound) for k, x in spec.fields.items()}
        if isinstance(spec, OptionalSpec):
            from hypothesis import strategies as st

            if spec.inner is None or draw(st.booleans(), label=f"{path} is None"):
                return None
            return self._value(draw, spec.inner, path, bound)
        raise SpecError(f"cannot generate {path}: {spec!r}")  # _check_generable refused it already


def interface_inputs(
    interface: Any, *, dims: Mapping[str, Any] | None = None, device: Any = None, max_side: int = MAX_SIDE
):
    """A strategy of ``{input name: value}`` for ``interface`` (a tensor, or a tuple/list/dict/None
    for a nested input); dims are drawn once per example and shared by every input (a dim
    ``batch`` has one size across ``x`` and ``mask``)."""
    require_hypothesis("Interface.strategy()")
    from hypothesis import strategies as st

    plan = InputsPlan(interface.inputs, dims, device, max_side, declared=getattr(interface, "dims", None))

    @st.composite
    def _draw(draw):
        return plan.draw(draw)

    return _draw()


def dim_sizes(interface: Any, dims: Mapping[str, Any] | None = None, max_side: int = MAX_SIDE):
    """A strategy of the dim bindings alone (name -> size, ``*name`` -> tuple)."""
    require_hypothesis("modpact.strategies.dim_sizes")
    from hypothesis import strategies as st

    flat: dict[str, TensorSpec] = {}
    for k, s in interface.inputs.items():
        flat.update(leaves(s, k))
    plan = plan_dims(flat, dims, max_side=max_side, declared=getattr(interface, "dims", None))
    return st.composite(lambda draw: draw_dims(draw, plan))()
