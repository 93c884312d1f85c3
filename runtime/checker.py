"""The Monitor's checker: guarded modules write device flags instead of raising.

It writes through the Monitor's ``Recording`` seam (``runtime/recording.py``)
and touches nothing else of the Monitor.

Installed with ``modpact.contracts.checking.use_checker`` while a Monitor is
active. For each guarded call it

* checks interface metadata (shape, dtype, device, dim bindings) on the host,
  where it is free, and records a violation at once if one fails;
* records value domains (range, finite, integer labels) as one ``aminmax``
  per tensor, a condition with a range form (``device_range``: envelopes,
  boxes) the same way on the tensor it gives, and every other condition as
  its own ``device_ok`` 0-dim bool tensor in the FlagBuffer: no host-device sync;
* in the re-run of a failing call (``Recording.sync``) evaluates every
  condition at once and records each failure with its evidence.

Blame: input-side failures blame the producer of the offending tensor (the
upstream module from the dataflow, the input data at the model boundary, or
the guard's ``producer`` hint); output-side failures blame the module; a
condition that raised blames the contract.
"""

from __future__ import annotations

from typing import Any

import torch

from modpact.contracts.checking import Checker, current_checker
from modpact.interfaces.summary import summarize
from modpact.runtime._buffer import checkable
from modpact.runtime.histogram import value_histogram
from modpact.runtime.recording import Recording
from modpact.runtime.records import INPUT_DATA

__all__ = ["MonitorChecker"]


def _range_form(spec: Any) -> tuple[float | None, float | None, bool] | None:
    """(lo, hi, finite) when the spec's value domain is range/finite/indices only."""
    if spec.simplex is not None or spec.padding is not None:
        return None
    if spec.indices is not None:
        if spec.range is not None:
            return None
        return (0, spec.indices - 1, True)
    lo, hi = spec.range if spec.range is not None else (None, None)
    return (lo, hi, bool(spec.finite) or spec.range is not None)


