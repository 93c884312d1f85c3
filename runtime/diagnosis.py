"""Diagnosis: from failed flags to violation records, with evidence.

``collect`` flushes the flag buffer, reads the verdicts that have arrived
(on CPU: all) and turns failed checks into records:

1. **re-run** (``leaf_checks="on_violation"``): a call that broke a forward
   check or raised runs again from its kept inputs and RNG state with every
   leaf hooked (``Phase.RERUN``), its flags read at once. Its violations
   replace the call's own: the model's output check found the fault, the
   re-run finds the module that made it. A re-run that finds nothing keeps
   the call's own events.
2. **replay**: a call with failed checks runs again (``Phase.REPLAY``) and
   every check computes its evidence synchronously (which elements, which
   values), matched to the failed check by its ``seq``.
3. **elided roots**: default output checks that were elided at run time (a
   downstream check covered them) but fail in the replay before the first
   flagged check are added: they are where the fault started.

Each re-run or replay gets a ``CallState`` of its own (``Hooks.forced``), so
the run's own state is untouched. Buffers and the RNG are restored after.
"""

from __future__ import annotations

import torch
from torch import nn

from modpact.runtime._buffer import FlagBuffer
from modpact.runtime.hooks import Hooks
from modpact.runtime.recording import Recorder
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.state import CallKey, CallState, Phase, Slot, event_order

__all__ = ["Diagnosis"]

_COMPILED_NOTE = (
    "a check in code compiled by torch.compile failed: compiled calls cannot be re-run, so "
    "leaf_checks='on_violation' reports the model's output, not the leaf that produced the value; "
    "use leaf_checks='every_call' to check every leaf in compiled code"
)


