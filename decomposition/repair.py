"""Repair one blamed module of a ModularModel while the rest stays frozen.

``repair(model, blamed, data)``: ``blamed`` is a node name, a module path, or
a ``DiagnosisReport`` (its ``root_cause.module`` names the path). The blamed
node is retrained in place (``epochs`` of end-to-end cross-entropy, only its
parameters trainable; ``reinit=True`` starts from fresh weights), or replaced
by ``replacement`` (checked by ``ModularModel.substitute``: refused with a
``CompatibilityError`` if an edge or the interface does not hold; a
replacement without an ``.interface`` is taken to claim the node's, which the
final check then verifies on data) and then
fine-tuned for ``epochs`` (0: a plain swap).

The values the blamed node does not influence (graph inputs and upstream
nodes) are computed once, so each step runs only the blamed node and what
lies downstream. Compute is reported as FLOPs (``torch.utils.flop_counter``,
one epoch counted on a copy, times the number of epochs) and wall time
(measured without the counter), next to retraining the whole model from fresh
weights for ``full_epochs`` with the same data and optimizer
(``compare_full=True``).

Finally the repaired node is checked: on the evaluation data with contracts
on, and with ``modpact.check_substitutable`` on ``examples`` inputs generated
from its interface (see ``_substitutable``).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from modpact.contracts import disabled
from modpact.errors import ContractViolation, SpecError

from .modular import ModularModel
from .training import accuracy

__all__ = ["repair", "RepairResult", "Compute", "SubstitutionCheck"]


@dataclass
class Compute:
    """Training compute: FLOPs (forward and backward) and wall-clock seconds."""

    flops: int
    seconds: float


@dataclass
class SubstitutionCheck:
    """Whether the repaired module can stand in for the node: ``ok`` and every reason it cannot."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    checked: str = ""
    validation: Any = None  # the SubstitutionResult of check_substitutable, when it ran


@dataclass
class RepairResult:
    """What ``repair`` did and what it cost (``full``: retraining the whole model)."""

    node: str
    how: str  # "retrain" | "replace"
    accuracy_before: float | None
    accuracy_after: float | None
    compute: Compute
    substitutable: SubstitutionCheck
    full: Compute | None = None
    full_accuracy: float | None = None

    @property
    def flops_ratio(self) -> float | None:
        """Repair FLOPs / whole-model retraining FLOPs."""
        return self.compute.flops / self.full.flops if self.full and self.full.flops else None

    @property
    def time_ratio(self) -> float | None:
        return self.compute.seconds / self.full.seconds if self.full and self.full.seconds else None

    def __str__(self) -> str:
        acc = lambda a: "n/a" if a is None else f"{100 * a:.2f}%"  # noqa: E731
        lines = [
            f"repair of {self.node!r} ({self.how}): accuracy {acc(self.accuracy_before)} -> {acc(self.accuracy_after)}",
            f"  compute: {self.compute.flops / 1e6:.1f} MFLOP, {self.compute.seconds:.3f} s",
        ]
        if self.full:
            lines.append(
                f"  whole-model retraining: {self.full.flops / 1e6:.1f} MFLOP, {self.full.seconds:.3f} s, "
                f"accuracy {acc(self.full_accuracy)} (repair used {self.flops_ratio:.1%} of the FLOPs, "
                f"{self.time_ratio:.1%} of the time)"
            )
        sub = self.substitutable
        lines.append(f"  substitutable: {'yes' if sub.ok else 'NO'} ({sub.checked})")
        lines += [f"    - {r}" for r in sub.reasons]
        return "\n".join(lines)


def _blamed_node(model: ModularModel, blamed: Any) -> str:
    if isinstance(blamed, str):
        return model.node_of(blamed)
    root = getattr(blamed, "root_cause", None)
    if not hasattr(blamed, "root_cause"):
        raise SpecError(f"repair(blamed={blamed!r}): expected a node name, a module path or a DiagnosisReport")
    if root is None:
        raise SpecError("repair: the diagnosis report has no root cause (a clean run): nothing to repair")
    if not root.module:
        raise SpecError(f"repair: the root cause blames {root.blame!r}, not a module of {model.name!r}")
    return model.node_of(root.module)


