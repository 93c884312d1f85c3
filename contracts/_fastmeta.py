"""Compiled fast paths for a boundary's checks.

``Interface.input_problems`` builds problem text eagerly and costs several
microseconds per tensor; guards run on every call. ``MetaPlan`` answers only
"certainly fine" for the simple, common specs (fixed, named and anonymous
dims; dtype set; device; label axis) and returns None on any doubt or
failure, in which case the checker runs the Interface's own check, which
stays the single authority on problems and their wording. Specs with
variadic, broadcast or expression dims are not compiled (always the full path).

``CallPlan`` is a whole boundary's check for the happy path of the default
(eager) checker: it reads the call's arguments straight from ``args`` /
``kwargs`` (no env dict, no condition objects), checks the interface's
metadata with two ``MetaPlan`` s and each ``finite`` condition with one
reduction and one host read per tensor. It, too, only says "certainly fine";
on anything else the guard runs its full check from the start, which words
the problems and the blame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["MetaPlan", "compile_side", "CallPlan", "finite_fast"]

_FIXED, _NAMED, _ANON = 0, 1, 2


class _TensorPlan:
    __slots__ = ("key", "ndim", "dims", "dtypes", "device", "label_dim", "nlabels")

    def __init__(self, key: str, spec: Any):
        self.key = key
        dims = []
        for i, d in enumerate(spec.shape):
            if d.variadic or d.broadcast or d.kind == "expr":
                raise _NotSimple
            if d.kind == "fixed":
                dims.append((i, _FIXED, d.size))
            elif d.kind == "named":
                dims.append((i, _NAMED, d.name))
            elif d.kind != "anon":
                raise _NotSimple
        self.ndim = len(spec.shape)
        self.dims = tuple(dims)
        self.dtypes = spec.allowed
        self.device = None if spec.device == "any" else spec.device
        if spec.labels is not None:
            ld = spec.label_dim
            if not -self.ndim <= ld < self.ndim:
                raise _NotSimple
            self.label_dim, self.nlabels = ld, len(spec.labels)
        else:
            self.label_dim, self.nlabels = None, 0


class _NotSimple(Exception):
    pass


class MetaPlan:
    """Fast metadata check of one side (inputs or outputs) of an interface."""

    __slots__ = ("tensors", "names", "n", "args")

    def __init__(self, specs: Mapping[str, Any], args: tuple[str, ...] | None = None):
        self.tensors = tuple(_TensorPlan(k, s) for k, s in specs.items())
        self.names = tuple(specs)
        self.n = len(self.names)
        # (plan, env key) pairs for run_env: the argument each input is bound to
        self.args = tuple(zip(self.tensors, args)) if args is not None else ()

    def run_env(self, env: Mapping[str, Any], binds: dict[str, int]) -> dict[str, int] | None:
        """Inputs read straight from the call's env (see ``args``)."""
        one = _one
        for p, a in self.args:
            if not one(p, env[a], binds):
                return None
        return binds

    def run(self, values: Any, binds: dict[str, int]) -> dict[str, int] | None:
        """``binds`` updated with the dims bound here, or None (use the full check)."""
        one = _one
        if isinstance(values, torch.Tensor):
            if self.n != 1 or not one(self.tensors[0], values, binds):
                return None
            return binds
        if isinstance(values, dict):
            if len(values) != self.n:
                return None
            for p in self.tensors:
                t = values.get(p.key)
                if t is None or not one(p, t, binds):
                    return None
            return binds
        if isinstance(values, (tuple, list)):
            if len(values) != self.n:
                return None
            for p, t in zip(self.tensors, values):
                if not one(p, t, binds):
                    return None
            return binds
        return None


