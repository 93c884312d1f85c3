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
from modpact.interfaces.spec import TensorSpec
from modpact.interfaces.strategies import MAX_SIDE, InputsPlan, require_hypothesis
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
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


def _outputs(target: Target, result: Any) -> list[torch.Tensor]:
    named = target.guard.named_outputs(result)
    if named:
        return list(named.values())
    return [result] if isinstance(result, torch.Tensor) else [t for t in result if isinstance(t, torch.Tensor)]


def _label_dim(iface: Any) -> int:
    spec = next(iter(iface.outputs.values()))
    return spec.label_dim if spec.labels is not None else -1


def _compare(
    a: list[torch.Tensor], b: list[torch.Tensor], mode: str, tol: float | None, label_dim: int, ag: Agreement
) -> tuple[bool, dict[str, Any]]:
    """Accumulate agreement of one batch into ``ag``; (all agree, evidence of the first disagreement)."""
    ag.examples += 1
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return False, {"expected": ", ".join(summarize(x) for x in a), "actual": ", ".join(summarize(y) for y in b)}
    if mode == "top1":
        x, y = a[0].detach(), b[0].detach()
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
    all_ok, ev = True, {}
    for x, y in zip(a, b):
        x, y = x.detach(), y.detach().to(x.dtype)
        close = torch.isclose(x, y, rtol=tol, atol=tol, equal_nan=True)
        ag.elements += close.numel()
        ag.agreeing_elements += int(close.sum())
        if x.numel() and (x.is_floating_point() or x.is_complex()):
            d = (x.double() - y.double()).abs()
            d = d[~(torch.isnan(x) & torch.isnan(y))]
            if d.numel():
                ag.max_abs_diff = max(ag.max_abs_diff, float(d.max()))
        if all_ok and not bool(close.all()):
            all_ok = False
            idx = tuple(int(i) for i in (~close).nonzero()[0])
            ev = {
                "failing": int((~close).sum()),
                "of": close.numel(),
                "first_index": idx,
                "original_value": float(x[idx]),
                "replacement_value": float(y[idx]),
            }
    return all_ok, ev


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
) -> SubstitutionResult:
    """Can ``replacement`` stand in for ``original``?

    1. Subtyping: the replacement's interface (``replacement_interface``, its
       guard's, else the original's) must be substitutable for the original's
       (contravariant inputs, covariant outputs); otherwise CompatibilityError.
    2. On ``max_examples`` inputs generated from the original's input interface,
       the replacement's outputs must satisfy the original's output interface and
       agree with the original's: elementwise within ``tolerance`` (default
       1e-5), or, with ``top1`` (a fraction), by the same argmax along the label
       dim on at least that fraction of all generated rows.
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
    from hypothesis import strategies as st

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
    nested = [k for k, s in iface.outputs.items() if not isinstance(s, TensorSpec)]
    if nested:  # agreement is measured on tensors; a cache or a tuple of states has no such measure yet
        raise SpecError(
            f"check_substitutable: interface {iface.name!r} has nested or opaque outputs ({', '.join(nested)}); "
            "agreement is measured on tensor outputs only, so these cannot be compared yet"
        )
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
        agree, ev = _compare(_outputs(orig, a), _outputs(repl, b), mode, tol, ldim, res.generated)
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
        plan = InputsPlan(iface.inputs, None, device, max_side)
        strategy = st.composite(lambda draw: plan.draw(draw))()
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
            res.data = _on_data(orig, repl, data, mode, tol, ldim, keep)
            rate = res.data.top1_agreement
            if top1 is not None and rate is not None and rate < top1:
                res.failures.append(_top1_failure("data", res.data, top1, labels))
            elif mode == "elementwise" and res.data.agreeing_elements < res.data.elements:
                res.failures.append(
                    f"on data: {res.data.elements - res.data.agreeing_elements} of {res.data.elements} "
                    f"output elements differ beyond tolerance {tol} (max |diff| "
                    f"{res.data.max_abs_diff:.3g})"
                )
    res.restored = sorted(keep.changed)
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
    orig: Target, repl: Target, data: Any, mode: str, tol: float | None, ldim: int, keep: Preserved
) -> Agreement:
    ag = Agreement()
    correct_a = correct_b = labelled = 0
    names = list(orig.interface.inputs)
    for batch in read_batches(data, "check_substitutable"):
        inputs = batch.named(names, "check_substitutable")
        keep.reset()
        a = _outputs(orig, orig.call(inputs))
        keep.reset()
        b = _outputs(repl, repl.call(inputs))
        _compare(a, b, mode, tol, ldim, ag)
        labels = batch.class_labels("check_substitutable")
        if labels is not None and a and a[0].dim() >= 1:
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
