"""Report assembly: a Monitor's records, graph and contracts as a DiagnosisReport.

Records from every rank are merged (one record per violation, with the
ranks it occurred on), root causes are assigned over the calls' dataflow
(``violations.assign_roots``), and the report gets the module graph and the
contracts as written. The Monitor's own records are copied, never changed.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from modpact.runtime import distributed as D
from modpact.runtime.calls import MAX_KEPT
from modpact.runtime.contracts_info import module_contracts
from modpact.runtime.hooks import Hooks
from modpact.runtime.recording import Recorder
from modpact.runtime.records import ModuleContracts, ViolationRecord
from modpact.runtime.report import DiagnosisReport
from modpact.runtime.scope import Scope, Settings
from modpact.runtime.violations import Dataflow, assign_roots

__all__ = ["assemble"]


def _totals(counts: dict[tuple[str, str, str], int], records: list[ViolationRecord]) -> dict[str, int]:
    """Counts per "module: kind check", only when some were not kept as records."""
    if sum(counts.values()) <= len(records):
        return {}
    return {f"{where}: {kind} {check}": n for (where, kind, check), n in sorted(counts.items()) if n}


def assemble(
    scope: Scope,
    settings: Settings,
    hooks: Hooks,
    rec: Recorder,
    remote: list[ViolationRecord],
    world_size: int | None,
) -> DiagnosisReport:
    """The diagnosis of a run so far (the flags must have been read):
    this rank's records and counts (``rec``) and the other ranks' records."""
    records = rec.records + remote
    merged = D.merge_ranks([r.model_copy() for r in records])
    notes = list(rec.notes)
    calls = hooks.calls
    if calls.dropped:
        notes.append(
            f"{calls.dropped} call(s) gave up their kept inputs before their checks were read (at most "
            f"{MAX_KEPT} are kept between reads; call step() or report() more often): a failing one among them "
            "could not be re-run, and its report says so"
        )
    flow = calls.flow
    if hooks.learned:  # on_violation: calls not re-run here know the leaves' edges from the first call
        flow = Dataflow()
        for v in merged:
            key = (v.step, v.call)
            flow.edges[key] = calls.flow.edges.get(key, set()) | hooks.learned
    model = scope.model
    return DiagnosisReport(
        model=type(model).__name__,
        steps=calls.step + (1 if calls.call >= 0 else 0),
        calls=calls.total,
        checks=rec.checks,
        modules_monitored=sorted(p or "<model>" for p in scope.paths.values()),
        world_size=world_size,
        violations=assign_roots(merged, flow),
        notes=notes,
        totals=_totals(rec.counts, rec.records),
        module_types={p or "<model>": type(m).__name__ for m, p in scope.paths.items()},
        edges=_edges(hooks),
        contracts=_contracts(scope, settings),
    )


def _edges(hooks: Hooks) -> list[tuple[str, str]]:
    edges = set(hooks.calls.graph_edges)
    for e in hooks.calls.flow.edges.values():
        edges.update(e)
    return sorted({(a or "<model>", b or "<model>") for a, b in edges if a != b})


def _contracts(scope: Scope, settings: Settings) -> list[ModuleContracts]:
    """Each monitored module's contracts as written, and the defaults added."""
    out = []
    model: nn.Module = scope.model
    for mod, path in scope.paths.items():
        defaults: list[str] = []
        if path in scope.defaults:
            if mod is model:
                defaults.append("finite(input)")
            defaults += ["finite(output)", "dtype stable"]
        if settings.backward:
            defaults.append("finite(grad)")
            if settings.grad_norm:
                lo, hi = settings.grad_norm
                defaults.append(f"grad_norm in [{lo}, {hi}]")
        guard: Any = scope.guarded.get(path)
        if guard is None and not defaults:
            continue
        out.append(module_contracts(path, mod, guard, defaults))
    return out
