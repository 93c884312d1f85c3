"""The Monitor's hot path: the forward hooks.

Per monitored module call: metadata checks on the host (free), value checks
as one reduction per tensor into the flag buffer (no host-device sync), and a
dataflow edge per input tensor. The model's own pre hook starts a root call
(``_start_call``: a ``CallState``; ``calls.py`` keeps what a re-run needs);
its post hook ends it. Gradient hooks are in ``gradients.py``. Between failures under
``leaf_checks="on_violation"`` only the model (and guarded modules) are
hooked, and with nothing else hooked the model's hooks take a short path
(``Phase.LEAN``): keep the call, check the outputs.

Elision (``elide``): a default ``finite(output)`` check whose tensor a
propagating module (``propagation.py``) consumed last time waits for that
consumer: if the consumer checks its own output, the check is covered and
dropped; otherwise it runs.
"""

from __future__ import annotations

import cmath
import contextlib
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from modpact.errors import MonitorError
from modpact.interfaces.summary import describe
from modpact.interfaces.tree import input_names, named_numbers, named_tensors, tensors, tensors_of_call
from modpact.runtime._buffer import FlagBuffer, refuse_capture
from modpact.runtime.blame import exception_blame
from modpact.runtime.calls import Calls, autocast_allows
from modpact.runtime.gradients import Gradients
from modpact.runtime.propagation import FINITE_PRESERVING, propagates_non_finite
from modpact.runtime.recording import Lane, Recorder, quiet
from modpact.runtime.records import INPUT_DATA
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.state import CallState, Phase, Slot

__all__ = ["Hooks", "FLUSH_AT", "prepend_pre_hook"]

_Tensor = torch.Tensor
_is_compiling = torch.compiler.is_compiling
FLUSH_AT = 4096  # pending checks that trigger a flush without step()
_MODEL_OUTPUT = "the model's output is checked on every call; the module that made the value is found by a re-run"


def prepend_pre_hook(mod: nn.Module, hook: Callable, with_kwargs: bool = False) -> Any:
    """Register ``hook`` to run before the module's other forward pre hooks.

    ``prepend=True`` moves the hook to the front of the module's
    ``OrderedDict`` of hooks, which leaves the plain ``dict`` order (what
    ``dict.keys(d)`` gives) as it was. Dynamo in torch 2.11 names a hook in
    its guards by its index in ``dict.keys(d)`` while it traced them in the
    ``OrderedDict``'s order, so a guard's hook behind a prepended one was
    looked up as the wrong hook (``'function' object has no attribute
    '__self__'``). Re-inserting the hooks in their order makes both orders agree."""
    handle = mod.register_forward_pre_hook(hook, with_kwargs=with_kwargs, prepend=True)
    hooks = mod._forward_pre_hooks
    if list(dict.keys(hooks)) != list(hooks.keys()):
        items = list(hooks.items())
        hooks.clear()
        hooks.update(items)
    return handle


def reason(inputs_checked: bool) -> str:
    """A default output check's reason, as far as the run itself knows:
    only a check of every input makes "its inputs were finite" a fact (the
    first failed check in execution order; an input check that failed would
    come before it)."""
    if inputs_checked:
        return "its inputs were checked and finite in this call"
    return "its output was the first non-finite value seen; its inputs were not all checked in this call"


