"""Diagnosis: from failed checks to violation records that say only what is known.

``collect`` flushes the flag buffer, reads the verdicts that have arrived
(on CPU: all) and finds the calls with a failed forward check, a failed
host-side check, or a forward that raised. Each such call that was kept
(``replay=True``) is **re-run** (``Phase.DIAGNOSE``) if, and only if, the
re-run would be the call that failed:

* the model's parameters and buffers are the same tensors with the same
  version counters as when the call ended (an ``optimizer.step()`` since
  then changes them: the Monitor reads its flags before each optimizer step
  for this reason, see ``Monitor(settle=...)``);
* every module is in the train/eval mode it ran in;
* the kept inputs were not changed in place, by the call or since;
* the RNG and autocast state of the call are restored for the re-run, and
  the module buffers are swapped for copies, so the run's own are untouched.

The re-run evaluates every check at once, with every leaf (and every module
that computes with parameters of its own) checked, and traces where each
non-finite value began (``provenance.py``). Its violations replace the
call's own. A call that could not be re-run keeps the run's records, marked
with how they were found and why there was no re-run; a re-run that finds
nothing keeps them too, with a note.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from modpact.interfaces.tree import input_names
from modpact.runtime._buffer import FlagBuffer
from modpact.runtime.blame import LOCATED_RUN, NOT_LOCATED
from modpact.runtime.calls import MAX_KEPT
from modpact.runtime.hooks import Hooks
from modpact.runtime.provenance import Provenance
from modpact.runtime.recording import Lane, Recorder
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.state import CallKey, CallState, KeptCall, Phase, event_order

__all__ = ["Diagnosis"]


def _unread(lane: Lane) -> bool:
    """Whether a lane holds checks not read yet (or failed ones read but not recorded)."""
    buf, state = lane.buffer, lane.state
    return bool(buf.size or buf.pending or buf.has_ready or (state is not None and state.pending))


_COMPILED_NOTE = (
    "a check in code compiled by torch.compile failed: compiled calls are not kept, so they were not re-run; "
    "their violations are the run's own flags, in the order the compiled code checks them"
)
_NOT_REPRODUCED = "a re-run of the call, with its inputs, parameters, modes and RNG state, did not reproduce it"


class Diagnosis:
    """Reads the flags and diagnoses failing calls (see the module docstring)."""

    def __init__(self, settings: Settings, scope: Scope, recorder: Recorder, hooks: Hooks) -> None:
        self.settings = settings
        self.scope = scope
        self.rec = recorder
        self.hooks = hooks
        self.rerun: set[CallKey] = set()  # calls whose records came from a re-run
        self.reruns = 0
        self.failed: dict[CallKey, tuple[int, ...]] = {}  # re-run calls that failed: their parameters' versions
        self.optimizer_steps: list[int] = []  # steps in which an optimizer step ran
        self.deferred: list = []  # failed events read while another thread was inside a call

    def collect(self, block: bool) -> None:
        """Read every verdict that has arrived (``block``: wait for all),
        re-run the calls that failed, and record the violations.

        Each thread's lane is read while its thread is between calls: a lane
        busy in a call of the model is left for a later read (``block``:
        waited for, up to the Monitor's timeout). Failing calls are re-run
        only while no other thread is inside a call (a re-run swaps module
        buffers); until then their events wait in ``deferred``."""
        rec, hooks = self.rec, self.hooks
        if not self.settings.replay:
            rec.host_failed.clear()  # nothing is kept to re-run
        lanes = list(rec.lanes)
        if not (self.deferred or rec.slot_meta or hooks.calls.raised or rec.host_failed or any(map(_unread, lanes))):
            return  # nothing recorded, nothing in flight (CPU between failures: sums were read at once)
        held: list = []
        try:
            for lane in lanes:
                if lane.busy.acquire(blocking=block, timeout=self.settings.timeout.total_seconds() if block else -1):
                    held.append(lane)
            bad = self.deferred
            self.deferred = []
            for lane in held:
                if _unread(lane):
                    if lane.state is not None:
                        hooks.flush_pending(lane.state)
                    lane.buffer.flush()
                    bad += lane.buffer.poll(block=block)
            rec.flush_compiled(hooks.calls.step)
            if len(held) < len(lanes):  # some thread is inside a call: re-runs and records wait
                if block:
                    busy = [ln.thread for ln in lanes if ln not in held]
                    rec.note(
                        f"threads {', '.join(busy)} stayed inside a call of the model for longer than the "
                        "timeout: their latest checks were not read"
                    )
                self.deferred = bad
                return
            self._record(bad)
        finally:
            for lane in held:
                lane.busy.release()

    def _record(self, bad: list) -> None:
        """Re-run the failing calls (every thread is between calls) and turn
        the failed events into records."""
        rec, hooks = self.rec, self.hooks
        lane = rec.lane()  # compiled code's flags land in the reading thread's buffer
        lane.buffer.flush()
        bad += lane.buffer.poll(block=False)
        calls = hooks.calls
        if not (bad or calls.raised or rec.host_failed):  # every check held (a step's usual read)
            return
        keys = {(e[1], e[2]) for e in bad if e[0].phase == "forward"} | calls.raised | rec.host_failed
        calls.raised, rec.host_failed = set(), set()
        outcome: dict[CallKey, str] = {}  # why a failing call's records are the run's own
        for key in sorted(k for k in keys if k[1] >= 0 and k not in self.rerun):
            outcome[key] = self._diagnose(key) or ""
        bad = [e for e in bad if not self._covered(e)]
        if any(e[2] < 0 and e[0].phase == "forward" for e in bad):
            rec.note(_COMPILED_NOTE)
        bad.sort(key=event_order)
        for slot, step, call, seq, blame, reason in bad:
            key = (step, call)
            ev: dict = {}
            located = LOCATED_RUN
            why = outcome.get(key) if call >= 0 else "not re-run: calls compiled by torch.compile are not kept"
            if slot.phase == "forward" and why:
                ev["re-run"] = why
                if self.scope.leaves and not slot.module:  # on_violation: only the model's output was checked
                    located = NOT_LOCATED
                    blame = "<model>"
                    reason = (
                        f"the model's output broke {slot.check}; which module made the value was not located ({why})"
                    )
            rec.add(rec.record(slot, step, call, seq, blame, reason, "", ev, located_by=located))

    def _covered(self, event: tuple) -> bool:
        """A forward event that a re-run's records replace: its call was
        re-run (flags can arrive late on CUDA), or it was checked in compiled
        code (call -1) in a step all of whose calls were kept and re-run (a
        compiled model's eager wrapper keeps its calls): the re-runs checked
        everything the compiled code did, one call at a time."""
        slot, step, call = event[0], event[1], event[2]
        if slot.phase != "forward":
            return False
        if call >= 0:
            return (step, call) in self.rerun
        calls = {k for k in self.hooks.calls.kept if k[0] == step}
        return bool(calls) and calls <= self.rerun

    def next_step(self, step: int, window: int) -> None:
        if self.rerun:
            self.rerun = {k for k in self.rerun if k[0] >= step - window}

    def optimizer_step(self, step: int) -> None:
        """An optimizer step runs now, in ``step``."""
        if not self.optimizer_steps or self.optimizer_steps[-1] != step:
            self.optimizer_steps.append(step)

    # -- the re-run -------------------------------------------------------------
    def _diagnose(self, key: CallKey) -> str | None:
        """Re-run call ``key`` if it would be the call that failed. Returns
        None when its records replaced the call's own, else why not."""
        kept = self.hooks.calls.kept.get(key)
        if kept is None:
            if not self.settings.replay:
                return "not re-run: replay=False keeps no inputs"
            return (
                f"not re-run: its inputs are no longer kept (at most {MAX_KEPT} calls are kept until "
                "their checks are read)"
            )
        changed = self._changed_since(kept)
        if changed is not None:
            return f"not re-run: {changed}, so a re-run would not be the call that failed"
        edges = self.hooks.calls.flow.edges[key]
        edges.clear()  # the re-run's edges replace the call's
        state = CallState(key[0], key[1], Phase.DIAGNOSE, FlagBuffer(), edges=edges, counted=False, found=[])
        self._run_again(kept, state)
        self.reruns += 1
        assert state.found is not None
        if not state.found:
            return _NOT_REPRODUCED
        self._after_earlier_failure(key, kept, state)
        self.rec.replace_forward(key, state.found)
        self.rerun.add(key)
        assert kept.versions is not None
        self.failed[key] = kept.versions
        while len(self.failed) > MAX_KEPT:  # without step(), keep the latest only
            del self.failed[next(iter(self.failed))]
        return None

    def _after_earlier_failure(self, key: CallKey, kept: KeptCall, state: CallState) -> None:
        """A parameter where a non-finite value began, changed in place since
        an earlier call failed, with an optimizer step in between: the
        earlier failure's gradients may have put the value there. Its record
        says so and follows from that failure (``violations.assign_roots``)."""
        index = {id(t): i for i, t in enumerate(self.scope.state)}
        for origin in state.tracer.origins:
            i = index.get(origin.tensor_id) if origin.record is not None else None
            if i is None or kept.versions is None:
                continue
            for (step, call), versions in sorted(self.failed.items()):
                if step >= key[0] or versions[i] == kept.versions[i]:
                    continue
                ran = [s for s in self.optimizer_steps if step <= s < key[0]]
                if ran:
                    origin.record.evidence["follows"] = [step, call]
                    origin.record.evidence["changed since"] = (
                        f"{self.scope.state_names[i]} was changed in place after the call that failed in step "
                        f"{step}, and an optimizer step ran in step {ran[0]}: that failure's gradients may "
                        "have put the value there"
                    )
                    break

    def _changed_since(self, kept: KeptCall) -> str | None:
        """What changed since the call that a re-run could not undo, or None."""
        scope = self.scope
        inner = scope.inner
        now = [*inner.parameters(), *inner.buffers()]
        if len(now) != len(scope.state) or any(a is not b for a, b in zip(now, scope.state)):
            return "parameters or buffers of the model were replaced since the call"
        if kept.versions is None:
            return "its state was not recorded when it ended"
        changed = [n for n, a, b in zip(scope.state_names, kept.versions, scope.versions()) if a != b]
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            return (
                f"{len(changed)} parameter(s) or buffer(s) changed in place since the call ({shown}; "
                "an optimizer step does that)"
            )
        if scope.training() != kept.training:
            return "a module's train/eval mode changed since the call"
        if kept.changed_own_inputs:
            return "the call changed its own input tensors in place"
        if tuple([t._version for t in kept.inputs]) != kept.input_versions:
            return "its input tensors were changed in place since the call"
        return None

    def _run_again(self, kept: KeptCall, state: CallState) -> None:
        """Run a kept call again with ``state``: under no_grad, with the call's
        RNG and autocast state, on copies of the module buffers, with every
        module's forward tracked and non-finite values traced."""
        hooks = self.hooks
        lane = hooks.lane()
        saved_state = lane.state
        saved_rng = torch.get_rng_state()
        saved_cuda_rng = torch.cuda.get_rng_state_all() if kept.cuda_rng is not None else None
        lane.forced = state
        try:
            with self._copied_buffers() as owners, hooks.rerun_hooks(), contextlib.ExitStack() as regions:
                for device, dtype in kept.autocast:
                    regions.enter_context(torch.autocast(device, dtype=dtype))
                torch.set_rng_state(kept.rng)
                if kept.cuda_rng is not None:
                    torch.cuda.set_rng_state_all(kept.cuda_rng)

                def next_seq() -> int:
                    state.seq += 1
                    return state.seq

                inputs = {id(t): n for n, t in input_names(kept.args, kept.kwargs)}
                state.tracer = Provenance(lambda: state.running, owners, inputs, next_seq)
                with torch.no_grad(), state.tracer:
                    try:
                        self.scope.inner(*kept.args, **kept.kwargs)
                    except Exception:  # recorded by the model's post hook as a violation of its own
                        pass
        finally:
            lane.forced = None
            lane.state = saved_state
            torch.set_rng_state(saved_rng)
            if saved_cuda_rng is not None:
                torch.cuda.set_rng_state_all(saved_cuda_rng)

    @contextlib.contextmanager
    def _copied_buffers(self) -> Iterator[dict[int, list[tuple[str, str]]]]:
        """Every module buffer swapped for a copy while the call runs again
        (a train-mode BatchNorm updates its running statistics: the run's own
        stay as they were, version counters included); yields who holds each
        parameter and buffer, by tensor id."""
        swapped: list[tuple[dict, str, torch.Tensor]] = []
        owners: dict[int, list[tuple[str, str]]] = {}
        try:
            with torch.no_grad():
                for path, mod in self.scope.running_modules():
                    for name, b in list(mod._buffers.items()):
                        if b is not None:
                            mod._buffers[name] = b.clone()
                            swapped.append((mod._buffers, name, b))
                    for name, t in (*mod._parameters.items(), *mod._buffers.items()):
                        if t is not None:
                            owners.setdefault(id(t), []).append((path, name))
            yield owners
        finally:
            for buffers, name, b in swapped:
                buffers[name] = b