def _one(p: _TensorPlan, t: Any, binds: dict[str, int]) -> bool:
    if not isinstance(t, torch.Tensor) or t.is_nested:  # a nested tensor has no .shape: the full check says why
        return False
    shape = t.shape
    if len(shape) != p.ndim or t.dtype not in p.dtypes:
        return False
    for i, kind, v in p.dims:
        s = shape[i]
        if kind == _FIXED:
            if s != v:
                return False
        else:
            b = binds.get(v)
            if b is None:
                binds[v] = s
            elif b != s:
                return False
    if p.device is not None and t.device.type != p.device:
        return False
    if p.label_dim is not None and shape[p.label_dim] != p.nlabels:
        return False
    return True


def compile_side(specs: Mapping[str, Any], args: tuple[str, ...] | None = None) -> MetaPlan | None:
    """A plan for these specs, or None if any spec is not simple enough."""
    try:
        return MetaPlan(specs, args)
    except (_NotSimple, AttributeError):
        return None


def finite_fast(t: Any) -> bool:
    """True only when ``t`` is certainly a tensor whose elements are all
    finite (what ``finite`` checks): one reduction and one host read. False
    means "ask ``Finite.ok``": a non-finite value, a sum that overflowed, a
    complex, meta or non-tensor value. Integer and bool tensors are finite."""
    if not isinstance(t, torch.Tensor):
        return False
    if t.is_floating_point():
        if t.requires_grad:
            t = t.detach()
        try:
            return math.isfinite(t.sum().item())
        except Exception:  # meta tensors and other values ``Finite.ok`` words itself
            return False
    return not t.is_complex()


_MISSING: Any = object()
# where a postcondition's tensor comes from: the result, one named output, an argument
_RESULT, _OUTPUT, _ARG = 0, 1, 2