class Hooks:
    """Installs the Monitor's hooks and runs them; keeps the calls they see.

    ``state`` is the call now running (between calls: the last one, or the
    idle state of a new step); ``kept`` the inputs and RNG state of recent
    calls; ``flow`` their dataflow; ``forced`` the state the next root call
    runs with (set by the diagnosis for a re-run or a replay)."""

    def __init__(self, settings: Settings, scope: Scope, recorder: Recorder, collect: Callable[[bool], None]) -> None:
        self.settings = settings
        self.scope = scope
        self.rec = recorder
        self.collect = collect  # read the flags (past FLUSH_AT pending checks)
        self.handles: list[Any] = []
        self.first_call: list[Any] = []  # on_violation: the leaf hooks of the first call
        self.lean = False  # on_violation, nothing but the model hooked: the short path
        self.learned: set[tuple[str, str]] = set()  # on_violation: the first call's edges, between leaves too
        self.calls = Calls(settings, scope, recorder)
        self.gradients = Gradients(settings, scope, recorder, self.calls, self.lane)
        self.coverable: set[str] = set()  # modules whose output a propagating consumer took last time
        # the state hooks traced by torch.compile see (dynamo traces no thread-local lookups)
        self._compile_state = CallState(0, -1, Phase.EVERY, FlagBuffer())

    def lane(self) -> Lane:
        """The calling thread's lane, with a state to record into."""
        lane = self.rec.lane()
        if lane.state is None:
            lane.state = CallState(self.calls.step, self.calls.call, Phase.EVERY, lane.buffer, lane=lane)
            lane.lean = CallState(self.calls.step, -1, Phase.LEAN, lane.buffer, lane=lane)
        return lane

    @property
    def state(self) -> CallState:
        """The call the calling thread runs now (or ran last)."""
        return self.lane().state

    def current(self) -> CallState:
        """The state checks record into now: the calling thread's call, or the
        state of code traced by torch.compile."""
        return self._compile_state if _is_compiling() else self.lane().state

    # -- installing ----------------------------------------------------------
    def install(self) -> None:
        self._install({m: p for m, p in self.scope.paths.items() if m not in self.scope.leaves}, self.handles)
        inner = self.scope.inner
        if inner is not self.scope.model:  # torch.compile(model): tracing starts at the wrapped module
            rec = self.rec

            def trace_start(module: nn.Module, args: tuple) -> None:
                if _is_compiling():
                    rec.trace_start()

            self.handles.append(inner.register_forward_pre_hook(trace_start))

    def _install(self, mods: dict[nn.Module, str], handles: list) -> None:
        model = self.scope.model
        if model not in mods and self.scope.inner is not model and "" in mods.values():
            model = self.scope.inner  # a compiled model run eagerly (its re-run): hook the module that runs
        for mod, path in mods.items():
            # leaves checked by default contracts only need the post hook
            # (inputs are still at hand there); containers, guarded modules
            # and the model itself also need the pre hook
            has_pre = mod is model or path in self.scope.guarded or any(True for _ in mod.children())
            if has_pre:
                # prepend: the monitor's pre hook runs before a guard's, so the
                # call is open and the module is on the stack when the guard checks
                handles.append(prepend_pre_hook(mod, self._make_pre(path, mod), with_kwargs=True))
            # always_call: the model's post hook also sees a forward that raised
            handles.append(
                mod.register_forward_hook(
                    self._make_post(path, mod, has_pre), with_kwargs=True, always_call=mod is model
                )
            )

    @contextlib.contextmanager
    def rerun_hooks(self) -> Iterator[None]:
        """For the re-run of a failing call: the leaves that on_violation
        leaves unhooked between failures, the root on the module that runs
        (a compiled model's ``_orig_mod``), and on every module a pair of
        hooks that keeps ``state.running`` (the modules running, innermost last)."""
        handles: list = []
        try:
            self._install(self.scope.leaves, handles)
            inner = self.scope.inner
            if inner is not self.scope.model:
                self._install({inner: ""}, handles)
            for path, mod in self.scope.running_modules():
                handles.append(prepend_pre_hook(mod, self._push(path, mod)))
                handles.append(mod.register_forward_hook(self._pop(mod), always_call=True))
            yield
        finally:
            for h in handles:
                h.remove()

    def _push(self, path: str, mod: nn.Module) -> Callable:
        def push(module: nn.Module, args: tuple) -> None:
            self.rec.lane().state.running.append((path, mod))

        return push

    def _pop(self, mod: nn.Module) -> Callable:
        def pop(module: nn.Module, args: tuple, output: Any) -> None:
            running = self.rec.lane().state.running
            if running and running[-1][1] is mod:
                running.pop()

        return pop

    def end_first_call(self) -> None:
        """Unhook the leaves hooked for the first call; keep what it learned."""
        if self.first_call:
            self.learned = set(self.state.edges)
            self.lean = not self.scope.guarded and not self.settings.backward
        for h in self.first_call:
            h.remove()
        self.first_call.clear()

    def remove(self) -> None:
        self.end_first_call()
        for h in self.handles:
            h.remove()
        self.handles.clear()

    # -- calls -------------------------------------------------------------
    def _start_call(self, lane: Lane, args: tuple, kwargs: dict) -> CallState:
        """A root call begins in ``lane``: its state, its kept inputs, its inputs' producer."""
        forced = lane.forced
        if forced is not None:  # the re-run of a kept call
            lane.forced = None
            lane.state = forced
            for t in tensors_of_call(args, kwargs):
                forced.produced(t, INPUT_DATA, "" in self.scope.defaults)
            return forced
        self.flush_pending(lane.state)  # left by a forward that raised
        calls = self.calls
        step, call, first = calls.number()
        key = (step, call)
        if self.lean:  # one state for every lean call of a thread: it keeps nothing but its key and seq
            state = lane.state = lane.lean
            state.step, state.call, state.seq, state.host_failed = step, call, 0, False
            calls.keep(key, args, kwargs)
            return state
        leaves = self.scope.leaves
        if leaves and first:
            # on_violation checks every leaf in the first call (and learns the
            # module graph); hooks added here already run in this call
            self._install(leaves, self.first_call)
        phase = Phase.EVERY if not leaves else Phase.FIRST if self.first_call else Phase.STEADY
        state = lane.state = CallState(step, call, phase, lane.buffer, edges=calls.flow.edges[key], lane=lane)
        if self.settings.replay:
            calls.keep(key, args, kwargs)
        checked = "" in self.scope.defaults and phase is not Phase.STEADY
        for t in tensors_of_call(args, kwargs):
            state.produced(t, INPUT_DATA, checked)
        return state

    def _end_call(self, state: CallState) -> None:
        """End of a root forward: checks stay pending until step()/report();
        past FLUSH_AT pending checks they are flushed and read (nothing waits)."""
        again = state.phase.again
        if not again:
            self.flush_pending(state)
            self.calls.ended(state)
            if self.first_call:
                self.end_first_call()
        self.flush_pending(state)
        if not again and state.buffer.size > FLUSH_AT:
            self.collect(False)

    def _raised(self, state: CallState, exc: BaseException) -> None:
        """The model's forward raised: a violation of its own, blamed on the
        innermost module it was raised in (or on the input data where the
        error shows bad input); the checks the call left run, and the call is
        re-run at the next read."""
        state.stack.clear()
        if _is_compiling():
            return
        kept = self.calls.kept.get(state.key)
        inputs = [] if kept is None else input_names(kept.args, kept.kwargs)
        with quiet(state):
            path, blame, reason, evidence = exception_blame(exc, self.scope.modules, inputs)
        slot = self.rec.slot(path, "exception", "forward raised", type(exc).__name__)
        self.rec.host_violation(state, slot, blame, reason, evidence["error"], evidence)
        if not state.phase.again:
            self.calls.ended(state, failed=True)
            self.end_first_call()
            self.flush_pending(state)
            if self.settings.replay:
                self.calls.raised.add(state.key)

    # -- checks left pending by elision --------------------------------------
    def _run_check(self, state: CallState, t: torch.Tensor, event: tuple, uncovered: bool = False) -> None:
        """Record a default output check whose event was made (and its seq
        taken) when the tensor was produced. ``uncovered``: it waited for a
        consumer that did not cover it, so its module's next checks run at once."""
        if state.counted:
            state.lane.checks += 1
        state.buffer.add_range(t, event)
        if uncovered:
            self.coverable.discard(event[0].module)

    def flush_pending(self, state: CallState) -> None:
        """Run the output checks still waiting for a consumer."""
        if state.pending:
            for t, event in state.pending.values():
                self._run_check(state, t, event, uncovered=True)
            state.pending.clear()

    # -- the hooks -------------------------------------------------------------
    def _inputs_flow(
        self, state: CallState, path: str, args: Any, kwargs: Any, propagates: bool = False, held: list | None = None
    ) -> tuple[bool, torch.dtype | None]:
        """Add dataflow edges from the producers of the inputs; return whether
        every input tensor came from a checked producer, and the first floating dtype.

        Inputs whose check is pending: a propagating consumer puts their ids
        in ``held`` (its own output check may cover them); any other consumer
        (``held`` given) runs their check now."""
        edges = state.edges
        all_checked = True
        in_dtype = None
        producers = state.producers
        pending = state.pending
        for t in tensors_of_call(args, kwargs):
            key = id(t)
            entry = producers.get(key)
            if entry is not None and entry[0]() is t:
                if entry[1] != path:
                    edges.add((entry[1], path))
                checked = entry[2]
                if held is not None:
                    if not checked and key in pending:
                        if propagates:
                            held.append(key)
                        else:
                            self._run_check(state, *pending.pop(key), uncovered=True)
                            producers[key] = (entry[0], entry[1], True)
                            checked = True
                    elif propagates:
                        self.coverable.add(entry[1])
                all_checked = all_checked and checked
            else:
                # computed by code in the enclosing container's forward (e.g.
                # `out + shortcut(x)`): it may depend on anything that container
                # has seen, which the child -> container edges already capture
                all_checked = False
                if state.stack:
                    edges.add((state.stack[-1], path))
            if in_dtype is None and t.is_floating_point():
                in_dtype = t.dtype
        return all_checked, in_dtype

    def _make_pre(self, path: str, mod: nn.Module) -> Callable:
        is_root = path == "" and mod in (self.scope.model, self.scope.inner)
        defaults = path in self.scope.defaults
        in_slots: dict[str, Slot] = {}
        rec = self.rec

        def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if module is not mod:  # a copy of the module (deepcopy copies hooks): not this Monitor's
                return None
            compiling = _is_compiling()
            if compiling:
                state = self._compile_state
                if is_root:
                    rec.trace_start()  # torch.compile traces the model's forward: new check sites
            elif is_root:
                lane = self.lane()
                lane.busy.acquire()  # released by the model's post hook (always called)
                refuse_capture("a call of the model")  # CUDA graphs: see _buffer.py
                state = self._start_call(lane, args, kwargs)
                if state.phase is Phase.LEAN:
                    return None
            else:
                state = self.lane().state
            if not compiling:
                self._inputs_flow(state, path, args, kwargs)
            state.stack.append(path)
            # on_violation's steady state checks the model's outputs only: the
            # inputs are checked in the first call and when a call is re-run
            if is_root and defaults and state.phase is not Phase.STEADY:
                for name, t in input_names(args, kwargs):
                    if t.is_floating_point():
                        slot = in_slots.get(name)
                        if slot is None:
                            slot = in_slots[name] = rec.slot(path, "precondition", "finite(input)", name)
                        rec.range(state, slot, t, INPUT_DATA, "the model's inputs broke its precondition")
            return None

        return pre_hook

    def _make_post(self, path: str, mod: nn.Module, has_pre: bool) -> Callable:
        is_root = path == "" and mod in (self.scope.model, self.scope.inner)
        defaults = path in self.scope.defaults
        preserving = isinstance(mod, FINITE_PRESERVING)
        propagates = propagates_non_finite(mod)
        blame_self = path or "<model>"
        out_slots: dict[str, Slot] = {}
        rec = self.rec
        settings = self.settings

        def out_slot(name: str) -> Slot:
            slot = out_slots.get(name)
            if slot is None:
                slot = out_slots[name] = rec.slot(path, "postcondition", "finite(output)", name)
            return slot

        def post_hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if module is not mod:  # a copy of the module (deepcopy copies hooks): not this Monitor's
                return None
            compiling = _is_compiling()
            if compiling:
                state = self._compile_state
            else:
                lane = self.lane()
                state = lane.state
                if is_root:
                    try:
                        return root_end(lane, state, args, kwargs, output)
                    finally:
                        lane.busy.release()
            return body(state, args, kwargs, output, compiling)

        def root_end(lane: Lane, state: CallState, args: tuple, kwargs: dict, output: Any) -> None:
            if output is None:
                exc = sys.exc_info()[1]
                if isinstance(exc, MonitorError):  # the Monitor refused the call (a CUDA graph capture)
                    state.stack.clear()
                    return None
                if exc is not None:
                    state.stack.clear()
                    self._raised(state, exc)  # the forward raised (this hook is always called)
                    return None
            if state.phase is Phase.LEAN:
                self._lean_end(state, args, output, out_slot)
                return None
            return body(state, args, kwargs, output, False)

        def body(state: CallState, args: tuple, kwargs: dict, output: Any, compiling: bool) -> None:
            if has_pre and state.stack and state.stack[-1] == path:
                state.stack.pop()
            held: list | None = None if has_pre else []
            if compiling:  # traced: no dataflow, flags go to the per-slot buffer
                if defaults:
                    for name, t in named_tensors(output, "output"):
                        if t.is_floating_point() or t.is_complex():
                            rec.range(state, out_slot(name), t, blame_self, "its inputs were finite")
                return None
            if has_pre:
                in_checked, in_dtype = False, None
                if defaults:
                    for t in tensors(args):
                        if t.is_floating_point():
                            in_dtype = t.dtype
                            break
            else:
                in_checked, in_dtype = self._inputs_flow(state, path, args, kwargs, propagates, held)
            producers = state.producers
            phase = state.phase
            diagnosing = phase is Phase.DIAGNOSE
            counted = state.counted
            pending = state.pending
            defer = settings.elide and not phase.again and path in self.coverable
            new: dict = {}  # this call's pending checks (its outputs; pending tensors passed through)
            made_check = False  # this call checks its own output (now or pending)
            outputs = (("output", output),) if type(output) is _Tensor else named_tensors(output, "output")
            for name, t in outputs:
                key = id(t)
                entry = producers.get(key)
                passed_through = entry is not None and entry[0]() is t
                checked = passed_through and entry is not None and entry[2]
                if passed_through and key in pending:
                    new[key] = pending.pop(key)
                if defaults and (t.is_floating_point() or t.is_complex()):
                    if not passed_through and not (preserving and in_checked):
                        slot = out_slot(name)
                        if diagnosing:
                            rec.range(state, slot, t, blame_self, reason(in_checked))
                            checked = True
                        elif t.numel() and not t.is_meta:  # Recorder.range's eager path, inlined: for every leaf
                            made_check = True
                            state.seq += 1
                            event = (slot, state.step, state.call, state.seq, blame_self, reason(in_checked))
                            if defer:  # wait for the consumer: its check may cover this one
                                new[key] = (t, event)
                            else:
                                if counted:
                                    state.lane.checks += 1
                                state.buffer.add_range(t, event)
                                checked = True
                    elif preserving and in_checked:
                        checked = True
                    if in_dtype is not None and t.is_floating_point():
                        if t.dtype != in_dtype and not autocast_allows(in_dtype, t):
                            self._dtype_changed(state, path, name, t, in_dtype)
                        else:  # Recorder.host_ok, inlined
                            state.seq += 1
                            if counted:
                                state.lane.checks += 1
                producers[key] = (weakref.ref(t), path, checked)
                if settings.backward and t.requires_grad and not diagnosing:
                    self.gradients.watch(state, path, t)
            if defaults and type(output) is not _Tensor:
                self._numbers(state, output, out_slot, blame_self)
            if pending:
                # held inputs are covered by this call's own output check;
                # everything else that waited runs now
                covered = held and made_check
                for key, item in pending.items():
                    if not (covered and held is not None and key in held):
                        self._run_check(state, *item, uncovered=True)
                pending.clear()
            if new:
                pending.update(new)
            if is_root:
                self._end_call(state)
            return None

        return post_hook

    def _dtype_changed(self, state: CallState, path: str, name: str, t: torch.Tensor, in_dtype: torch.dtype) -> None:
        self.rec.host_violation(
            state,
            self.rec.slot(path, "postcondition", "dtype stable", name),
            path or "<model>",
            "its preconditions held",
            f"output dtype {t.dtype} differs from input dtype {in_dtype}",
            {"expected": str(in_dtype).replace("torch.", ""), "actual": describe(t)},
        )

    def _lean_end(self, state: CallState, args: tuple, output: Any, out_slot: Callable[[str], Slot]) -> None:
        """The short path's post hook: check the model's outputs (no dataflow:
        a re-run records the edges)."""
        in_dtype = None
        for t in tensors(args):
            if t.is_floating_point():
                in_dtype = t.dtype
                break
        outputs = (("output", output),) if type(output) is _Tensor else named_tensors(output, "output")
        buffer = state.buffer
        for name, t in outputs:
            if t.is_floating_point() or t.is_complex():
                # Recorder.range's eager path, inlined: the steady state's one check
                if buffer.add_range(
                    t, (out_slot(name), state.step, state.call, state.seq + 1, "<model>", _MODEL_OUTPUT)
                ):
                    state.seq += 1
                    state.lane.checks += 1
                if in_dtype is not None and t.is_floating_point():
                    if t.dtype != in_dtype and not autocast_allows(in_dtype, t):
                        self._dtype_changed(state, "", name, t, in_dtype)
                    else:
                        state.seq += 1
                        state.lane.checks += 1
        if type(output) is not _Tensor:
            self._numbers(state, output, out_slot, "<model>")
        self.calls.ended(state)
        if state.buffer.size > FLUSH_AT:
            self.collect(False)

    def _numbers(self, state: CallState, output: Any, out_slot: Callable[[str], Slot], blame: str) -> None:
        """Python numbers in an output (``return loss.item(), logits``) are
        checked for finiteness on the host, where they already are."""
        for name, x in named_numbers(output, "output"):
            if cmath.isfinite(x):
                self.rec.host_ok(state)
            else:
                self.rec.host_violation(
                    state,
                    out_slot(name),
                    blame,
                    "its output holds a non-finite Python number",
                    f"{name} = {x!r}",
                    {"value": repr(x)},
                )
