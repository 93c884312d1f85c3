"""``Boundary``: the contracts of one boundary (a module or a function),
checked and precomputed when it is built, with the helpers checkers use.

A checker (``checking.py``) reads a Boundary; ``Guard`` (``guard.py``) is the
Boundary that is attached to a module or a function and runs each call
through the current checker.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch

from modpact.errors import SpecError
from modpact.interfaces.interface import Interface, named_values
from modpact.interfaces.nested import leaf_values, leaves
from modpact.interfaces.spec import TensorSpec

from ._fastmeta import CallPlan, MetaPlan, compile_call, compile_side
from ._modes import ContractMode, check_mode
from .binding import Binder
from .condition import Condition, Custom
from .conditions import Finite

__all__ = ["Boundary"]


class Boundary:
    """Contracts of one boundary (a module or a function), prepared for checkers.

    Attributes: ``interface``, ``requires``, ``ensures`` (tuples of
    Condition), ``name`` (module path used in messages; the Monitor may set
    it), ``mode`` (None: the global mode), ``every`` (check every N-th call),
    ``producer`` (blame hint for inputs: a party name, or a mapping argument
    name -> party, ``"*"`` for any), ``snapshot`` (old.<name> copies),
    ``violations`` (record mode).
    """

    def __init__(
        self,
        *,
        interface: Interface | None = None,
        requires: Sequence[Condition] = (),
        ensures: Sequence[Condition] = (),
        name: str = "",
        mode: ContractMode | None = None,
        every: int = 1,
        producer: str | Mapping[str, str] | None = None,
        snapshot: Mapping[str, Any] | None = None,
        binder: Binder,
        owner: str,
        declared_at: str | None = None,
    ):
        check_mode(mode)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SpecError(f"Expected every to be a positive int, got {every!r}")
        if producer is not None and not isinstance(producer, (str, Mapping)):
            raise SpecError(f"Expected producer to be a party name or a mapping argument -> party, got {producer!r}")
        self.interface = interface
        self.requires = tuple(requires)
        self.ensures = tuple(ensures)
        self.name = name
        self.mode = mode
        self.every = every
        self.producer = producer
        self.snapshot: dict[str, Custom] = {}
        self.binder = binder
        self.owner = owner
        self.declared_at = declared_at
        self.violations: list[Any] = []
        self.add_snapshot(snapshot)
        self._prepare()

    def add_snapshot(self, snapshot: Mapping[str, Any] | None) -> None:
        """``old.<key>`` = ``fn(<its arguments>)`` taken before each checked call."""
        if snapshot is None:
            return
        if not isinstance(snapshot, Mapping):
            raise SpecError(f"Expected snapshot to be a mapping name -> callable, got {snapshot!r}")
        for k, fn in snapshot.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise SpecError(f"Expected snapshot keys to be identifiers, got {k!r}")
            c = fn if isinstance(fn, Custom) else Custom(fn, declared_at=self.declared_at)
            for n in c.reads:
                if n not in self.binder.all_names and n not in c.optional and self.binder.var_kw is None:
                    raise SpecError(
                        f"snapshot {k!r} ({c.text}) on {self.owner}: parameter {n!r} is not an "
                        f"argument (arguments: {self.binder.describe()})"
                    )
            self.snapshot[k] = c

    # --- precomputation -------------------------------------------------
    def _prepare(self) -> None:
        iface = self.interface
        self._in_pairs: tuple[tuple[str, str], ...] = ()  # (interface input name, argument name)
        self.out_names: tuple[str, ...] = ()
        self.in_value_specs: tuple[tuple[str, Any], ...] = ()
        self.out_value_specs: tuple[tuple[str, Any], ...] = ()
        self.fast_in: MetaPlan | None = None  # compiled metadata fast paths (None: always the full check)
        self.fast_out: MetaPlan | None = None
        self._nested_in = self._nested_out = False
        if iface is not None:
            if not (hasattr(iface, "input_problems") and hasattr(iface, "output_problems")):
                raise SpecError(f"Expected interface to be a modpact Interface, got {iface!r}")
            ins = tuple(getattr(iface, "inputs", {}) or {})
            names = self.binder.all_names
            if all(n in names for n in ins):
                self._in_pairs = tuple((n, n) for n in ins)
            elif len(ins) <= len(self.binder.names):
                self._in_pairs = tuple(zip(ins, self.binder.names))
            else:
                raise SpecError(
                    f"interface {getattr(iface, 'name', '')!r} declares inputs {', '.join(ins)} but "
                    f"{self.owner} takes ({self.binder.describe()}): neither names nor positions match"
                )
            self.out_names = tuple(getattr(iface, "outputs", {}) or {})
            self.fast_in = compile_side(iface.inputs, tuple(a for _, a in self._in_pairs))
            self.fast_out = compile_side(iface.outputs) if self.fast_in is not None else None
            # value checks per tensor leaf: a nested spec's leaves are named by their path (hx[0], out.logits)
            self._nested_in = any(not isinstance(s, TensorSpec) for s in iface.inputs.values())
            self._nested_out = any(not isinstance(s, TensorSpec) for s in iface.outputs.values())
            self.in_value_specs = _value_specs(iface.inputs)
            self.out_value_specs = _value_specs(iface.outputs)
        conds = self.requires + self.ensures
        self.needs_call = any(c.needs_call for c in conds)
        self.needs_old = any("old" in c.reads or getattr(c, "takes_any", False) for c in self.ensures)
        self._validate()
        self.plan = self._compile_plan()

    def _compile_plan(self) -> CallPlan | None:
        """The happy path of the eager checker, compiled (see ``_fastmeta.CallPlan``), or None when
        this boundary has anything it does not cover: nested or non-simple specs, value domains
        in the specs, conditions other than ``finite``, ``old`` or the call itself."""
        iface = self.interface
        if iface is not None and (self.fast_in is None or self.fast_out is None):
            return None
        if self.in_value_specs or self.out_value_specs or self.needs_call or self.needs_old:
            return None
        if not all(type(c) is Finite for c in self.requires + self.ensures):
            return None
        return compile_call(
            self.binder,
            self.fast_in,
            tuple(a for _, a in self._in_pairs),
            self.fast_out,
            self.out_names,
            tuple(n for c in self.requires for n in c.reads),
            tuple(n for c in self.ensures for n in c.reads),
            dict(getattr(iface, "dims", None) or {}),
        )

    def _validate(self) -> None:
        args = self.binder.all_names
        open_kw = self.binder.var_kw is not None
        post_extra = ("result", "old") + tuple(n for n in self.out_names if n not in args)
        for what, conds, extra in (("requires", self.requires, ()), ("ensures", self.ensures, post_extra)):
            for c in conds:
                optional: Collection[str] = getattr(c, "optional", frozenset())
                for n in c.reads:
                    if n in args or n in extra or open_kw or n in optional:
                        continue
                    also = f"; also {', '.join(extra)}" if extra else ""
                    nm = self.owner.rsplit(".", 1)[-1]
                    kind = (
                        f"condition parameter {n!r} is" if isinstance(c, Custom) else f"condition reads {n!r}, which is"
                    )
                    raise SpecError(
                        f"{what}({c.text}) on {nm}({self.binder.describe()}): {kind} not an argument "
                        f"of {nm} (arguments: {self.binder.describe()}{also})"
                    )
                if (
                    what == "requires"
                    and ("result" in c.reads or "old" in c.reads)
                    and "result" not in args
                    and "old" not in args
                ):
                    bad = "result" if "result" in c.reads else "old"
                    raise SpecError(
                        f"requires({c.text}) on {self.owner}: a precondition cannot read {bad!r}; use ensures"
                    )

    def add(self, requires: Sequence[Condition] = (), ensures: Sequence[Condition] = ()) -> None:
        """Add conditions (checked first, in the given order) and re-validate."""
        self.requires = tuple(requires) + self.requires
        self.ensures = tuple(ensures) + self.ensures
        self._prepare()

    # --- helpers for checkers -------------------------------------------
    def fast_input_binds(self, env: Mapping[str, Any]) -> dict[str, int] | None:
        """The dims the inputs bind (plain ints) when the compiled metadata check and the
        interface's dims bounds certainly hold; None: run the full check (it names what broke)."""
        fast, iface = self.fast_in, self.interface
        binds = fast.run_env(env, {}) if fast is not None else None
        if binds is not None and iface is not None and iface.dims and not iface.dims_hold(binds):
            return None
        return binds

    def fast_outputs_ok(self, result: Any, binds: Any) -> bool:
        """Whether the outputs certainly fit, given ``fast_input_binds``'s dims (updated in place)."""
        fast, iface = self.fast_out, self.interface
        if fast is None or iface is None or type(binds) is not dict or fast.run(result, binds) is None:
            return False
        return not iface.dims or iface.dims_hold(binds)

    def input_values(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """The interface's inputs by interface name (matched by name, else by position)."""
        return {k: env[a] for k, a in self._in_pairs}

    def input_leaves(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs for value checks: ``input_values``, with each tensor of a
        nested input also under its path (``hx[0]``), as ``in_value_specs`` names them."""
        named = self.input_values(env)
        if self._nested_in and self.interface is not None:
            return _with_leaves(self.interface.inputs, named)
        return named

    def output_leaves(self, result: Any) -> dict[str, Any]:
        """``named_outputs``, with each tensor of a nested output also under its path."""
        named = self.named_outputs(result)
        if self._nested_out and self.interface is not None:
            return _with_leaves(self.interface.outputs, named)
        return named

    def output_values(self, env: Mapping[str, Any]) -> Any:
        """The call's result as given (tensor, tuple or mapping)."""
        return env["result"]

    def named_outputs(self, result: Any) -> dict[str, Any]:
        """The result named after the interface's outputs."""
        names = self.out_names
        if isinstance(result, torch.Tensor):
            return {names[0]: result} if len(names) == 1 else {}
        if self._nested_out and self.interface is not None:
            return named_values(self.interface.outputs, result)
        if isinstance(result, (tuple, list)):
            return dict(zip(names, result))
        if isinstance(result, Mapping):
            return {n: result[n] for n in names if n in result}
        return {}


def _has_domain(spec: Any) -> bool:
    return bool(getattr(spec, "has_value_domain", False))


def _value_specs(specs: Mapping[str, Any]) -> tuple[tuple[str, TensorSpec], ...]:
    """(name, TensorSpec) of every tensor leaf with a value domain; a nested leaf is named by its path."""
    out: list[tuple[str, TensorSpec]] = []
    for k, s in specs.items():
        if _has_domain(s):
            out += [(p, leaf) for p, leaf in leaves(s, k) if leaf.has_value_domain]
    return tuple(out)


def _with_leaves(specs: Mapping[str, Any], named: dict[str, Any]) -> dict[str, Any]:
    out = dict(named)
    for path, _, v in leaf_values({k: s for k, s in specs.items() if not isinstance(s, TensorSpec)}, named):
        out[path] = v
    return out