class MonitorChecker(Checker):
    """Writes through a Monitor's ``Recording``; a guard that is not one of the
    Monitor's modules (or runs outside the model's forward) goes to ``fallback``."""

    transient = True  # a copy of a guard made while the Monitor runs is not the Monitor's

    def __init__(self, recording: Recording, fallback: Checker | None = None):
        self.rec = recording
        self.fallback = fallback or current_checker()

    # -- helpers ---------------------------------------------------------------
    def _producer(self, guard: Any, names: Any, env: dict) -> tuple[str, str]:
        """(blamed party, reason) for an input-side failure reading ``names``."""
        hint = guard.producer
        for n in names:
            who = None
            if isinstance(hint, str):
                who = hint
            elif isinstance(hint, dict) and (n in hint or "*" in hint):
                who = hint.get(n, hint.get("*"))
            if who is not None:
                if who == INPUT_DATA:
                    return INPUT_DATA, "the model's inputs broke the precondition"
                return who, "it produced an input that broke the precondition"
            t = env.get(n)
            if isinstance(t, torch.Tensor):
                who = self.rec.producer_of(t)
                if who is not None:
                    if who == INPUT_DATA:
                        return INPUT_DATA, "the model's inputs broke the precondition"
                    return who or "<model>", "its output broke its consumer's precondition"
        return "the caller", "the caller's arguments broke the precondition"

    def _value_specs(self, specs: Any, named: dict, path: str, side: str, blame_fn) -> None:
        rec = self.rec
        for k, spec in specs:
            t = named.get(k)
            if not isinstance(t, torch.Tensor) or t.is_meta:
                continue
            tensor = f"{side}.{k}"
            kind = "interface"
            blame, reason = blame_fn(k)
            form = _range_form(spec)
            check = _spec_text(spec)
            slot = rec.slot(
                path,
                kind,
                check,
                tensor,
                lo=form[0] if form else None,
                hi=form[1] if form else None,
                finite=form[2] if form else True,
            )
            if rec.sync and form is None:  # the re-run of a failing call: evaluated now, with evidence
                problems = spec.value_problems(t, tensor)
                if problems:
                    rec.violation(
                        slot,
                        blame,
                        reason,
                        str(problems[0]),
                        {
                            "problems": [str(p) for p in problems],
                            "value": summarize(t),
                            "histogram": value_histogram(t, slot.lo, slot.hi),
                        },
                    )
                else:
                    rec.passed()
            elif form is not None:
                rec.range(slot, t, blame, reason)
            else:
                ok = spec.value_ok(t)
                if ok is not None:
                    rec.ok(slot, ok, blame, reason)

    def _conditions(self, conds: Any, env: dict, path: str, post: bool, guard: Any) -> None:
        if not conds:
            return
        rec = self.rec
        sync = rec.sync
        kind = "postcondition" if post else "precondition"
        for c in conds:
            if post:
                blame, reason = path or "<model>", "its preconditions held"
            else:
                blame, reason = self._producer(guard, c.reads, env)
            tensor = ", ".join(c.reads) or "result"
            slot = rec.slot(path, kind, c.text, tensor, declared_at=c.declared_at)
            if sync:  # the re-run of a failing call: evaluated now, with evidence
                try:
                    out = c.check(env)
                except Exception as e:  # the contract itself is broken
                    _contract_error(rec, path, c, tensor, e)
                    continue
                if out.ok:
                    rec.passed()
                    continue
                ev = dict(out.evidence)
                ev.update({f"{n} was": v for n, v in out.values.items()})
                shown = next((env[n] for n in c.reads if isinstance(env.get(n), torch.Tensor)), None)
                if shown is not None:
                    ev["histogram"] = value_histogram(shown, *_bounds(c))
                rec.violation(slot, blame, reason, "", ev)
                continue
            try:
                form = c.device_range(env)
                if type(form) is tuple and checkable(form[0]):  # one range check: a reduction into the flag buffer
                    rec.within(slot, form[0], form[1], form[2], blame, reason)
                    continue
                if type(form) is bool:
                    ok = form
                else:  # no range form (or one with no values to reduce, e.g. on the meta device)
                    ok = c.device_ok(env)
                    if isinstance(ok, torch.Tensor) and ok.numel() != 1:
                        raise TypeError(f"condition returned a tensor with {ok.numel()} elements, not a boolean")
            except Exception as e:
                _contract_error(rec, path, c, tensor, e)
                continue
            if isinstance(ok, bool):
                if ok:
                    rec.passed()
                else:
                    rec.violation(slot, blame, reason, "", {"values": c.values(env)})
            else:
                rec.ok(slot, ok, blame, reason)

    def _metadata(self, problems: Any, path: str, blame_fn) -> None:
        rec = self.rec
        if not problems:
            rec.passed()
            return
        for p in problems:
            name = p.tensor.split(".", 1)[-1]
            blame, reason = blame_fn(name)
            slot = rec.slot(path, "interface", f"{p.field} {p.expected}", p.tensor)
            rec.violation(slot, blame, reason, str(p), {"expected": p.expected, "actual": p.actual, "detail": p.detail})

    # -- protocol ----------------------------------------------------------------
    def check_pre(self, guard: Any, env: dict) -> Any:
        path, quiet = self.rec.entered(guard)
        if path is None:
            return ("fallback", self.fallback.check_pre(guard, env))
        if quiet is None:
            return self._check_pre(guard, env, path)
        with quiet:
            return self._check_pre(guard, env, path)

    def _check_pre(self, guard: Any, env: dict, path: str) -> Any:
        bindings = None
        iface = guard.interface
        if iface is not None:
            # the guard's compiled metadata check answers "certainly fine" (plain ints bound); anything
            # else, and every violation, comes from the full check, so records and messages are its own
            bindings = guard.fast_input_binds(env)
            if bindings is None:
                problems, bindings = iface.input_problems(guard.input_values(env), values_too=False)
            else:
                problems = []

            def blame_in(name: str) -> tuple[str, str]:
                top = name.partition("[")[0].partition(".")[0]  # a nested input's path: hx[0] -> hx
                arg = dict(guard._in_pairs).get(top, top)
                return self._producer(guard, (arg,), env)

            self._metadata(problems, path, blame_in)
            if guard.in_value_specs:
                self._value_specs(guard.in_value_specs, guard.input_leaves(env), path, "inputs", blame_in)
        self._conditions(guard.requires, env, path, post=False, guard=guard)
        return ("monitor", bindings)

    def check_post(self, guard: Any, env: dict, state: Any) -> None:
        tag, inner = state
        if tag == "fallback":
            return self.fallback.check_post(guard, env, inner)
        path, quiet = self.rec.entered(guard)
        if path is None:
            return None
        if quiet is None:
            self._check_post(guard, env, inner, path)
            return None
        with quiet:
            self._check_post(guard, env, inner, path)

    def _check_post(self, guard: Any, env: dict, inner: Any, path: str) -> None:
        iface = guard.interface
        blame_self = path or "<model>"
        if iface is not None:
            result = env["result"]
            bindings = inner
            if guard.fast_outputs_ok(result, bindings):
                problems = []
            else:
                if bindings is None or type(bindings) is dict:  # the fast path bound plain ints: redo in full
                    _, bindings = iface.input_problems(guard.input_values(env), values_too=False)
                problems, _ = iface.output_problems(result, bindings, values_too=False)
            self._metadata(problems, path, lambda n: (blame_self, "its preconditions held"))
            if guard.out_value_specs:
                self._value_specs(
                    guard.out_value_specs,
                    guard.output_leaves(result),
                    path,
                    "outputs",
                    lambda n: (blame_self, "its preconditions held"),
                )
        self._conditions(guard.ensures, env, path, post=True, guard=guard)
        return None


def _contract_error(rec: Recording, path: str, c: Any, tensor: str, e: Exception) -> None:
    """A condition that raised: the contract is blamed."""
    error = f"{type(e).__name__}: {e}"
    slot = rec.slot(path, "contract-error", c.text, tensor, declared_at=c.declared_at)
    rec.violation(slot, f"the contract {c.text}", "the condition itself raised", error, {"error": error})


def _spec_text(spec: Any) -> str:
    parts = []
    if spec.range is not None:
        parts.append(f"range={list(spec.range)}")
    if spec.finite:
        parts.append("finite")
    if spec.simplex is not None:
        parts.append(f"simplex(dim={spec.simplex})")
    if spec.indices is not None:
        parts.append(f"indices<{spec.indices}")
    if spec.padding is not None:
        parts.append(f"padding={spec.padding}")
    return "value domain " + " ".join(parts)


def _bounds(c: Any) -> tuple[float | None, float | None]:
    """A range condition's bounds (for the histogram's marks), else none."""
    p = getattr(c, "params", {}) or {}
    lo, hi = p.get("lo", p.get("min")), p.get("hi", p.get("max"))
    num = (int, float)
    return (lo if isinstance(lo, num) else None, hi if isinstance(hi, num) else None)
