"""ModularModel: a small graph of named modules with an interface on every edge.

Nodes are added in dataflow order; each names its sources (graph inputs or
earlier nodes, ``node.out`` for one output of a multi-output node), matched
in order to its interface's inputs. Every operation (``add``/``augment``,
``substitute``, ``exclude``, ``augment_class``/``exclude_class``, ``port``,
``split``) first checks the edges it creates or changes with
``interfaces.check_compatible`` and refuses with a ``CompatibilityError``
naming each edge and every reason, leaving the model unchanged.

Modules are registered under their node names, so a Monitor's module path
(``encoder`` or ``encoder.0``) names the node (``node_of``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from modpact.errors import CompatibilityError, SpecError
from modpact.interfaces import Interface, LabelSpace, TensorSpec, check_compatible
from modpact.interfaces.nested import Spec

if TYPE_CHECKING:
    from .compose import ComposedClassifier

__all__ = ["ModularModel", "Node"]


@dataclass
class Node:
    interface: Interface
    inputs: list[str] = field(default_factory=list)


def _interface_of(module: nn.Module, interface: Interface | None, name: str) -> Interface:
    iface = interface if interface is not None else getattr(module, "interface", None)
    if not isinstance(iface, Interface):
        raise SpecError(
            f"node {name!r}: no interface; pass interface=... (or infer_interface(module, example)) "
            f"for {type(module).__name__}"
        )
    return iface


class ModularModel(nn.Module):
    """``ModularModel(inputs={"x": TensorSpec(...)})`` then ``add(name, module, inputs=[...])``."""

    def __init__(self, inputs: Mapping[str, TensorSpec], name: str = "model"):
        super().__init__()
        if not isinstance(inputs, Mapping) or not inputs or not all(isinstance(v, TensorSpec) for v in inputs.values()):
            raise SpecError(f"ModularModel(inputs={inputs!r}): expected a non-empty dict name -> TensorSpec")
        self.name = name
        self.input_specs = dict(inputs)
        self.nodes: dict[str, Node] = {}
        self.outputs: list[str] = []

    # ---- structure ------------------------------------------------------------------
    def module(self, name: str) -> nn.Module:
        self._need(name, "module")
        return self._node_module(name)

    def _node_module(self, name: str) -> nn.Module:
        m = self._modules[name]
        assert m is not None  # every node has a module
        return m

    def _need(self, name: str, op: str) -> None:
        if name not in self.nodes:
            raise SpecError(f"{op}({name!r}): no node named {name!r}; nodes are {list(self.nodes)}")

    def spec_of(self, source: str) -> Spec:
        """The spec a source (graph input, ``node`` or ``node.out``) produces."""
        return self._spec(self.nodes, source)

    def _spec(self, nodes: Mapping[str, Node], source: str) -> Spec:
        if source in self.input_specs:
            return self.input_specs[source]
        node, _, out = source.partition(".")
        if node not in nodes:
            raise SpecError(
                f"source {source!r} is neither a graph input {list(self.input_specs)} nor a node {list(nodes)}"
            )
        outs = nodes[node].interface.outputs
        if out:
            if out not in outs:
                raise SpecError(f"source {source!r}: node {node!r} has no output {out!r}; outputs are {list(outs)}")
            return outs[out]
        if len(outs) != 1:
            raise SpecError(f"source {source!r}: node {node!r} has outputs {list(outs)}; name one as '{node}.<out>'")
        return next(iter(outs.values()))

    def edges(self) -> list[tuple[str, str, str]]:
        """``(source, node, input name)`` for every edge."""
        return [(src, n, k) for n, node in self.nodes.items() for src, k in zip(node.inputs, node.interface.inputs)]

    def consumers(self, name: str) -> list[tuple[str, str, str]]:
        return [e for e in self.edges() if e[0].partition(".")[0] == name]

    def node_of(self, module_path: str) -> str:
        """The node a module path (as the Monitor reports it) belongs to."""
        head = module_path.split(".")[0]
        if head not in self.nodes:
            raise SpecError(
                f"module path {module_path!r} is not inside any node of {self.name!r}; nodes are {list(self.nodes)}"
            )
        return head

    @property
    def interface(self) -> Interface:
        return Interface(self.name, self.input_specs, {o.replace(".", "_"): self.spec_of(o) for o in self.outputs})

    # ---- checking ---------------------------------------------------------------------
    def _edge_reasons(self, nodes: Mapping[str, Node], only: set[str] | None = None) -> list[str]:
        reasons = []
        for n, node in nodes.items():
            if len(node.inputs) != len(node.interface.inputs):
                reasons.append(
                    f"node {n!r}: {len(node.inputs)} source(s) {node.inputs} for "
                    f"{len(node.interface.inputs)} input(s) {list(node.interface.inputs)}"
                )
                continue
            for src, (k, want) in zip(node.inputs, node.interface.inputs.items()):
                if only is not None and n not in only and src.partition(".")[0] not in only:
                    continue
                got = self._spec(nodes, src)
                for r in check_compatible(got, want).reasons:
                    reasons.append(f"edge {src} -> {n}.{k}: {r.removeprefix('tensor: ')}")
        return reasons

    def check(self) -> list[str]:
        """Every reason any edge is incompatible (empty when all edges hold)."""
        return self._edge_reasons(self.nodes)

    def _commit(
        self,
        op: str,
        nodes: dict[str, Node],
        modules: Mapping[str, nn.Module | None],
        touched: set[str],
        extra: Sequence[str] = (),
    ) -> None:
        """Check the edges around ``touched`` in the proposed graph; apply it or refuse."""
        modules = dict(modules)
        reasons = list(extra) + self._edge_reasons(nodes, only=touched)
        if reasons:
            raise CompatibilityError(
                f"{self.name}: {op} refused: {len(reasons)} incompatibilit{'y' if len(reasons) == 1 else 'ies'}",
                reasons,
            )
        for n in list(self._modules):
            del self._modules[n]
        for n in nodes:
            self._modules[n] = modules[n]
        self.nodes = nodes
        self.outputs = [o for o in self.outputs if o.partition(".")[0] in nodes]

    def _sources_known(self, op: str, name: str, inputs: Sequence[str], nodes: Mapping[str, Node]) -> None:
        for s in inputs:
            if s not in self.input_specs and s.partition(".")[0] not in nodes:
                raise SpecError(
                    f"{op}({name!r}): source {s!r} is neither a graph input {list(self.input_specs)} "
                    f"nor an earlier node {list(nodes)}"
                )

    # ---- operators ----------------------------------------------------------------------
    def add(
        self,
        name: str,
        module: nn.Module,
        inputs: Sequence[str],
        *,
        interface: Interface | None = None,
        output: bool = False,
    ) -> ModularModel:
        """Add a node fed by ``inputs`` (in order of its interface's inputs)."""
        return self.augment(name, module, inputs, interface=interface, output=output)

    def augment(
        self,
        name: str,
        module: nn.Module,
        inputs: Sequence[str],
        *,
        interface: Interface | None = None,
        output: bool = False,
    ) -> ModularModel:
        """Add a module as a new node; refuses if any of its input edges is incompatible."""
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or name in self.nodes
            or hasattr(self, name)
            or name in self.input_specs
        ):
            raise SpecError(
                f"augment({name!r}): node names must be new identifiers that are not attributes "
                f"of ModularModel or graph inputs"
            )
        if not isinstance(module, nn.Module):
            raise SpecError(f"augment({name!r}): expected an nn.Module, got {type(module).__name__}")
        iface = _interface_of(module, interface, name)
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        self._sources_known("augment", name, inputs, self.nodes)
        nodes = {**self.nodes, name: Node(iface, inputs)}
        self._commit(f"augment({name!r})", nodes, {**self._modules, name: module}, {name})
        if output:
            self.outputs.append(name)
        return self

    def substitute(self, name: str, module: nn.Module, *, interface: Interface | None = None) -> ModularModel:
        """Replace node ``name``'s module. Refuses unless every edge around it holds and the
        new interface can stand in for the old one (inputs contravariant, outputs covariant)."""
        self._need(name, "substitute")
        iface = _interface_of(module, interface, name)
        old = self.nodes[name]
        variance = [
            f"interface {iface.name!r} for {old.interface.name!r}: {r}"
            for r in iface.is_substitutable_for(old.interface).reasons
        ]
        nodes = {n: (Node(iface, old.inputs) if n == name else v) for n, v in self.nodes.items()}
        self._commit(f"substitute({name!r})", nodes, {**self._modules, name: module}, {name}, variance)
        return self

    def exclude(self, name: str) -> ModularModel:
        """Remove a node; refuses while another node consumes it or it is the only output."""
        self._need(name, "exclude")
        reasons = [f"edge {s} -> {n}.{k}: node {n!r} still consumes {name!r}" for s, n, k in self.consumers(name)]
        if [o.partition(".")[0] for o in self.outputs] == [name]:
            reasons.append(f"{name!r} is the model's only output")
        nodes = {n: v for n, v in self.nodes.items() if n != name}
        self._commit(f"exclude({name!r})", nodes, self._modules, set(), reasons)
        return self

    def _replace_head(self, op: str, name: str, new: ComposedClassifier) -> None:
        nodes = {n: (Node(new.interface, v.inputs) if n == name else v) for n, v in self.nodes.items()}
        self._commit(op, nodes, {**self._modules, name: new}, {name})

    def augment_class(self, name: str, class_module: nn.Module) -> ModularModel:
        """Add a class to the composed classifier at node ``name`` (its label space grows;
        consumers of ``name`` must accept the new one)."""
        self._need(name, "augment_class")
        head = self._composed(name, "augment_class")
        self._replace_head(
            f"augment_class({name!r}, {cast(LabelSpace, class_module.label_space).labels[0]!r})",
            name,
            head.with_class(class_module),
        )
        return self

    def exclude_class(self, name: str, label: str) -> ModularModel:
        """Remove class ``label`` from the composed classifier at node ``name``."""
        self._need(name, "exclude_class")
        head = self._composed(name, "exclude_class")
        self._replace_head(f"exclude_class({name!r}, {label!r})", name, head.without_class(label))
        return self

    def _composed(self, name: str, op: str) -> ComposedClassifier:
        from .compose import ComposedClassifier

        m = self._modules[name]
        if not isinstance(m, ComposedClassifier):
            raise SpecError(f"{op}({name!r}): node {name!r} is a {type(m).__name__}, not a composed classifier")
        return m

    def port(
        self, name: str, source: ModularModel, node: str | None = None, *, inputs: Sequence[str] | None = None
    ) -> ModularModel:
        """Reuse ``source``'s node (a deep copy, default: the same name) here: it substitutes
        node ``name`` if there is one, else it is added fed by ``inputs``."""
        node = node or name
        source._need(node, "port")
        module = copy.deepcopy(source.module(node))
        iface = source.nodes[node].interface
        if name in self.nodes:
            return self.substitute(name, module, interface=iface)
        if inputs is None:
            raise SpecError(f"port({name!r}): {name!r} is a new node here; say which sources feed it with inputs=[...]")
        return self.augment(name, module, inputs, interface=iface)

    def split(self, name: str, at: Sequence[str], example: Any) -> ModularModel:
        """Replace node ``name`` by its stages (``modpact.split``), named ``name_0``, ``name_1``..
        The outer ends keep the node's declared interface; inner cuts get inferred ones."""
        from .split import split as split_model

        self._need(name, "split")
        old = self.nodes[name]
        parts = split_model(self._node_module(name), at, example, name=name)
        unchecked = [
            f"{name}_{k}: {', '.join(c for c in carried if c not in parts.interfaces[k].outputs)}"
            for k, carried in enumerate(parts.carried)
            if list(parts.interfaces[k].outputs) != carried
        ]
        if unchecked:  # every edge is checked by its interfaces; a value they do not describe cannot be
            raise SpecError(
                f"split({name!r}): values cross the cuts that no interface describes, so their edges cannot be "
                f"checked: {'; '.join(unchecked)} (Split.undescribed says what they are)"
            )
        names = [f"{name}_{k}" for k in range(len(parts))]
        clash = [n for n in names if n in self.nodes or hasattr(self, n)]
        if clash:
            raise SpecError(f"split({name!r}): stage names {clash} are taken")
        ifaces = list(parts.interfaces)
        ifaces[0] = Interface(
            ifaces[0].name,
            dict(zip(ifaces[0].inputs, old.interface.inputs.values())),
            ifaces[0].outputs if len(ifaces) > 1 else old.interface.outputs,
        )
        if len(ifaces) > 1:
            ifaces[-1] = Interface(ifaces[-1].name, ifaces[-1].inputs, old.interface.outputs)
        nodes: dict[str, Node] = {}
        modules = dict(self._modules)
        for n, v in self.nodes.items():
            if n != name:
                nodes[n] = Node(v.interface, [names[-1] if s == name else s for s in v.inputs])
                continue
            for k, (sn, stage) in enumerate(zip(names, parts.stages)):
                srcs = (
                    old.inputs
                    if k == 0
                    else (
                        [names[k - 1]]
                        if len(ifaces[k].inputs) == 1
                        else [f"{names[k - 1]}.{o}" for o in ifaces[k - 1].outputs]
                    )
                )
                nodes[sn] = Node(ifaces[k], list(srcs))
                modules[sn] = _Spread(stage, list(ifaces[k].outputs)) if len(ifaces[k].outputs) > 1 else stage
        outputs = [names[-1] if o == name else o for o in self.outputs]
        self._commit(f"split({name!r})", nodes, modules, set(names))
        self.outputs = outputs
        return self

    # ---- running --------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.outputs:
            raise SpecError(f"{self.name}: no outputs; add a node with output=True")
        names = list(self.input_specs)
        if len(args) > len(names):
            raise SpecError(f"{self.name}: {len(args)} positional inputs for graph inputs {names}")
        env: dict[str, Any] = dict(zip(names, args), **kwargs)
        missing = [n for n in names if n not in env]
        if missing:
            raise SpecError(f"{self.name}: graph input(s) {missing} not given")
        for n, node in self.nodes.items():
            env[n] = self._node_module(n)(*[self._value(env, s) for s in node.inputs])
        outs = [self._value(env, o) for o in self.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _value(self, env: dict[str, Any], source: str) -> Any:
        node, _, out = source.partition(".")
        v = env[node]
        return v[out] if out else v

    def extra_repr(self) -> str:
        return "\n".join(f"{s} -> {n}.{k}" for s, n, k in self.edges()) + f"\noutputs: {self.outputs}"


class _Spread(nn.Module):
    """A stage with several outputs, returning them by name (for ``node.out`` edges)."""

    def __init__(self, stage: nn.Module, out_names: list[str]):
        super().__init__()
        self.stage = stage
        self.out_names = out_names

    def forward(self, *args: Any) -> dict[str, torch.Tensor]:
        return dict(zip(self.out_names, self.stage(*args)))