class CallPlan:
    """A boundary's interface metadata and ``finite`` conditions, checked
    from the call's ``args`` / ``kwargs`` without building an env.

    ``pre(args, kwargs)`` gives the call's *frame* when the inputs and the
    preconditions certainly hold, else None: a list ``[args, kwargs, *dims]``
    with the sizes bound to ``dim_names`` (``binds(frame)`` makes it the dict
    the full check takes). ``post(frame, result)`` is True when the outputs
    and the postconditions certainly hold. ``pre`` and ``post`` are generated
    Python (``source``) for plain tensors passed positionally and a result
    that is one tensor or a tuple of them; they hand anything else to the
    interpreted ``pre_any`` / ``post_any``. A call that binds only
    positionally is read by index; any other call is bound with the
    boundary's ``Binder`` (which raises the call's TypeError).
    """

    __slots__ = (
        "binder",
        "bounds",
        "lo",
        "hi",
        "needed",
        "index",
        "inputs",
        "pre_finite",
        "outputs",
        "post_finite",
        "post_args",
        "dim_names",
        "pre",
        "post",
        "source",
    )

    def __init__(
        self,
        binder: Any,
        inputs: MetaPlan | None,
        in_args: Sequence[str],
        outputs: MetaPlan | None,
        out_names: Sequence[str],
        requires_finite: Sequence[str],
        ensures_finite: Sequence[str],
        bounds: Mapping[str, tuple[int | None, int | None]] | None = None,
    ):
        self.binder = binder
        # the interface's declared dims bounds (Interface(dims=...)): a dim bound outside them is a miss
        self.bounds = {k: v for k, v in (bounds or {}).items() if v != (None, None)}
        names = binder.names
        kwonly_required = any(n not in binder.defaults for n in binder.kwonly)
        # positional calls read by index: at least every parameter without a default, at most all of them
        self.lo = sum(1 for n in names if n not in binder.defaults)
        self.hi = -1 if kwonly_required else len(names)
        args = binder.all_names
        post_args = [n for n in ensures_finite if n in args and n != "result"]
        needed = list(dict.fromkeys([*in_args, *requires_finite, *post_args]))
        for n in needed:
            if n not in names and n not in binder.defaults:
                raise _NotSimple  # keyword-only or variadic: read through the Binder every call is not worth it
        self.needed = tuple(needed)
        slot = {n: i for i, n in enumerate(needed)}
        # (position, default) per needed argument
        far = len(names) + 1  # past any positional call: the default
        self.index = tuple((names.index(n) if n in names else far, binder.defaults.get(n, _MISSING)) for n in needed)
        self.inputs = tuple(zip(inputs.tensors, (slot[a] for a in in_args))) if inputs is not None else ()
        self.pre_finite = tuple(slot[n] for n in requires_finite)
        self.outputs = outputs
        post: list[tuple[int, Any]] = []  # (_RESULT, 0), (_ARG, slot) or (_OUTPUT, output name)
        for n in ensures_finite:
            if n == "result":  # the env's "result" is the call's result, even beside an argument of that name
                post.append((_RESULT, 0))
            elif n in args:
                post.append((_ARG, slot[n]))
            elif n in out_names:
                post.append((_OUTPUT, n))
            else:
                raise _NotSimple
        self.post_finite = tuple(post)
        self.post_args = bool(post_args)
        dims = (d for p, _ in self.inputs for _, kind, d in p.dims if kind == _NAMED)
        self.dim_names = tuple(dict.fromkeys(dims))
        self.pre, self.post, self.source = _generate(self)

    def binds(self, frame: list[Any]) -> dict[str, int]:
        """The dims a frame of ``pre`` bound, as the full check takes them."""
        return dict(zip(self.dim_names, frame[2:]))

    def values(self, args: tuple, kwargs: Any) -> list[Any]:
        """The needed arguments' values, in ``needed`` order."""
        n = len(args)
        if not kwargs and self.lo <= n <= self.hi:
            return [args[i] if i < n else d for i, d in self.index]
        env = self.binder.bind(args, kwargs or {})
        return [env[a] for a in self.needed]

    def pre_any(self, args: tuple, kwargs: Any) -> list[Any] | None:
        """``pre`` for any call, interpreted (the generated ``pre`` hands over what it does not cover)."""
        vals = self.values(args, kwargs)
        binds: dict[str, int] = {}
        one = _one
        for p, i in self.inputs:
            if not one(p, vals[i], binds):
                return None
        if self.bounds and not _within(binds, self.bounds):
            return None
        for i in self.pre_finite:
            if not finite_fast(vals[i]):
                return None
        return [args, kwargs, *(binds[k] for k in self.dim_names)]

    def post_any(self, frame: list[Any], result: Any) -> bool:
        """``post`` for any result, interpreted."""
        binds, args, kwargs = self.binds(frame), frame[0], frame[1]
        if self.outputs is not None and self.outputs.run(result, binds) is None:
            return False
        if self.bounds and not _within(binds, self.bounds):
            return False
        if self.post_finite:
            vals = self.values(args, kwargs) if self.post_args else ()
            for kind, key in self.post_finite:
                if kind == _RESULT:
                    v = result
                elif kind == _ARG:
                    v = vals[key]
                else:
                    v = _output(result, key, self.outputs)
                if not finite_fast(v):
                    return False
        return True


def _within(binds: Mapping[str, int], bounds: Mapping[str, tuple[int | None, int | None]]) -> bool:
    """Every bound dim inside its declared bounds."""
    for k, (lo, hi) in bounds.items():
        v = binds.get(k)
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            return False
    return True


def _output(result: Any, name: str, outputs: MetaPlan | None) -> Any:
    """The named output of a result (as ``Boundary.named_outputs`` names it), or None."""
    names = outputs.names if outputs is not None else ()
    if isinstance(result, torch.Tensor):
        return result if len(names) == 1 and names[0] == name else None
    if isinstance(result, (tuple, list)):
        i = names.index(name)
        return result[i] if i < len(result) else None
    if isinstance(result, dict):
        return result.get(name)
    return None


def compile_call(*args: Any) -> CallPlan | None:
    """``CallPlan(*args)``, or None when some argument cannot be read by position or default."""
    try:
        return CallPlan(*args)
    except _NotSimple:
        return None


