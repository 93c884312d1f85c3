"""Terminal rendering with rich: verdict, root causes with their blame,
consequences as a tree following the module hierarchy, evidence (with a
sparkline of the offending values), per-module counts and the repair hint.

Every string from a report reaches the terminal through ``_t`` (a rich
``Text`` of ``clean(text)``): escape sequences in module names, messages or
evidence are shown as ``\\u001b``, never sent to the terminal."""

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
    Facts,
    RootGroup,
    TreeNode,
    blamed_text,
    clean,
    evidence_lines,
    facts,
    spec_text,
)

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["render_text", "print_report", "report_renderable", "sparkline", "contracts_tree"]

_BARS = " ▁▂▃▄▅▆▇█"


def _t(text: Any, style: str | None = None) -> Text:
    """A rich Text of a report's string, made safe for a terminal."""
    return Text(clean(text), style=style or "")


def sparkline(h: Histogram) -> str:
    """The histogram as one line of block characters, non-finite counts after it."""
    peak = max(h.counts, default=0)
    bars = "".join(_BARS[0 if c <= 0 else min(8, max(1, round(8 * c / peak)))] for c in h.counts) if peak > 0 else ""
    extra = [f"{k}={getattr(h, k)}" for k in ("nan", "posinf", "neginf") if getattr(h, k)]
    rng = f"[{h.lo:.3g} .. {h.hi:.3g}]" if h.counts else "no finite values"
    return " ".join(x for x in (rng, f"|{bars}|" if bars else "", *extra) if x)


def _tree_children(tree: Tree, node: TreeNode) -> None:
    for child in node.children.values():  # depth bounded: common.MAX_TREE_DEPTH
        label = _t(child.name, "bold")
        if child.checks:
            label.append("  ")
            label.append_text(_t(", ".join(f"{c} x{n}" if n > 1 else c for c, n in child.checks.items()), "yellow"))
        _tree_children(tree.add(label), child)


def _root_tree(report: DiagnosisReport, f: Facts, g: RootGroup) -> Group:
    v = g.first
    typ = report.module_types.get(v.where)
    validation = report.source == "validation"
    head = Text("counterexample: " if validation else "root cause: ", style="bold red")
    head.append_text(_t(v.where, "bold"))
    head.append_text(_t(f": {v.kind} {v.check}" + (f" on {v.tensor}" if v.tensor else "")))
    head.append_text(
        _t(f" ({typ + ', ' if typ else ''}" + ("validation" if validation else f"step {v.step}, {v.phase}"))
    )
    head.append_text(_t(v.rank_text + ")"))
    if g.count > 1:
        head.append(f"  x{g.count} in steps {g.step_range}", style="magenta")
    tree = Tree(Text(""), guide_style="dim", hide_root=True)  # the heading stays one line, outside the tree
    tree.add(_t(v.blame_sentence(), "bold"))
    located = v.located_text()
    if located:
        tree.add(_t(located, "dim"))
    scope = report.rank_scope(v)
    if scope:
        tree.add(_t(scope, "bold"))
    if v.declared_at:
        tree.add(_t(f"declared at {v.declared_at}", "dim"))
    lines = evidence_lines(v)
    if lines or v.histogram is not None:
        ev = tree.add(Text("evidence", style="cyan"))
        for k, x in lines:
            ev.add(_t(f"{k}: {x}"))
        if v.histogram is not None:
            ev.add(_t(f"values: {sparkline(v.histogram)}"))
    if g.consequences:
        cons = tree.add(Text(f"consequences ({len(g.consequences)})", style="yellow"))
        _tree_children(cons, f.consequence_tree(report, g))
    return Group(head, tree)


def _module_table(f: Facts) -> Table:
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
    groups = f.groups
    for g in groups[:MAX_ROWS]:
        table.add_row(
            _t(g.module),
            _t(g.contract),
            _t(g.first.kind),
            str(g.count),
            str(g.roots),
            g.steps,
            _t(blamed_text(g.blamed)),
        )
    if len(groups) > MAX_ROWS:
        rest = groups[MAX_ROWS:]
        table.add_row(
            Text(f"+{len(rest)} more"), "", "", str(sum(g.count for g in rest)), str(sum(g.roots for g in rest)), "", ""
        )
    return table


def _counts_line(f: Facts) -> Text:
    items = sorted(f.counts.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{m}={n}" for m, n in items[:MAX_ROWS])
    more = f", +{len(items) - MAX_ROWS} more modules" if len(items) > MAX_ROWS else ""
    return _t("violations per module: " + shown + more)


def report_renderable(report: DiagnosisReport) -> Group:
    f = facts(report)
    parts: list[Any] = []
    parts.append(_t(f.headline, "bold green" if report.ok else "bold red"))
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
    parts.append(_t(summary, "dim"))
    groups = f.root_groups
    for g in groups[:MAX_ROOT_GROUPS]:
        parts.append(Text(""))
        parts.append(_root_tree(report, f, g))
    if len(groups) > MAX_ROOT_GROUPS:
        rest = groups[MAX_ROOT_GROUPS:]
        where = sorted({g.first.where for g in rest})
        parts.append(
            _t(
                f"... and {len(rest)} more root cause(s) at "
                + ", ".join(where[:MAX_ROWS])
                + (f", +{len(where) - MAX_ROWS} more modules" if len(where) > MAX_ROWS else "")
            )
        )
    if f.hint:
        parts.append(Text(""))
        line = Text("repair hint: ", style="bold green")
        line.append_text(_t(f.hint))
        parts.append(line)
    if report.violations:
        parts.append(Text(""))
        parts.append(_counts_line(f))
        parts.append(_module_table(f))
    for note in report.notes:
        parts.append(_t(f"note: {note}", "dim"))
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
    heading = _t(f"{title}: {len(contracts)} guarded module(s) of {modules_total}", "bold")
    tree = Tree(Text(""), hide_root=True)
    for mc in contracts:
        node = tree.add(Text.assemble(_t(mc.module, "bold cyan"), _t(f" ({mc.type})")))
        if mc.interface is not None:
            inode = node.add(Text.assemble("interface ", _t(mc.interface.get("name", ""), "bold")))
            for side in ("inputs", "outputs"):
                for k, spec in (mc.interface.get(side) or {}).items():
                    inode.add(_t(f"{side[:-1]} {k}: {spec_text(spec)}"))
        for what, conds in (("requires", mc.requires), ("ensures", mc.ensures)):
            for c in conds:
                line = Text.assemble((what, "green"), _t(f" {c.text}"))
                if c.why:
                    line.append_text(_t(f" - {c.why}"))
                if c.declared_at:
                    line.append_text(_t(f"  ({c.declared_at})", "dim"))
                node.add(line)
        for d in mc.defaults:
            node.add(_t(f"default {d}", "dim"))
    return heading, tree