def _downstream(model: ModularModel, node: str) -> list[str]:
    hit = {node}
    for n, v in model.nodes.items():
        if any(s.partition(".")[0] in hit for s in v.inputs):
            hit.add(n)
    return [n for n in model.nodes if n in hit]


class _Suffix(nn.Module):
    """Runs only the nodes from ``affected`` on cached upstream values."""

    def __init__(self, model: ModularModel, affected: list[str]):
        super().__init__()
        self.model = model
        self.affected = affected

    def forward(self, cache: dict[str, Any]) -> Any:
        env = dict(cache)
        for n in self.affected:
            env[n] = self.model.module(n)(*[self.model._value(env, s) for s in self.model.nodes[n].inputs])
        outs = [self.model._value(env, o) for o in self.model.outputs]
        return outs[0]


@torch.no_grad()
def _upstream_cache(model: ModularModel, x: torch.Tensor, affected: list[str]) -> dict[str, Any]:
    env: dict[str, Any] = {next(iter(model.input_specs)): x}
    for n, v in model.nodes.items():
        if n not in affected:
            env[n] = model.module(n)(*[model._value(env, s) for s in v.inputs])
    return env


def _take(cache: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    return {
        k: (v[idx] if isinstance(v, torch.Tensor) else {kk: vv[idx] for kk, vv in v.items()}) for k, v in cache.items()
    }


def _fit(
    step_model: Callable[[torch.Tensor], Any],
    params: list[nn.Parameter],
    n: int,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(step_model(idx), y[idx]).backward()
            opt.step()


def _train_counted(make_step, params_of, n, y, epochs, lr, batch_size, seed, counted_copy) -> Compute:
    """Wall time of the real training; FLOPs of one epoch on a copy, times ``epochs``."""
    flops = 0
    if epochs:
        shadow = counted_copy()
        with FlopCounterMode(display=False) as counter:
            _fit(make_step(shadow), params_of(shadow), n, y, 1, lr, batch_size, seed)
        flops = counter.get_total_flops() * epochs
    t0 = time.perf_counter()
    _fit(make_step(None), params_of(None), n, y, epochs, lr, batch_size, seed)
    return Compute(flops, time.perf_counter() - t0)


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if reset is not None:
            reset()


def _on_data(model: ModularModel, node: str, x: torch.Tensor) -> list[str]:
    """Every edge holds, the model runs on ``x`` with its contracts on, and the
    node's inputs and outputs match its interface."""
    iface = model.nodes[node].interface
    reasons = list(model.check())
    try:
        with torch.no_grad():
            env = _upstream_cache(model, x, [])
    except ContractViolation as e:
        reasons.append(f"contract broken on the evaluation inputs: {e.headline}")
        with disabled(), torch.no_grad():
            env = _upstream_cache(model, x, [])
    args = [model._value(env, s) for s in model.nodes[node].inputs]
    problems, b = iface.input_problems(args)
    problems2, _ = iface.output_problems(env[node], b)
    return reasons + [str(p) for p in problems + problems2]


def _substitutable(
    model: ModularModel, node: str, before: nn.Module, x: torch.Tensor, examples: int, seed: int
) -> SubstitutionCheck:
    """``_on_data``, then ``check_substitutable(before, repaired, interface, top1=0)``
    on ``examples`` generated inputs (skipped when 0 or Hypothesis is missing):
    the repaired node's interface can replace the node's, and its outputs on
    inputs generated from the node's input interface keep its output interface
    and contracts. ``top1=0``: agreement with the faulty module is reported,
    not required."""
    reasons = _on_data(model, node, x)
    iface = model.nodes[node].interface
    checked = f"interface {iface.name!r}, contracts and every edge on {len(x)} evaluation inputs"
    result = None
    if examples > 0 and importlib.util.find_spec("hypothesis") is not None:
        from modpact.validation import check_substitutable

        with disabled(), torch.no_grad():
            env = _upstream_cache(model, x, [])
        node_x = [model._value(env, s) for s in model.nodes[node].inputs]
        result = check_substitutable(
            before,
            model.module(node),
            interface=iface,
            top1=0.0,
            data=node_x[0] if len(node_x) == 1 else dict(zip(iface.inputs, node_x)),
            max_examples=examples,
            seed=seed,
            raise_on_failure=False,
        )
        reasons += result.failures
        failure = getattr(result, "failure", None)
        if failure is not None:
            reasons += [line.strip() for line in str(failure).splitlines()[1:3]]
        checked += f"; check_substitutable on {examples} generated inputs"
    return SubstitutionCheck(not reasons, reasons, checked, result)


def repair(
    model: ModularModel,
    blamed: Any,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    replacement: nn.Module | None = None,
    reinit: bool = False,
    epochs: int = 20,
    lr: float = 3e-3,
    batch_size: int = 128,
    seed: int = 0,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    compare_full: bool = True,
    full_epochs: int | None = None,
    examples: int = 50,
) -> RepairResult:
    """Retrain or replace only the blamed node of ``model`` (changed in place).
    Contracts are off while it trains; the final check runs them."""
    with disabled():
        node = _blamed_node(model, blamed) if isinstance(model, ModularModel) else None
        before = copy.deepcopy(model.module(node)) if node else None
        result = _repair(
            model, blamed, data, replacement, reinit, epochs, lr, batch_size, seed, eval_data, compare_full, full_epochs
        )
    x_eval = (eval_data if eval_data is not None else data)[0]
    assert before is not None  # _repair refused anything but a node of a ModularModel
    result.substitutable = _substitutable(model, result.node, before, x_eval, examples, seed)
    return result


def _repair(
    model, blamed, data, replacement, reinit, epochs, lr, batch_size, seed, eval_data, compare_full, full_epochs
) -> RepairResult:
    if not isinstance(model, ModularModel):
        raise SpecError(f"repair: expected a ModularModel, got {type(model).__name__}")
    if len(model.input_specs) != 1 or len(model.outputs) != 1:
        raise SpecError("repair: supports models with one graph input and one output (a classifier)")
    x, y = data
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and len(x) == len(y) > 0):
        raise SpecError("repair(data=(x, y)): expected two tensors with the same, non-zero number of rows")
    node = _blamed_node(model, blamed)
    ex, ey = eval_data if eval_data is not None else (x, y)
    before = accuracy(model, ex, ey)
    if replacement is not None:
        claimed = getattr(replacement, "interface", None) or model.nodes[node].interface
        model.substitute(node, replacement, interface=claimed)
    elif reinit:
        _reset(model.module(node))
    affected = _downstream(model, node)
    cache = _upstream_cache(model, x, affected)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.module(node).parameters():
        p.requires_grad_(True)

    def make_step(m):
        suffix = _Suffix(m or model, affected)
        suffix.train()
        return lambda idx: suffix(_take(cache, idx))

    def params_of(m):
        return [p for p in (m or model).module(node).parameters() if p.requires_grad]

    compute = _train_counted(
        make_step, params_of, len(x), y, epochs, lr, batch_size, seed, lambda: copy.deepcopy(model)
    )
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    after = accuracy(model, ex, ey)
    full = full_acc = None
    if compare_full:
        whole = copy.deepcopy(model)
        _reset(whole)
        fe = epochs if full_epochs is None else full_epochs
        full = _train_counted(
            lambda m: lambda idx: (m or whole)(x[idx]),
            lambda m: list((m or whole).parameters()),
            len(x),
            y,
            fe,
            lr,
            batch_size,
            seed,
            lambda: copy.deepcopy(whole),
        )
        whole.eval()
        full_acc = accuracy(whole, ex, ey)
    return RepairResult(
        node,
        "replace" if replacement is not None else "retrain",
        before,
        after,
        compute,
        SubstitutionCheck(False, ["not checked"]),
        full,
        full_acc,
    )