# --- code generation --------------------------------------------------------
# The plan above, as straight-line Python built once per boundary: one local per
# argument, dim and output, constants bound at definition, no loops, no dicts
# until the bindings are returned. It covers plain ``torch.Tensor`` values given
# positionally and a result that is one tensor or a tuple of them; anything else
# it hands to the interpreted ``pre_any`` / ``post_any``.

_DEVICE_FLAG = {"cpu": "is_cpu", "cuda": "is_cuda", "meta": "is_meta", "mps": "is_mps", "xpu": "is_xpu"}


class _Writer:
    def __init__(self, ns: dict[str, Any], dim_var: dict[str, str], bounds: Mapping[str, Any] | None = None):
        self.ns = ns
        self.bounds = bounds or {}  # dim name -> (lo, hi) declared by the interface
        self.lines: list[str] = []
        self.dim_var = dim_var  # dim name -> local variable, shared by pre and post
        self.bound: set[str] = set()  # dims bound so far in this function

    def const(self, value: Any) -> str:
        name = f"_c{len(self.ns)}"
        self.ns[name] = value
        return name

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def tensor(self, var: str, p: _TensorPlan, fail: str, other: str) -> None:
        """Check local ``var`` against ``p``; ``fail``: the statement for a certain miss,
        ``other``: for a value that is not a plain tensor (the interpreted path)."""
        self.emit(f"if type({var}) is not _T:")
        self.emit(other, 2)
        self.emit(f"s = {var}.shape")
        self.emit(f"if len(s) != {p.ndim}:")
        self.emit(fail, 2)
        if len(p.dtypes) == 1:
            self.emit(f"if {var}.dtype is not {self.const(next(iter(p.dtypes)))}:")
        else:
            self.emit(f"if {var}.dtype not in {self.const(p.dtypes)}:")
        self.emit(fail, 2)
        for i, kind, v in p.dims:
            if kind == _FIXED:
                self.emit(f"if s[{i}] != {int(v)}:")
                self.emit(fail, 2)
            else:
                d = self.dim_var.setdefault(v, f"d{len(self.dim_var)}")
                if v in self.bound:
                    self.emit(f"if s[{i}] != {d}:")
                    self.emit(fail, 2)
                else:
                    self.emit(f"{d} = s[{i}]")
                    self.bound.add(v)
                    lo, hi = self.bounds.get(v, (None, None))
                    if lo is not None or hi is not None:
                        test = [f"{d} < {int(lo)}"] * (lo is not None) + [f"{d} > {int(hi)}"] * (hi is not None)
                        self.emit(f"if {' or '.join(test)}:")
                        self.emit(fail, 2)
        if p.device is not None:
            flag = _DEVICE_FLAG.get(p.device)
            self.emit(f"if not {var}.{flag}:" if flag else f"if {var}.device.type != {p.device!r}:")
            self.emit(fail, 2)
        if p.label_dim is not None:
            self.emit(f"if s[{int(p.label_dim)}] != {int(p.nlabels)}:")
            self.emit(fail, 2)

    def finite(self, var: str, fail: str, floating: bool) -> None:
        """``var`` (a plain tensor) is finite; ``floating``: its dtype is known to be floating."""
        check = f"if not _isfinite(({var}.detach() if {var}.requires_grad else {var}).sum().item()):"
        if floating:
            self.emit(check)
            self.emit(fail, 2)
            return
        self.emit(f"if {var}.is_floating_point():")
        self.emit(check, 2)
        self.emit(fail, 3)
        self.emit(f"elif {var}.is_complex():")
        self.emit(fail, 2)


def _floating(p: _TensorPlan | None) -> bool:
    return p is not None and all(d.is_floating_point for d in p.dtypes)


