"""Terminal rendering with rich: verdict, root causes with their blame,
consequences as a tree following the module hierarchy, evidence (with a
sparkline of the offending values), per-module counts and the repair hint."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from modpact.runtime.records import Histogram, ModuleContracts
from modpact.runtime.render.common import (
    MAX_ROOT_GROUPS,
    MAX_ROWS,
    RootGroup,
    TreeNode,
    consequence_tree,
    evidence_lines,
    root_groups,
    spec_text,
)

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["render_text", "print_report", "report_renderable", "sparkline", "contracts_tree"]

_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(h: Histogram) -> str:
    """The histogram as one line of block characters, non-finite counts after it."""
    peak = max(h.counts, default=0)
    bars = "".join(_BARS[0 if c == 0 else max(1, round(8 * c / peak))] for c in h.counts) if peak else ""
    extra = [f"{k}={getattr(h, k)}" for k in ("nan", "posinf", "neginf") if getattr(h, k)]
    rng = f"[{h.lo:.3g} .. {h.hi:.3g}]" if h.counts else "no finite values"
    return " ".join(x for x in (rng, f"|{bars}|" if bars else "", *extra) if x)


def _tree_children(tree: Tree, node: TreeNode) -> None:
    for child in node.children.values():
        label = Text(child.name, style="bold")
        if child.checks:
            label.append("  ")
            label.append(", ".join(f"{c} x{n}" if n > 1 else c for c, n in child.checks.items()), style="yellow")
        _tree_children(tree.add(label), child)


def _root_tree(report: DiagnosisReport, g: RootGroup) -> Group:
    v = g.first
    typ = report.module_types.get(v.where)
    validation = report.source == "validation"
    head = Text("counterexample: " if validation else "root cause: ", style="bold red")
    head.append(v.where, style="bold")
    head.append(f": {v.kind} {v.check}" + (f" on {v.tensor}" if v.tensor else ""))
    head.append(f" ({typ + ', ' if typ else ''}" + ("validation" if validation else f"step {v.step}, {v.phase}"))
    head.append(v.rank_text + ")")
    if g.count > 1:
        head.append(f"  x{g.count} in steps {g.step_range}", style="magenta")
    tree = Tree(Text(""), guide_style="dim", hide_root=True)  # the heading stays one line, outside the tree
    tree.add(Text(v.blame_sentence(), style="bold"))
    located = v.located_text()
    if located:
        tree.add(Text(located, style="dim"))
    scope = report.rank_scope(v)
    if scope:
        tree.add(Text(scope, style="bold"))
    if v.declared_at:
        tree.add(Text(f"declared at {v.declared_at}", style="dim"))
    lines = evidence_lines(v)
    if lines or v.histogram is not None:
        ev = tree.add(Text("evidence", style="cyan"))
        for k, x in lines:
            ev.add(Text(f"{k}: {x}"))
        if v.histogram is not None:
            ev.add(Text(f"values: {sparkline(v.histogram)}"))
    if g.consequences:
        cons = tree.add(Text(f"consequences ({len(g.consequences)})", style="yellow"))
        _tree_children(cons, consequence_tree(report, g.consequences))
    return Group(head, tree)


def _module_table(report: DiagnosisReport) -> Table:
    table = Table(title="violations per module and contract", title_justify="left", show_lines=False)
    columns: tuple[tuple[str, dict[str, Any]], ...] = (
        ("module", {}),
        ("contract", {}),
        ("kind", {}),
        ("count", {"justify": "right"}),
        ("roots", {"justify": "right"}),
        ("steps", {}),
        ("blamed", {}),
    )
    for col, kw in columns:
        table.add_column(col, **kw)
    groups = report.groups()
    for g in groups[:MAX_ROWS]:
        table.add_row(
            Text(g.module),
            Text(g.contract),
            Text(g.first.kind),
            str(g.count),
            str(g.roots),
            g.steps,
            Text(", ".join(g.blamed)),
        )
    if len(groups) > MAX_ROWS:
        rest = groups[MAX_ROWS:]
        table.add_row(
            Text(f"+{len(rest)} more"), "", "", str(sum(g.count for g in rest)), str(sum(g.roots for g in rest)), "", ""
        )
    return table


def _counts_line(report: DiagnosisReport) -> Text:
    items = sorted(report.counts().items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{m}={n}" for m, n in items[:MAX_ROWS])
    more = f", +{len(items) - MAX_ROWS} more modules" if len(items) > MAX_ROWS else ""
    return Text("violations per module: " + shown + more)


def report_renderable(report: DiagnosisReport) -> Group:
    parts: list[Any] = []
    parts.append(Text(report.headline(), style="bold green" if report.ok else "bold red"))
    n_contracts = sum(len(mc.names()) for mc in report.contracts)
    if report.source == "validation":
        summary = (
            f"model {report.model or '?'}: {len(report.modules_monitored)} module(s) validated, "
            f"{report.checks} generated example(s) passed, {report.calls} forward(s)"
        )
    else:
        summary = (
            f"model {report.model or '?'}: {report.steps} step(s), {report.calls} call(s), "
            f"{report.checks} checks, {len(report.modules_monitored)} module(s) monitored"
        )
    if n_contracts:
        summary += f", {n_contracts} contract(s)"
    parts.append(Text(summary, style="dim"))
    groups = root_groups(report)
    for g in groups[:MAX_ROOT_GROUPS]:
        parts.append(Text(""))
        parts.append(_root_tree(report, g))
    if len(groups) > MAX_ROOT_GROUPS:
        rest = groups[MAX_ROOT_GROUPS:]
        parts.append(
            Text(f"... and {len(rest)} more root cause(s) at " + ", ".join(sorted({g.first.where for g in rest})))
        )
    hint = report.repair_hint()
    if hint:
        parts.append(Text(""))
        line = Text("repair hint: ", style="bold green")
        line.append(hint)
        parts.append(line)
    if report.violations:
        parts.append(Text(""))
        parts.append(_counts_line(report))
        parts.append(_module_table(report))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


def render_text(report: DiagnosisReport, *, color: bool = False, width: int = 120) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    console.print(report_renderable(report), soft_wrap=True)  # long lines stay whole (grep-able)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def print_report(report: DiagnosisReport, console: Console | None = None) -> None:
    (console or Console(highlight=False, emoji=False)).print(report_renderable(report))


def contracts_tree(title: str, contracts: list[ModuleContracts], modules_total: int) -> tuple[Text, Tree]:
    """``modpact inspect``: a heading line, then each guarded module with its
    interface and conditions as a tree."""
    heading = Text(f"{title}: {len(contracts)} guarded module(s) of {modules_total}", style="bold")
    tree = Tree(Text(""), hide_root=True)
    for mc in contracts:
        node = tree.add(Text.assemble((mc.module, "bold cyan"), f" ({mc.type})"))
        if mc.interface is not None:
            inode = node.add(Text.assemble("interface ", (str(mc.interface.get("name", "")), "bold")))
            for side in ("inputs", "outputs"):
                for k, spec in (mc.interface.get(side) or {}).items():
                    inode.add(Text(f"{side[:-1]} {k}: {spec_text(spec)}"))
        for what, conds in (("requires", mc.requires), ("ensures", mc.ensures)):
            for c in conds:
                line = Text.assemble((what, "green"), f" {c.text}")
                if c.why:
                    line.append(f" - {c.why}")
                if c.declared_at:
                    line.append(f"  ({c.declared_at})", style="dim")
                node.add(line)
        for d in mc.defaults:
            node.add(Text(f"default {d}", style="dim"))
    return heading, tree