class Diagnosis:
    """Reads the flags and diagnoses failing calls (see the module docstring)."""

    def __init__(self, settings: Settings, scope: Scope, recorder: Recorder, hooks: Hooks) -> None:
        self.settings = settings
        self.scope = scope
        self.rec = recorder
        self.hooks = hooks
        self.diagnosed: set[CallKey] = set()  # calls already re-run

    def collect(self, block: bool) -> None:
        """Read every verdict that has arrived (``block``: wait for all) and
        record the violations."""
        rec, hooks = self.rec, self.hooks
        buf = rec.buffer
        state = hooks.state
        if not self.scope.leaves:
            rec.host_failed.clear()  # only on_violation re-runs calls that broke a host-side check
        if not (buf.size or buf.pending or buf.has_ready or state.pending or rec.slot_meta or hooks.raised
                or rec.host_failed):
            return  # nothing recorded, nothing in flight (CPU between failures: sums were read at once)
        hooks.flush_pending(state)
        rec.flush_compiled(hooks.step)
        buf.flush()
        bad = buf.poll(block=block)
        to_diagnose = hooks.raised | rec.host_failed
        hooks.raised, rec.host_failed = set(), set()
        evidence_by_call: dict[CallKey, dict] = {}
        if self.scope.leaves and (bad or to_diagnose):
            bad = self._diagnose(bad, to_diagnose, evidence_by_call)
        if not bad:
            return
        # checks that arrived clean are dropped; violated ones become records
        bad.sort(key=event_order)
        for key in sorted({(step, call) for (_, step, call, *_rest) in bad}):
            if key not in evidence_by_call and self.settings.replay and key[1] >= 0 and key in hooks.kept:
                evidence_by_call[key] = self._replay(key)
        for slot, step, call, seq, blame, reason in self._elided_roots(bad, evidence_by_call):
            ev: dict = {}
            rep = evidence_by_call.get((step, call))
            if rep is not None and slot.phase == "forward":
                found = rep.get(seq)
                if found is not None and found[0] == slot:
                    ev = found[1]
                else:
                    ev = {"replay": "not reproduced (weights or inputs changed since the step)"}
            rec.add(rec.record(slot, step, call, seq, blame, reason, "", ev))

    def next_step(self, step: int, window: int) -> None:
        if self.diagnosed:
            self.diagnosed = {k for k in self.diagnosed if k[0] >= step - window}

    # -- re-run (on_violation) ---------------------------------------------------
    def _diagnose(self, bad: list, to_diagnose: set[CallKey], evidence_by_call: dict) -> list:
        """Re-run every call that broke a forward check or raised, with every
        leaf hooked. The re-run's violations replace the call's run-time
        forward events (it checks everything those checked, and every leaf),
        and its replay gives their evidence. A call the re-run does not
        reproduce keeps its own events."""
        keys = {(step, call) for (slot, step, call, *_rest) in bad if slot.phase == "forward"} | to_diagnose
        if any(call < 0 for _, call in keys):
            self.rec.note(_COMPILED_NOTE)
        # the first call checked every leaf already, but its evidence replay
        # needs the leaves hooked too: it is re-run like the others
        keys = sorted(k for k in keys if k[1] >= 0 and k in self.hooks.kept)
        if not keys:
            return bad

        def others(key: CallKey) -> list:
            return [e for e in bad if (e[1], e[2]) != key or e[0].phase != "forward"]

        with self.hooks.leaf_hooks():
            for key in keys:
                if key in self.diagnosed:  # flags that arrived late for a call already re-run
                    bad = others(key)
                    continue
                found = self._rerun(key)
                if found is None:
                    evidence_by_call[key] = {}  # not reproduced: the events keep a note saying so
                    continue
                self.diagnosed.add(key)
                bad = others(key) + found
                if found:
                    evidence_by_call[key] = self._replay(key)
        return bad

    def _rerun(self, key: CallKey) -> list | None:
        """Run call ``key`` again with every leaf checked and read its flags at
        once. Returns the failed checks' events (its host-side violations
        replace the call's own), or None when the re-run found no violation."""
        edges = self.hooks.flow.edges[key]
        edges.clear()  # the re-run's edges replace the call's
        state = CallState(key[0], key[1], Phase.RERUN, FlagBuffer(), edges=edges, counted=False, found=[])
        self._run_again(key, state)
        self.hooks.flush_pending(state)
        state.buffer.flush()
        found = state.buffer.poll(block=True)
        assert state.found is not None
        if not found and not state.found:
            return None
        self.rec.replace_forward(key, state.found)
        return found

    # -- replay (evidence) -------------------------------------------------------
    def _replay(self, key: CallKey) -> dict[int, tuple[Slot, dict]]:
        """Replay one root call for evidence: every check computes its
        evidence at once, keyed by its seq (the hooks are the run's)."""
        state = CallState(key[0], key[1], Phase.REPLAY, FlagBuffer(), counted=False, evidence={})
        # a re-run (on_violation) already noted the call's exception
        self._run_again(key, state, note=key not in self.diagnosed)
        assert state.evidence is not None
        return state.evidence

    def _elided_roots(self, bad: list, evidence_by_call: dict) -> list:
        """The flagged events, plus the default output checks that the replay
        found failing before the first flagged check of their call: checks
        that were elided at run time because a downstream check covered them
        (that downstream module's violation follows from them)."""
        if not self.settings.elide:
            return bad
        first: dict[CallKey, int] = {}
        for slot, step, call, seq, *_ in bad:
            if slot.phase == "forward":
                first.setdefault((step, call), seq)
        found: list = []
        for key, rep in evidence_by_call.items():
            for seq, (slot, ev) in rep.items():
                if (seq < first.get(key, 0) and slot.check == "finite(output)" and slot.kind == "postcondition"
                        and ev.get("failing")):
                    ev.setdefault("found", "by the replay: the run-time check was elided, since the check "
                                           "of the module that consumed this output covers it")
                    found.append((slot, key[0], key[1], seq, slot.module or "<model>", "its inputs were finite"))
        return sorted(bad + found, key=event_order) if found else bad

    # -- running a kept call again ------------------------------------------------
    def _run_again(self, key: CallKey, state: CallState, note: bool = True) -> None:
        """Run one root call again from its kept inputs with ``state``,
        synchronously (no grad; the RNG state of the call; the run's state,
        RNG and buffers restored after)."""
        model: nn.Module = self.scope.model
        kept = self.hooks.kept[key]
        saved_state = self.hooks.state
        saved_rng = torch.get_rng_state()
        saved_cuda_rng = torch.cuda.get_rng_state_all() if kept.cuda_rng is not None else None
        saved_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        self.hooks.forced = state
        try:
            torch.set_rng_state(kept.rng)
            if kept.cuda_rng is not None:
                torch.cuda.set_rng_state_all(kept.cuda_rng)
            with torch.no_grad():
                try:
                    model(*kept.args, **kept.kwargs)
                except Exception as e:  # a run that fails still leaves the flags' facts
                    if note:
                        self.rec.notes.append(f"replay of step {key[0]} call {key[1]} raised {type(e).__name__}: {e}")
        finally:
            self.hooks.forced = None
            self.hooks.state = saved_state
            torch.set_rng_state(saved_rng)
            if saved_cuda_rng is not None:
                torch.cuda.set_rng_state_all(saved_cuda_rng)
            with torch.no_grad():
                for n, b in model.named_buffers():
                    if n in saved_buffers:
                        b.copy_(saved_buffers[n])