def _generate(plan: CallPlan) -> tuple[Any, Any, str]:
    ns: dict[str, Any] = {"_T": torch.Tensor, "_isfinite": math.isfinite, "_finite": finite_fast}
    ns["_pre_any"], ns["_post_any"] = plan.pre_any, plan.post_any
    dim_var: dict[str, str] = {}
    checked: dict[int, _TensorPlan] = {}  # slot -> the spec it was checked against (pre)

    def read_args(w: _Writer, slots: Sequence[int], other: str) -> None:
        w.emit("n = len(args)")
        if plan.lo == plan.hi:
            w.emit(f"if kwargs or n != {plan.lo}:")
        else:
            w.emit(f"if kwargs or n < {plan.lo} or n > {plan.hi}:")
        w.emit(other, 2)
        for i in slots:
            pos, default = plan.index[i]
            if pos < plan.lo:
                w.emit(f"v{i} = args[{pos}]")
            else:
                w.emit(f"v{i} = args[{pos}] if n > {pos} else {w.const(default)}")

    # pre(args, kwargs) -> bindings | None
    w = _Writer(ns, dim_var, plan.bounds)
    other = "return _pre_any(args, kwargs)"
    w.emit("def pre(args, kwargs):", 0)
    read_args(w, range(len(plan.needed)), other)
    w.emit("try:")
    body = _Writer(ns, dim_var, plan.bounds)
    for spec, i in plan.inputs:
        body.tensor(f"v{i}", spec, "return None", other)
        checked[i] = spec
    for i in plan.pre_finite:
        if i not in checked:
            body.emit(f"if not _finite(v{i}):")
            body.emit("return None", 2)
        else:
            body.finite(f"v{i}", "return None", _floating(checked[i]))
    pre_bound = set(body.bound)
    body.emit("return [args, kwargs" + "".join(f", {dim_var[k]}" for k in plan.dim_names) + "]")
    w.lines += ["    " + line for line in body.lines]
    w.emit("except Exception:  # a strided nested tensor has no .shape; a meta tensor no .item()")
    w.emit("return None", 2)

    # post(binds, args, kwargs, result) -> bool
    v = _Writer(ns, dim_var, plan.bounds)
    other = "return _post_any(frame, result)"
    v.emit("def post(frame, result):", 0)
    outs = plan.outputs
    if outs is not None:
        if outs.n == 1:
            v.emit("o0 = result")
        else:
            v.emit(f"if type(result) is not tuple or len(result) != {outs.n}:")
            v.emit(other, 2)
            v.emit(", ".join(f"o{j}" for j in range(outs.n)) + ", = result")
    if plan.post_args:
        v.emit("args, kwargs = frame[0], frame[1]")
        read_args(v, sorted({key for kind, key in plan.post_finite if kind == _ARG}), other)
    v.emit("try:")
    body = _Writer(ns, dim_var, plan.bounds)
    body.bound = set(pre_bound)
    used = set()
    if outs is not None:
        for out in outs.tensors:
            used |= {d for _, kind, d in out.dims if kind == _NAMED and d in pre_bound}
        for k in sorted(used):
            body.emit(f"{dim_var[k]} = frame[{2 + plan.dim_names.index(k)}]")
        for j, out in enumerate(outs.tensors):
            body.tensor(f"o{j}", out, "return False", other)
    for kind, key in plan.post_finite:
        p: _TensorPlan | None = None
        if kind == _ARG:
            var = f"v{key}"
        elif kind == _OUTPUT and outs is not None:
            j = outs.names.index(key)
            var, p = f"o{j}", outs.tensors[j]
        elif outs is not None and outs.n == 1:  # the result is the one output, a plain tensor by now
            var, p = "o0", outs.tensors[0]
        else:
            body.emit("if not _finite(result):")
            body.emit("return False", 2)
            continue
        if p is None:
            body.emit(f"if not _finite({var}):")
            body.emit("return False", 2)
        else:
            body.finite(var, "return False", _floating(p))
    body.emit("return True")
    v.lines += ["    " + line for line in body.lines]
    v.emit("except Exception:")
    v.emit("return False", 2)

    source = "\n".join(w.lines) + "\n\n\n" + "\n".join(v.lines) + "\n"
    exec(compile(source, "<modpact guard plan>", "exec"), ns)  # noqa: S102 - our own code, from the spec's numbers
    return ns["pre"], ns["post"], source
