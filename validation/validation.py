"""``validate``: property-based validation of one module in isolation.

Hypothesis generates inputs from the interface's inputs (``Interface.strategy``),
inputs that break a precondition are rejected (``hypothesis.reject``), the
module runs with its own checks off, and every postcondition (the output
interface, then each ``ensures``) is checked on every example. A failure is
shrunk by Hypothesis and raised as :class:`ValidationFailure` with summaries of
the shrunk inputs, the seed and the ``@reproduce_failure`` blob.

Batched evaluation: when every input and output starts with the same named
dim (``batch``), up to ``group`` (default 64) generated examples (same other
dims, own batch sizes) run in one forward. Where every check passing on the
whole group implies it passes on each example (``_whole.py``: the interface,
``finite``, ``in_range``... and no preconditions), the group is checked once as
a whole; otherwise, or when the whole check fails, the output is split back per
example and each is checked. A failure found in a batch is re-run alone before
it is reported; if it passes alone the module mixes rows across the batch, and
that is what is reported.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from modpact.contracts.condition import Domain
from modpact.contracts.target import REJECTED, ExtraContracts, Target
from modpact.errors import ContractError, ContractViolation, SpecError, ValidationFailure
from modpact.interfaces.batches import read_batches
from modpact.interfaces.interface import Interface
from modpact.interfaces.spec import TensorSpec
from modpact.interfaces.strategies import MAX_SIDE, InputsPlan, draw_dims, require_hypothesis
from modpact.interfaces.summary import summarize

from ._whole import whole_checkable, whole_safe_now
from .preserve import Preserved
from .testing import default_examples

__all__ = ["validate", "ValidationResult", "batch_dim_of", "run_hypothesis", "DEFAULT_GROUP"]

#: generated examples evaluated together in one forward when the interface has a batch dim
DEFAULT_GROUP = 64


@dataclass
class ValidationResult:
    """Figures of a validation run that found nothing.

    ``examples``: generated inputs checked (precondition rejections excluded);
    ``rejected``: generated inputs a precondition rejected; ``test_cases``:
    Hypothesis examples (one forward each when batched); ``forwards``: module
    calls (relational conditions add their own re-runs); ``passes``: check ->
    examples that passed it; ``seconds``; ``seed``; ``batched`` and ``group``;
    ``restored``: the state the forwards changed (buffers, parameters,
    train/eval mode), put back before each example and at the end
    (:mod:`modpact.validation.preserve`); ``outside_domain``: check ->
    examples it was not applied to because their inputs lay outside the
    domain the condition claims (an inferred envelope's reference inputs);
    ``data_examples``: real batches from ``data=`` checked (``passes`` counts both).
    """

    module: str
    interface: str
    examples: int = 0
    rejected: int = 0
    test_cases: int = 0
    forwards: int = 0
    seconds: float = 0.0
    passes: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    batched: bool = False
    group: int = 1
    restored: list[str] = field(default_factory=list)
    outside_domain: dict[str, int] = field(default_factory=dict)
    data_examples: int = 0  # real batches from ``data=`` checked (``examples`` counts generated ones)

    @property
    def ok(self) -> bool:
        return True

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        real = f"{self.data_examples} real batches (data) and " if self.data_examples else ""
        gen = "generated examples" if self.data_examples else "examples"
        lines = [
            f"validate({self.module}) against {self.interface!r}: {real}{self.examples} {gen} passed "
            f"({self.rejected} rejected by preconditions, {self.forwards} forwards"
            f"{', batched' if self.batched else ''}, {self.seconds:.2f} s, seed={self.seed})"
        ]
        lines += [
            f"  {name}: {n} passed"
            + (
                f", {self.outside_domain[name]} outside its domain (not checked)"
                if self.outside_domain.get(name)
                else ""
            )
            for name, n in self.passes.items()
        ]
        if self.restored:
            lines.append(f"  changed by the forwards and restored: {', '.join(self.restored)}")
        return "\n".join(lines)


def batch_dim_of(interface: Any) -> str | None:
    """The named dim every input and output starts with (and that appears nowhere else), or None.
    None too when an input or output is nested (a tuple, a mapping, an optional or opaque value):
    such values are not concatenated and cut back along a batch dim."""
    specs = list(interface.inputs.values()) + list(interface.outputs.values())
    if not all(isinstance(s, TensorSpec) for s in specs):
        return None
    names = set()
    for s in specs:
        if not s.shape or s.shape[0].kind != "named" or s.shape[0].variadic or s.shape[0].broadcast:
            return None
        names.add(s.shape[0].name)
    if len(names) != 1:
        return None
    name = names.pop()
    for s in specs:
        rest = [d for d in s.shape[1:]]
        if any(d.name == name or (d.kind == "expr" and name in (d.name or "")) for d in rest):
            return None
    return name


class _Found(Exception):
    """A failing example (raised inside Hypothesis so that it shrinks it)."""

    def __init__(
        self,
        check: str,
        violation: ContractViolation | None,
        inputs: Mapping[str, Any],
        note: str = "",
        blame: str | None = None,
        blame_reason: str | None = None,
    ):
        super().__init__(f"{check} failed")
        self.check, self.violation, self.inputs, self.note = check, violation, dict(inputs), note
        self.blame, self.blame_reason = blame, blame_reason
        self.headline: str | None = None
        # set by run_hypothesis when the example comes back shrunk
        self.seed: int | None = None
        self.reproduce: str | None = None


def run_hypothesis(
    body: Callable[[Any], None],
    strategy: Any,
    *,
    max_examples: int,
    seed: int | None,
    what: str,
    reproduce: str | None = None,
) -> int:
    """Run ``body(example)`` on ``max_examples`` draws of ``strategy``. Returns the seed; a
    :class:`_Found` raised by ``body`` comes back shrunk, with ``reproduce`` set."""
    require_hypothesis(what)
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import FailedHealthCheck, Unsatisfiable

    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise SpecError(f"{what}(max_examples={max_examples!r}): expected a positive int")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SpecError(f"{what}(seed={seed!r}): expected an int or None")
    # not from `random`: validation restores the global generators, so they would give the same seed each run
    seed = secrets.randbits(32) if seed is None else seed
    test = given(strategy)(lambda example: body(example))
    test = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        report_multiple_bugs=False,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no "explain": it re-runs ~100 times
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(test)
    test = hseed(seed)(test)
    if reproduce is not None:
        test = _reproducing(test, reproduce, what)
    try:
        test()
    except _Found as found:
        notes = " ".join(getattr(found, "__notes__", []))
        m = re.search(r"@reproduce_failure\([^)]*\)", notes)
        blob = m.group(0) if m else None
        found.reproduce = blob
        found.seed = seed
        raise
    except (Unsatisfiable, FailedHealthCheck) as e:
        if isinstance(e, FailedHealthCheck) and "filter" not in str(e):
            raise
        raise SpecError(
            f"{what}: the preconditions rejected (nearly) every generated input, so nothing was "
            f"validated; loosen the requires(...) conditions or tighten the interface's inputs "
            f"so that generated inputs satisfy them ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    return seed


def _reproducing(test: Any, reproduce: str, what: str) -> Any:
    """Apply ``@reproduce_failure(version, blob)`` given as the text a failure printed."""
    import ast

    from hypothesis import reproduce_failure

    m = re.fullmatch(
        r"\s*@?reproduce_failure\(\s*('[^']*'|\"[^\"]*\")\s*,\s*(b'[^']*'|b\"[^\"]*\")\s*\)\s*",
        reproduce if isinstance(reproduce, str) else "",
    )
    if not m:
        raise SpecError(
            f"{what}(reproduce={reproduce!r}): expected the text a failure printed, "
            "e.g. \"@reproduce_failure('6.170.15', b'AXic...')\""
        )
    return reproduce_failure(ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2)))(test)


def _cat(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([e[k] for e in examples], 0) for k in examples[0]}


def _split(result: Any, sizes: list[int]) -> list[Any] | None:
    """The batched result cut back per example, or None when it is not cut along dim 0."""
    total = sum(sizes)
    if isinstance(result, torch.Tensor):
        if result.dim() == 0 or result.shape[0] != total:
            return None
        return list(result.split(sizes, 0))
    if isinstance(result, (tuple, list)):
        cuts = [_split(r, sizes) for r in result]
        parts = [p for p in cuts if p is not None]
        if len(parts) < len(cuts):
            return None
        return [type(result)(p[i] for p in parts) for i in range(len(sizes))]
    if isinstance(result, Mapping):
        cuts_by_key = {k: _split(v, sizes) for k, v in result.items()}
        parts_by_key = {k: p for k, p in cuts_by_key.items() if p is not None}
        if len(parts_by_key) < len(cuts_by_key):
            return None
        return [{k: p[i] for k, p in parts_by_key.items()} for i in range(len(sizes))]
    return None


def call_or_found(target: Target, inputs: Mapping[str, Any]) -> Any:
    """Run the target; an exception on inputs that met its preconditions is its failure."""
    try:
        return target.call(inputs)
    except Exception as e:
        found = _Found(
            "raises no exception", None, inputs, blame=target.name, blame_reason="its inputs and preconditions held"
        )
        found.headline = f"{target.name} raised {type(e).__name__}: {e}"
        raise found from e


def pre_or_found(target: Target, inputs: Mapping[str, Any]) -> Any:
    """The target's env (or REJECTED); a precondition that cannot be evaluated is a failure."""
    try:
        return target.pre(inputs)
    except ContractError as e:
        raise _Found(e.contract or "precondition", e, inputs) from None


def applied_checks(
    target: Target, env: dict[str, Any], result: Any
) -> tuple[list[tuple[str, ContractViolation | None]], list[str]]:
    """``target.post`` without the postconditions whose domain the inputs lie
    outside (``Condition.in_domain``): (the checks applied, the names of those not applied)."""
    checks = target.post(env, result)
    applied, skipped = checks[:1], []
    for (name, violation), c in zip(checks[1:], target.guard.ensures):
        try:
            inside = c.in_domain(env)
        except Exception:  # the check itself reports what is wrong with its arguments
            inside = True
        if inside:
            applied.append((name, violation))
        else:
            skipped.append(name)
    return applied, skipped


def input_domains(target: Target) -> dict[str, Domain]:
    """Interface input name -> the domain the target's postconditions claim for it
    (the first one given; an inferred module's envelopes share one per input)."""
    names = list(target.interface.inputs)
    probes = {k: torch.empty(i) for i, k in enumerate(names)}  # told apart by their size
    by_arg = {arg: names[t.numel()] for arg, t in target.kwargs(probes).items()}  # argument -> input name
    out: dict[str, Domain] = {}
    for c in target.guard.ensures:
        for arg, d in (c.domain or {}).items():
            name = by_arg.get(arg)
            if name is not None and name not in out and d.rows.shape[0] > 0:
                out[name] = d
    return out


def draw_inside(draw: Any, domains: Mapping[str, Domain], rows: int, device: Any) -> dict[str, torch.Tensor]:
    """``rows`` rows per input, each a reference row of its domain moved by less
    than the domain's radius per element (rows and offsets from one drawn seed)."""
    from hypothesis import strategies as st

    out = {}
    for name, d in domains.items():
        n = int(d.rows.shape[0])
        seed = draw(st.integers(0, 2**31 - 1), label=f"{name}: rows and offsets (seed)")
        gen = torch.Generator().manual_seed(seed)
        ref = d.rows[torch.randint(0, n, (rows,), generator=gen)]
        noise = torch.rand(ref.shape, generator=gen, dtype=torch.float64) * 2 - 1
        moved = (ref.double() + 0.99 * noise * d.radius.double()).to(ref.dtype)
        out[name] = moved.to(device) if device is not None else moved
    return out


def draw_sizes(draw: Any, bdim: str, lo: int, hi: int, k: int) -> list[int]:
    """The batch sizes of ``k`` examples: one drawn size for all (shrinks to ``lo``), or, a
    drawn choice, sizes from a drawn seed (a few draws, however many examples)."""
    from hypothesis import strategies as st

    size = lo if lo == hi else draw(st.integers(lo, hi), label=bdim)
    if k == 1 or lo == hi or not draw(st.booleans(), label=f"{bdim} varies across the examples"):
        return [size] * k
    seed = draw(st.integers(0, 2**32 - 1), label=f"{bdim} sizes (seed)")
    return torch.randint(lo, hi + 1, (k,), generator=torch.Generator().manual_seed(seed)).tolist()


class _Runner:
    """Evaluates groups of generated examples against a Target and counts."""

    def __init__(self, target: Target, result: ValidationResult, keep: Preserved):
        self.target, self.result, self.keep = target, result, keep
        self.whole = whole_checkable(target)  # _whole.py: when a group may be checked as one input

    def single(self, inputs: dict[str, torch.Tensor], env: dict[str, Any]) -> None:
        self.keep.reset()
        self.result.forwards += 1
        self._check(inputs, env, call_or_found(self.target, inputs))

    def real(self, inputs: dict[str, Any], index: int) -> None:
        """One real batch from ``data=``, checked as it is (never shrunk)."""
        t = self.target
        where = f"data batch {index}"
        env = t.pre_checked(inputs)
        if isinstance(env, ContractViolation):
            raise _data_failure(t, env, inputs, where, blame=f"the input data ({where})", pre=True)
        self.keep.reset()
        self.result.forwards += 1
        try:
            out = t.call(inputs)
        except Exception as e:
            err = ValidationFailure(
                f"validate({t.name}): {t.name} raised {type(e).__name__} on {where}: {str(e)[:300]}",
                module=t.name,
                blame=t.name,
                blame_reason="its inputs and preconditions held",
                values={f"{where}.{k}": summarize(v) for k, v in inputs.items()},
            )
            err.violation, err.result, err.inputs = None, self.result, inputs
            raise err from e
        checks, skipped = applied_checks(t, env, out)
        bad = next(((name, v) for name, v in checks if v is not None), None)
        if bad is not None:
            assert bad[1] is not None  # bad holds a violation
            raise _data_failure(t, bad[1], inputs, where, blame=None, pre=False)
        self.result.data_examples += 1
        for name, _ in checks:
            self.result.passes[name] = self.result.passes.get(name, 0) + 1
        for name in skipped:
            self.result.outside_domain[name] = self.result.outside_domain.get(name, 0) + 1

    def _check(self, inputs, env, out, in_batch: bool = False) -> bool:
        checks, skipped = applied_checks(self.target, env, out)
        bad = next(((name, v) for name, v in checks if v is not None), None)
        if bad is None:
            self.result.examples += 1
            for name, _ in checks:
                self.result.passes[name] = self.result.passes.get(name, 0) + 1
            for name in skipped:
                self.result.outside_domain[name] = self.result.outside_domain.get(name, 0) + 1
            return True
        if in_batch:
            return False
        raise _Found(bad[0], bad[1], inputs)

    def group(self, group: list[dict[str, torch.Tensor]]) -> None:
        self.result.test_cases += 1
        if len(group) > 1 and self.whole and self._whole(group):
            return
        accepted = []
        for inputs in group:
            env = pre_or_found(self.target, inputs)
            if env is REJECTED:
                self.result.rejected += 1
            else:
                accepted.append((inputs, env))
        if not accepted:
            from hypothesis import reject

            reject()
        if len(accepted) == 1:
            self.single(*accepted[0])
            return
        examples = [i for i, _ in accepted]
        self.keep.reset()
        self.result.forwards += 1
        try:
            out = self.target.call(_cat(examples))
        except Exception:  # find the input that makes it raise, alone
            out = None
        parts = None if out is None else _split(out, [next(iter(e.values())).shape[0] for e in examples])
        if parts is None:  # raised, or the output is not cut along the batch dim: check one by one
            for inputs, env in accepted:
                self.single(inputs, env)
            return
        for (inputs, env), part in zip(accepted, parts):
            if not self._check(inputs, env, part, in_batch=True):
                self._confirm_alone(inputs, accepted, part)

    def _whole(self, group: list[dict[str, torch.Tensor]]) -> bool:
        """Check the group as one input (its inputs concatenated, one forward): True when every
        check held on the whole, so on each input (``_whole.py``). False when something failed,
        raised or was not cut per input: the caller then checks input by input and reports one."""
        whole = _cat(group)
        env = self.target.pre(whole)
        if env is REJECTED:
            return False
        assert isinstance(env, dict)  # not REJECTED
        self.keep.reset()
        self.result.forwards += 1
        try:
            out = self.target.call(whole)
        except Exception:
            return False
        if _split(out, [next(iter(e.values())).shape[0] for e in group]) is None:
            return False
        checks, skipped = applied_checks(self.target, env, out)
        if skipped or any(v is not None for _, v in checks) or not whole_safe_now(self.target, env):
            return False
        self.result.examples += len(group)
        for name, _ in checks:
            self.result.passes[name] = self.result.passes.get(name, 0) + len(group)
        return True

    def _confirm_alone(self, inputs, accepted, part) -> None:
        env = self.target.pre(inputs)
        assert isinstance(env, dict)  # not REJECTED: these inputs were accepted before
        self.keep.reset()
        self.result.forwards += 1
        checks, _ = applied_checks(self.target, env, call_or_found(self.target, inputs))
        bad = next(((name, v) for name, v in checks if v is not None), None)
        if bad is not None:  # fails alone too: report the exact violation
            raise _Found(bad[0], bad[1], inputs)
        raise _Found(
            "batch independence",
            None,
            inputs,
            blame=self.target.name,
            blame_reason="its output rows depend on other rows",
            note=(
                f"this example passes alone but fails when evaluated in one forward with {len(accepted) - 1} other "
                f"generated example(s): the output rows depend on other rows of the batch (not batch-independent); "
                f"validate with batch=False if that is intended"
            ),
        )


def validate(
    module: nn.Module | Callable[..., Any],
    interface: Interface | None = None,
    contracts: ExtraContracts | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    *,
    batch: bool | None = None,
    group: int = DEFAULT_GROUP,
    dims: Mapping[str, Any] | None = None,
    max_side: int = MAX_SIDE,
    reproduce: str | None = None,
    data: Any = None,
) -> ValidationResult:
    """Validate ``module`` against its interface and postconditions on generated inputs.

    ``interface`` and the conditions default to the module's guard (``mp.guard``
    / ``@contract``); ``contracts`` adds postconditions (a list) or
    ``{"requires": [...], "ensures": [...]}``. ``max_examples`` (default 100, or
    ``--modpact-examples`` under pytest) Hypothesis
    examples are run; with ``batch`` (default: when the interface has a batch
    dim) each evaluates up to ``group`` generated inputs in one forward.
    Returns a :class:`ValidationResult`; raises :class:`ValidationFailure` with
    the shrunk counterexample, or ``SpecError`` when nothing can be generated.
    ``reproduce``: the ``@reproduce_failure(...)`` text of a failure, to replay
    exactly that counterexample (same modpact and Hypothesis versions, same arguments).
    ``data``: real batches (read by :mod:`modpact.interfaces.batches`: a tensor, an
    (inputs, labels) pair whose labels are not passed, a dict batch passed as keywords,
    or an iterable of those) checked first, each as it is: a batch that breaks the input
    interface or a precondition fails (blaming the data), and so does one whose outputs
    break a postcondition (blaming the module); ``result.data_examples`` counts them.
    """
    __tracebackhide__ = True
    require_hypothesis("modpact.validate")
    from hypothesis import strategies as st

    max_examples = default_examples() if max_examples is None else max_examples
    target = Target(module, interface, contracts, what="validate")
    iface = target.interface
    bdim = batch_dim_of(iface)
    if batch and bdim is None:
        raise SpecError(
            f"validate(batch=True): interface {iface.name!r} has no batch dim (every input and output "
            "starting with the same named dim) to evaluate several examples in one forward"
        )
    use_batch = bdim is not None and batch is not False
    cap = iface.dims.get(bdim, (None, None))[1] if bdim is not None else None  # Interface(dims=...) bound
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise SpecError(f"validate(group={group!r}): expected a positive int")
    plan = InputsPlan(iface.inputs, dims, device, max_side, declared=iface.dims)
    domains = input_domains(target)
    # when every input has one, half of the examples (a drawn choice) are generated inside the domain
    # the postconditions claim (near inferred envelopes' reference rows), so that those are checked too
    inner = bool(domains) and set(domains) == set(iface.inputs)
    res = ValidationResult(
        module=target.name,
        interface=iface.name,
        batched=use_batch,
        group=group if use_batch else 1,
        passes={c: 0 for c in target.checks},
    )

    @st.composite
    def groups(draw):
        inside = inner and draw(st.booleans(), label="inside the postconditions' domain")
        if inside and not use_batch:
            return [draw_inside(draw, domains, draw(st.integers(1, 8), label="rows"), device)]
        bound = draw_dims(draw, plan.dims)
        if not use_batch:
            return [plan.draw(draw, bound)]
        assert bdim is not None  # use_batch
        lo, hi = plan.dims.bounds[bdim]
        sizes = draw_sizes(draw, bdim, lo, hi, draw(st.integers(1, group), label="examples in this forward"))
        if cap is not None:  # a forward never carries more rows than the interface allows the batch dim
            sizes = sizes[: max(1, sum(1 for total in itertools.accumulate(sizes) if total <= cap))]
        # one draw per input for the whole group (cheaper than k draws), cut into examples
        if inside:
            whole = draw_inside(draw, domains, sum(sizes), device)
        else:
            whole = plan.draw(draw, {**bound, bdim: sum(sizes)})
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return [{n: t.narrow(0, a, b) for n, t in whole.items()} for a, b in zip(starts, sizes)]

    start = time.perf_counter()
    with Preserved([module]) as keep:
        runner = _Runner(target, res, keep)
        if data is not None:
            names = list(iface.inputs)
            for b in read_batches(data, "validate"):
                runner.real(b.named(names, "validate"), b.index)
            if not res.data_examples:
                raise SpecError("validate(data=...): the data gave no batches")
        try:
            res.seed = run_hypothesis(
                runner.group, groups(), max_examples=max_examples, seed=seed, what="validate", reproduce=reproduce
            )
        except _Found as found:
            raise _failure(f"validate({target.name})", found, iface.name) from None
    res.restored = sorted(keep.changed)
    res.seconds = time.perf_counter() - start
    return res


def _data_failure(
    target: Target, v: ContractViolation, inputs: Mapping[str, Any], where: str, blame: str | None, pre: bool
) -> ValidationFailure:
    """A violation on a real batch from ``data=``: the data breaks the input interface or a
    precondition (``pre``, blaming the data), or the module breaks a postcondition on it."""
    what = "breaks the input interface or a precondition" if pre else "gives outputs that break a postcondition"
    head = f"validate({target.name}): {where} {what}: {v.headline}"
    err = ValidationFailure(
        head,
        module=v.module,
        blame=blame or v.blame,
        blame_reason=(f"{where} does not satisfy {target.name}'s input contract" if pre else v.blame_reason),
        contract=v.contract,
        expected=v.expected,
        actual=v.actual,
        values={**{f"{where}.{k}": summarize(t) for k, t in inputs.items()}, **v.values},
        evidence=dict(v.evidence),
        bindings=v.bindings,
        declared_at=v.declared_at,
        problems=v.problems,
        side=v.side,
    )
    err.violation = v
    err.result = None
    err.inputs = dict(inputs)
    return err


def _failure(
    call: str, found: _Found, iface_name: str, result: Any = None, headline: str | None = None
) -> ValidationFailure:
    v = found.violation
    inputs = {f"generated inputs.{k}": summarize(t) for k, t in found.inputs.items()}
    evidence: dict[str, Any] = {}
    if found.note:
        evidence["note"] = found.note
    if v is not None:
        evidence.update(v.evidence)
    evidence["seed"] = f"{found.seed} (pass seed={found.seed} to reproduce)"
    if getattr(found, "reproduce", None):
        evidence["reproduce"] = found.reproduce
    head = headline or (
        f"{call}: {v.headline}"
        if v is not None
        else f"{call}: {found.headline}"
        if found.headline
        else f"{call}: {found.check} failed"
    )
    err = ValidationFailure(
        head + " (on a generated example, shrunk)",
        module=getattr(v, "module", None),
        blame=getattr(v, "blame", found.blame),
        blame_reason=getattr(v, "blame_reason", found.blame_reason),
        contract=getattr(v, "contract", None) or found.check,
        expected=getattr(v, "expected", None),
        actual=getattr(v, "actual", None),
        values={**inputs, **(v.values if v is not None else {})},
        evidence=evidence,
        bindings=getattr(v, "bindings", None),
        declared_at=getattr(v, "declared_at", None),
        problems=getattr(v, "problems", ()),
        side=getattr(v, "side", None),
    )
    err.violation = v
    err.result = result
    err.inputs = found.inputs
    return err
