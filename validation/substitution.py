"""``check_substitutable(original, replacement)``: the replacement's interface
must be a subtype of the original's (``Interface.is_substitutable_for``), its
outputs must satisfy the original's output interface, and it must agree with
the original, elementwise within ``tolerance`` or by top-1 agreement rate
(classifiers), on generated inputs and on a given dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from modpact.contracts.target import REJECTED, Target, existing_guard
from modpact.errors import CompatibilityError, SpecError, ValidationFailure
from modpact.interfaces.batches import read_batches
from modpact.interfaces.interface import Interface
from modpact.interfaces.nested import DictSpec, ListSpec, OpaqueSpec, OptionalSpec, TupleSpec
from modpact.interfaces.spec import TensorSpec
from modpact.interfaces.strategies import MAX_SIDE, interface_inputs, require_hypothesis
from modpact.interfaces.summary import summarize

from .preserve import Preserved
from .testing import default_examples
from .validation import _failure, _Found, applied_checks, call_or_found, pre_or_found, run_hypothesis

__all__ = ["check_substitutable", "SubstitutionResult", "Agreement"]


@dataclass
class Agreement:
    """Agreement figures on one source of inputs (generated, or the dataset)."""

    examples: int = 0  # batches (generated examples) compared
    rows: int = 0  # rows compared (top-1 mode)
    agreeing_rows: int = 0
    elements: int = 0  # elements compared (elementwise mode)
    agreeing_elements: int = 0
    max_abs_diff: float = 0.0
    per_class: dict[int, tuple[int, int]] = field(default_factory=dict)  # original's class -> (agreeing, rows)
    accuracy_original: float | None = None  # on labelled data
    accuracy_replacement: float | None = None
    #: batches whose outputs differed in structure, shape, or an opaque part's given comparison
    mismatches: list[str] = field(default_factory=list)

    @property
    def top1_agreement(self) -> float | None:
        return self.agreeing_rows / self.rows if self.rows else None

    @property
    def elementwise_agreement(self) -> float | None:
        return self.agreeing_elements / self.elements if self.elements else None

    def worst_classes(self, n: int = 3, labels: Any = None) -> list[str]:
        """The ``n`` classes (of the original's predictions) with the lowest agreement;
        ``labels`` (a LabelSpace) adds each class's label when it differs from the index."""
        rates = sorted((a / r, c, a, r) for c, (a, r) in self.per_class.items() if r and a < r)
        out = []
        for _, c, a, r in rates[:n]:
            name = labels.labels[c] if labels is not None and c < len(labels) else None
            shown = f"class {c}" + (f" ({name!r})" if name is not None and name != str(c) else "")
            out.append(f"{shown}: {a}/{r} rows agree")
        return out


@dataclass
class SubstitutionResult:
    """What ``check_substitutable`` measured. ``ok`` is False only when it was
    called with ``raise_on_failure=False``; ``failures`` says why."""

    original: str
    replacement: str
    mode: Literal["elementwise", "top1"]
    tolerance: float | None
    top1: float | None
    generated: Agreement = field(default_factory=Agreement)
    data: Agreement | None = None
    compatibility: Any = None
    failures: list[str] = field(default_factory=list)
    seed: int | None = None
    restored: list[str] = field(default_factory=list)  # state the forwards changed, put back (preserve.py)
    #: opaque output parts (a cache) no comparison was given for: not compared, so not shown to agree
    not_compared: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        head = f"{self.replacement} {'can' if self.ok else 'cannot'} replace {self.original} ({self.mode}"
        head += f", tolerance {self.tolerance})" if self.mode == "elementwise" else f", top-1 >= {self.top1})"
        lines = [head]
        for label, ag in (("generated", self.generated), ("data", self.data)):
            if ag is None:
                continue
            if self.mode == "top1":
                rate = ag.top1_agreement
                lines.append(f"  {label}: top-1 agreement {rate if rate is None else round(rate, 4)} on {ag.rows} rows")
            else:
                lines.append(f"  {label}: {ag.examples} batches, max |diff| {ag.max_abs_diff:.3g}")
            if ag.accuracy_original is not None:
                lines.append(
                    f"  {label}: accuracy original {ag.accuracy_original:.4f}, "
                    f"replacement {ag.accuracy_replacement:.4f}"
                )
        if self.not_compared:
            lines.append(
                f"  not compared (opaque; give compare={{path: fn}} to compare them): {', '.join(self.not_compared)}"
            )
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


#: a part of an output, by path: ("tensor", t), ("opaque", obj) (compared only with a given
#: comparison), ("none", None) (an optional value that is None), or ("other", v) (not what the
#: interface says: the two sides are compared by structure only)
Part = tuple[str, Any]


def _outputs(target: Target, result: Any) -> list[tuple[str, Part]]:
    """Every part of ``result`` by path (``outputs.state[1]``), walked along the
    original's output specs: tensors, opaque values and Nones, in order."""
    named = target.guard.named_outputs(result)
    if not named:
        ts = [result] if isinstance(result, torch.Tensor) else [t for t in result if isinstance(t, torch.Tensor)]
        return [(f"outputs[{i}]", ("tensor", t)) for i, t in enumerate(ts)]
    specs = target.interface.outputs if target.interface is not None else {}
    out: list[tuple[str, Part]] = []
    for k, v in named.items():
        _walk(specs.get(k), v, f"outputs.{k}", out)
    return out


def _walk(spec: Any, v: Any, path: str, out: list[tuple[str, Part]]) -> None:
    if isinstance(v, torch.Tensor):
        out.append((path, ("tensor", v)))
    elif v is None:
        out.append((path, ("none", None)))
    elif isinstance(spec, OptionalSpec):
        _walk(spec.inner, v, path, out)
    elif isinstance(spec, OpaqueSpec):
        out.append((path, ("opaque", v)))
    elif isinstance(spec, (TupleSpec, ListSpec)) and isinstance(v, (tuple, list)):
        for i, x in enumerate(v):
            _walk(spec.items[i] if i < len(spec.items) else None, x, f"{path}[{i}]", out)
    elif isinstance(spec, DictSpec) and (fields := spec.fields_of(v)) is not None:
        for k, x in fields.items():
            _walk(spec.fields.get(k), x, f"{path}.{k}", out)
    else:
        out.append((path, ("other", v)))


def _tensors(parts: list[tuple[str, Part]]) -> list[torch.Tensor]:
    return [p[1] for _, p in parts if p[0] == "tensor"]


def _label_dim(iface: Any) -> int:
    spec = next(iter(iface.outputs.values()))
    return spec.label_dim if isinstance(spec, TensorSpec) and spec.labels is not None else -1


def _compare(
    a: list[tuple[str, Part]],
    b: list[tuple[str, Part]],
    mode: str,
    tol: float | None,
    label_dim: int,
    ag: Agreement,
    compare: Mapping[str, Callable[[Any, Any], Any]] | None = None,
    not_compared: set[str] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Accumulate agreement of one batch into ``ag``; (all agree, evidence of the first
    disagreement, naming every differing leaf by its path)."""
    ag.examples += 1
    if [p for p, _ in a] != [p for p, _ in b]:
        return False, {
            "structure": "the outputs have different parts",
            "original": ", ".join(p for p, _ in a),
            "replacement": ", ".join(p for p, _ in b),
        }
    shapes = [
        (p, x, y)
        for (p, (kx, x)), (_, (ky, y)) in zip(a, b)
        if kx == ky == "tensor" and (x.shape != y.shape or x.dtype.is_complex != y.dtype.is_complex)
    ]
    if shapes:
        return False, {
            "differing": ", ".join(p for p, _, _ in shapes),
            "at": shapes[0][0],
            "expected": summarize(shapes[0][1]),
            "actual": summarize(shapes[0][2]),
        }
    if mode == "top1":
        x, y = _tensors(a)[0].detach(), _tensors(b)[0].detach()
        pa, pb = x.argmax(label_dim), y.argmax(label_dim)
        same = pa == pb
        ag.rows += same.numel()
        ag.agreeing_rows += int(same.sum())
        for c in pa.unique().tolist():
            sel = pa == c
            good, rows = ag.per_class.get(c, (0, 0))
            ag.per_class[c] = (good + int(same[sel].sum()), rows + int(sel.sum()))
        if bool(same.all()):
            return True, {}
        idx = tuple(int(i) for i in (~same).nonzero()[0])
        return False, {
            "disagreeing_rows": int((~same).sum()),
            "of": same.numel(),
            "first_row": idx,
            "original_class": int(pa[idx]),
            "replacement_class": int(pb[idx]),
        }
    assert tol is not None  # the elementwise mode has a tolerance
    ev: dict[str, Any] = {}
    differing: list[str] = []
    for (path, (kind, x)), (_, (kind_b, y)) in zip(a, b):
        if kind != kind_b:
            differing.append(path)
            ev = ev or {"at": path, "original": kind, "replacement": kind_b}
            continue
        if kind == "none":
            continue
        if kind != "tensor":  # opaque (or unexpected) parts: only with the user's comparison
            fn = (compare or {}).get(path)
            if fn is None:
                if not_compared is not None:
                    not_compared.add(path)
                continue
            try:
                same = fn(x, y)
            except Exception as e:
                raise SpecError(
                    f"check_substitutable(compare={{{path!r}: ...}}): the comparison raised {type(e).__name__}: {e}"
                ) from e
            if not isinstance(same, bool):
                raise SpecError(
                    f"check_substitutable(compare={{{path!r}: ...}}): the comparison returned "
                    f"{type(same).__name__}; expected True or False"
                )
            if not same:
                differing.append(path)
                ev = ev or {"at": path, "comparison": "the given comparison returned False"}
            continue
        x, y = x.detach(), y.detach().to(x.dtype)
        close = torch.isclose(x, y, rtol=tol, atol=tol, equal_nan=True)
        ag.elements += close.numel()
        ag.agreeing_elements += int(close.sum())
        if x.numel() and (x.is_floating_point() or x.is_complex()):
            d = (x.double() - y.double()).abs()
            d = d[~(torch.isnan(x) & torch.isnan(y))]
            if d.numel():
                ag.max_abs_diff = max(ag.max_abs_diff, float(d.max()))
        if not bool(close.all()):
            differing.append(path)
            if not ev:
                idx = tuple(int(i) for i in (~close).nonzero()[0])
                ev = {
                    "at": path,
                    "failing": int((~close).sum()),
                    "of": close.numel(),
                    "first_index": idx,
                    "original_value": float(x[idx]),
                    "replacement_value": float(y[idx]),
                }
    if differing:
        ev = {"differing": ", ".join(differing), **ev}
    return not differing, ev


def check_substitutable(
    original: nn.Module | Callable[..., Any],
    replacement: nn.Module | Callable[..., Any],
    interface: Interface | None = None,
    tolerance: float | None = None,
    data: Any = None,
    max_examples: int | None = None,
    *,
    top1: float | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    replacement_interface: Interface | None = None,
    raise_on_failure: bool = True,
    max_side: int = MAX_SIDE,
    compare: Mapping[str, Callable[[Any, Any], bool]] | None = None,
) -> SubstitutionResult:
    """Can ``replacement`` stand in for ``original``?

    1. Subtyping: the replacement's interface (``replacement_interface``, its
       guard's, else the original's) must be substitutable for the original's
       (contravariant inputs, covariant outputs); otherwise CompatibilityError.
    2. On ``max_examples`` inputs generated from the original's input interface,
       the replacement's outputs must satisfy the original's output interface and
       agree with the original's: elementwise within ``tolerance`` (default
       1e-5), or, with ``top1`` (a fraction), by the same argmax along the label
       dim on at least that fraction of all generated rows. Nested outputs
       (tuples, lists, dicts, ``ModelOutput``) are compared leaf by leaf, and
       a disagreement names the path of every differing leaf
       (``outputs.result1[0]``); an opaque part (a cache) is compared only by
       ``compare={"outputs.cache": fn}`` (``fn(original_part, replacement_part)``
       returns True or False), otherwise listed in ``result.not_compared``.
    3. On ``data`` (read by :mod:`modpact.interfaces.batches`: a tensor, an
       (inputs, labels) pair, a dict batch passed as keywords, or an iterable
       of those such as a DataLoader), the same agreement; with integer
       labels the accuracy of both is reported.

    Neither module is changed: parameters, buffers, train/eval modes and the
    random generators are restored before each example and at the end
    (``result.restored`` names what the forwards had changed).

    Returns a :class:`SubstitutionResult` (agreement figures). On failure raises
    :class:`ValidationFailure` (``.result`` holds the figures), or with
    ``raise_on_failure=False`` returns the result with ``ok == False``.
    """
    __tracebackhide__ = True
    require_hypothesis("modpact.check_substitutable")
    max_examples = default_examples() if max_examples is None else max_examples
    if tolerance is not None and (
        isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0
    ):
        raise SpecError(f"check_substitutable(tolerance={tolerance!r}): expected a non-negative number")
    if top1 is not None and (isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0 <= top1 <= 1):
        raise SpecError(f"check_substitutable(top1={top1!r}): expected a fraction in [0, 1]")
    if top1 is not None and tolerance is not None:
        raise SpecError("check_substitutable: pass tolerance= (elementwise) or top1= (classifiers), not both")
    mode: Literal["elementwise", "top1"] = "top1" if top1 is not None else "elementwise"
    tol = None if mode == "top1" else (1e-5 if tolerance is None else float(tolerance))
    orig = Target(original, interface, what="check_substitutable")
    iface = orig.interface
    if compare is not None and (
        not isinstance(compare, Mapping) or not all(isinstance(k, str) and callable(f) for k, f in compare.items())
    ):
        raise SpecError(
            f"check_substitutable(compare={compare!r}): expected a dict of output path "
            "(like 'outputs.cache') -> a function (original_part, replacement_part) -> bool"
        )
    if mode == "top1" and not isinstance(next(iter(iface.outputs.values()), None), TensorSpec):
        raise SpecError(
            f"check_substitutable(top1=...): the first output of interface {iface.name!r} is not a tensor; "
            "top-1 agreement reads the scores of a tensor output"
        )
    not_compared: set[str] = set()
    repl_iface = replacement_interface or getattr(existing_guard(replacement), "interface", None) or iface
    repl = Target(replacement, repl_iface, name=_name(replacement), what="check_substitutable")
    compat = repl_iface.is_substitutable_for(iface)
    if not compat.ok:
        raise CompatibilityError(
            f"check_substitutable: {repl.name}'s interface {repl_iface.name!r} cannot replace "
            f"{orig.name}'s {iface.name!r}",
            compat.reasons,
        )
    res = SubstitutionResult(orig.name, repl.name, mode, tol, top1, compatibility=compat)
    ldim = _label_dim(iface)
    first = next(iter(iface.outputs.values()), None)
    labels = first.labels if isinstance(first, TensorSpec) else None
    # the replacement's outputs are checked against the original's output interface
    checker = Target(replacement, iface, name=repl.name, what="check_substitutable")

    def body(inputs):
        keep.reset()
        env = pre_or_found(orig, inputs)
        if env is REJECTED:
            from hypothesis import reject

            reject()
        renv = pre_or_found(checker, inputs)
        if renv is REJECTED:
            raise _Found(
                "replacement preconditions",
                None,
                inputs,
                blame=repl.name,
                blame_reason="its preconditions are stronger than the original's",
                note=f"{repl.name}'s preconditions reject an input {orig.name} accepts",
            )
        a = orig.call(inputs)
        keep.reset()
        b = call_or_found(repl, inputs)
        checks, _ = applied_checks(checker, renv, b)  # postconditions only inside their domain
        bad = next(((n, v) for n, v in checks if v is not None), None)
        if bad is not None:
            raise _Found(bad[0], bad[1], inputs)
        agree, ev = _compare(
            _outputs(orig, a), _outputs(checker, b), mode, tol, ldim, res.generated, compare, not_compared
        )
        if not agree and mode == "elementwise":
            raise _Found(
                "agreement",
                None,
                inputs,
                note=_ev_text(ev),
                blame=repl.name,
                blame_reason=f"it disagrees with {orig.name}",
            )

    keep = Preserved([original, replacement])
    with keep:
        strategy = interface_inputs(iface, device=device, max_side=max_side)
        try:
            res.seed = run_hypothesis(body, strategy, max_examples=max_examples, seed=seed, what="check_substitutable")
        except _Found as found:
            if found.check == "agreement":
                head = f"check_substitutable: {repl.name} disagrees with {orig.name} beyond tolerance {tol}"
            elif found.violation is None:
                head = f"check_substitutable: {repl.name} cannot replace {orig.name}"
            else:
                head = f"check_substitutable: {repl.name} breaks {orig.name}'s contract ({found.check})"
            res.failures.append(head)
            res.seed = found.seed
            err = _failure("check_substitutable", found, iface.name, res, headline=head)
            if raise_on_failure:
                raise err from None
            res.failure = err  # type: ignore[attr-defined]  # not a field: only a result that failed has one
            return res
        # top1 is not None in the top1 mode, and an agreement rate is None only when no rows were compared
        rate = res.generated.top1_agreement
        if top1 is not None and rate is not None and rate < top1:
            res.failures.append(_top1_failure("generated inputs", res.generated, top1, labels))
        if data is not None:
            res.data = _on_data(orig, repl, data, mode, tol, ldim, keep, compare, not_compared)
            rate = res.data.top1_agreement
            res.failures += [f"on data: {m}" for m in res.data.mismatches]
            if top1 is not None and rate is not None and rate < top1:
                res.failures.append(_top1_failure("data", res.data, top1, labels))
            elif mode == "elementwise" and res.data.agreeing_elements < res.data.elements:
                res.failures.append(
                    f"on data: {res.data.elements - res.data.agreeing_elements} of {res.data.elements} "
                    f"output elements differ beyond tolerance {tol} (max |diff| "
                    f"{res.data.max_abs_diff:.3g})"
                )
    res.restored = sorted(keep.changed)
    res.not_compared = sorted(not_compared)
    if res.failures and raise_on_failure:
        err = ValidationFailure(
            f"check_substitutable: {repl.name} cannot replace {orig.name}",
            module=repl.name,
            blame=repl.name,
            blame_reason="it disagrees with the original",
            contract=f"agreement with {orig.name} ({mode})",
            evidence={f"failure {i + 1}": f for i, f in enumerate(res.failures)},
        )
        err.result = res
        err.violation = None
        raise err
    return res


def _ev_text(ev: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in ev.items())


def _top1_failure(where: str, ag: Agreement, top1: float, labels: Any = None) -> str:
    worst = ag.worst_classes(labels=labels)
    return (
        f"on {where}: top-1 agreement {ag.top1_agreement:.4f} < required {top1} "
        f"({ag.rows - ag.agreeing_rows} of {ag.rows} rows disagree"
        + (f"; worst: {'; '.join(worst)}" if worst else "")
        + ")"
    )


def _on_data(
    orig: Target,
    repl: Target,
    data: Any,
    mode: str,
    tol: float | None,
    ldim: int,
    keep: Preserved,
    compare: Mapping[str, Callable[[Any, Any], bool]] | None,
    not_compared: set[str],
) -> Agreement:
    ag = Agreement()
    correct_a = correct_b = labelled = 0
    names = list(orig.interface.inputs)
    for batch in read_batches(data, "check_substitutable"):
        inputs = batch.named(names, "check_substitutable")
        keep.reset()
        pa = _outputs(orig, orig.call(inputs))
        keep.reset()
        pb = _outputs(orig, repl.call(inputs))  # named after the original's outputs, like pa
        ok, ev = _compare(pa, pb, mode, tol, ldim, ag, compare, not_compared)
        if not ok and ("structure" in ev or "expected" in ev or "comparison" in ev or "original" in ev):
            ag.mismatches.append(f"batch {ag.examples - 1}: {_ev_text(ev)}")
        a, b = _tensors(pa), _tensors(pb)
        labels = batch.class_labels("check_substitutable")
        if labels is not None and a and b and a[0].dim() >= 1:
            labelled += labels.numel()
            correct_a += int((a[0].argmax(ldim) == labels.to(a[0].device)).sum())
            correct_b += int((b[0].argmax(ldim) == labels.to(b[0].device)).sum())
    if ag.examples == 0:
        raise SpecError("check_substitutable(data=...): the data gave no batches")
    if labelled:
        ag.accuracy_original, ag.accuracy_replacement = correct_a / labelled, correct_b / labelled
    return ag


def _name(fn: Any) -> str:
    g = existing_guard(fn)
    return getattr(g, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
