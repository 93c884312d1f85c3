"""One self-contained HTML page per report: inline CSS and SVG, no scripts,
no network. Sections: verdict, root causes (blame, evidence, histogram,
consequence tree), module graph, per-module table, violations collapsed by
(module, contract), value histograms, contracts as written, notes.

Every string from a report goes through ``_e``: control characters written
as ``\\u001b`` (``common.clean``), then HTML-escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from modpact._version import __version__
from modpact.runtime.records import INPUT_DATA, ModuleContracts
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
    natural_key,
    spec_text,
)
from modpact.runtime.render.svg import graph_svg, histogram_svg

if TYPE_CHECKING:
    from modpact.runtime.report import DiagnosisReport

__all__ = ["render_html"]

MAX_HISTOGRAMS = 12

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:20px;margin:0 0 10px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dde4;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12.5px}
.verdict{padding:12px 16px;border-radius:8px;font-weight:600;font-size:15px}
.verdict.failed{background:#fde8e8;color:#8a1c1c;border:1px solid #f3b4b4}
.verdict.ok{background:#e6f6ea;color:#1f6b33;border:1px solid #a9dcb6}
.summary{display:flex;flex-wrap:wrap;gap:8px 22px;margin:10px 0 0;color:#4a5566}
.summary b{color:#1d2430}
.card{background:#fff;border:1px solid #d8dde4;border-radius:8px;padding:12px 16px;margin:12px 0}
.card.root{border-left:5px solid #c62828}
.blame{font-weight:600;color:#8a1c1c}.dim{color:#6b7585}
.hint{background:#eef6ff;border:1px solid #b9d7fb;border-radius:8px;padding:10px 14px;margin:12px 0}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-size:13px}
th,td{border:1px solid #d8dde4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right}
tr.blamed td{background:#fde8e8;font-weight:600}tr.root td{background:#ffefe0}tr.consequence td{background:#fff6e0}
tr.violated td.cname{color:#8a1c1c;font-weight:600}
.flex{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.consequences{font-size:13px;min-width:260px}
ul.tree{list-style:none;margin:4px 0;padding-left:18px;border-left:1px dashed #c3cad5}
ul.tree li{margin:2px 0}.cnt{color:#a05a00}
.graphbox{overflow:auto;background:#fff;border:1px solid #d8dde4;border-radius:8px;padding:6px}
svg text{font-family:system-ui,sans-serif}
svg .node rect{fill:#fff;stroke:#8d99ab;stroke-width:1.2}
svg .node.blamed rect{fill:#ffd6d6;stroke:#c62828;stroke-width:3}
svg .node.root rect{fill:#ffe9d6;stroke:#d9480f;stroke-width:2}
svg .node.consequence rect{fill:#fff3cd;stroke:#c99a06;stroke-width:1.6;stroke-dasharray:4 2}
svg .node.data rect{fill:#eef1f5}
svg .nname{font-size:12px;font-weight:600;fill:#1d2430}svg .ntype{font-size:10.5px;fill:#5b6678}
svg .edge{fill:none;stroke:#9aa5b5;stroke-width:1.3}svg .edge.hot{stroke:#e07a3f;stroke-width:1.8}
svg .arrowhead{fill:#7d889a}svg .colhead{font-size:12px;font-weight:700;fill:#5b6678}
svg .bar{fill:#4a7bd0}svg .bar.nonfinite{fill:#c62828}svg .axis{stroke:#7d889a}
svg .bound{stroke:#c62828;stroke-dasharray:4 3;stroke-width:1.5}
svg .tick{font-size:10.5px;fill:#4a5566}svg .hcap{font-size:11.5px;fill:#1d2430;font-weight:600}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-2px;margin-right:4px;
border:1px solid #8d99ab}
footer{margin-top:30px;color:#6b7585;font-size:12px}
"""


def _e(x: Any) -> str:
    return escape(clean(x))


def _tree_html(node: TreeNode) -> str:
    if not node.children:
        return ""
    items = []
    for child in node.children.values():  # depth bounded: common.MAX_TREE_DEPTH
        checks = ", ".join(f'{_e(c)} <span class="cnt">x{n}</span>' for c, n in child.checks.items())
        items.append(f"<li><code>{_e(child.name)}</code> {checks}{_tree_html(child)}</li>")
    return f'<ul class="tree">{"".join(items)}</ul>'


def _root_card(report: DiagnosisReport, f: Facts, g: RootGroup) -> str:
    v = g.first
    typ = report.module_types.get(v.where, "")
    times = f' <span class="cnt">x{g.count} in steps {_e(g.step_range)}</span>' if g.count > 1 else ""
    rank = v.rank_text
    scope = report.rank_scope(v)
    scope_html = f'<p class="blame">{_e(scope)}</p>' if scope else ""
    located = v.located_text()
    if located:
        scope_html += f'<p class="dim">{_e(located)}</p>'

    rows = "".join(f'<tr><th>{_e(k)}</th><td class="mono">{_e(x)}</td></tr>' for k, x in evidence_lines(v))
    validation = report.source == "validation"
    shown = v.tensor or ("the first generated input" if validation else "value")
    hist = histogram_svg(v.histogram, f"{v.where}: {shown}") if v.histogram is not None else ""
    where = "validation" if validation else f"step {v.step}, {_e(v.phase)}{rank}"
    on = f" on <code>{_e(v.tensor)}</code>" if v.tensor else ""
    declared = f'<div class="dim">declared at <code>{_e(v.declared_at)}</code></div>' if v.declared_at else ""
    cons = ""
    if g.consequences:
        cons = (
            f'<div class="consequences"><b>Consequences ({len(g.consequences)})</b>'
            + _tree_html(f.consequence_tree(report, g))
            + "</div>"
        )
    return (
        f'<section class="card root" data-module="{_e(v.where)}">'
        f"<h3>{'Counterexample' if validation else 'Root cause'}: <code>{_e(v.where)}</code>"
        f"{' (' + _e(typ) + ')' if typ else ''}{times}</h3>"
        f"<div>{_e(v.kind)} <code>{_e(v.check)}</code>{on} ({where})</div>"
        f'<p class="blame">{_e(v.blame_sentence())}</p>{scope_html}{declared}'
        f'<div class="flex"><div><table class="evidence"><tr><th colspan="2">evidence</th></tr>{rows}</table>'
        f"{hist}</div>{cons}</div></section>"
    )


def _nodes_and_classes(report: DiagnosisReport, groups: list[RootGroup]) -> tuple[list[str], dict[str, str]]:
    """Graph nodes, and each module's role: ``blamed`` (the party a root cause
    blames, or its module when the blame is not a module), ``root`` (where a
    root was detected, blaming another module), ``consequence``."""
    # module registration order (module_types keeps the Monitor's order), else path order; a dict is the
    # ordered set (membership tests in constant time)
    monitored = set(report.modules_monitored)
    nodes = dict.fromkeys(m for m in report.module_types if m in monitored)
    nodes.update(dict.fromkeys(sorted((m for m in report.modules_monitored if m not in nodes), key=natural_key)))
    front: dict[str, None] = {}
    if any(INPUT_DATA in e for e in report.edges):
        front[INPUT_DATA] = None
    for a, b in report.edges:
        for n in (a, b):
            if n not in nodes and n not in front:
                nodes[n] = None
    if len(nodes) + len(front) > 1:
        nodes.pop("<model>", None)  # the model frames the graph; its edges are its children's
    classes: dict[str, str] = {}
    for g in groups:
        for c in g.consequences:
            classes.setdefault(c.where, "consequence")
    for g in groups:
        v = g.first
        if classes.get(v.where) != "blamed":
            classes[v.where] = "root"
        if v.blame in nodes or v.blame in front or v.blame == INPUT_DATA:
            if v.blame not in nodes and v.blame not in front:
                front = {v.blame: None, **front}  # in front, as the old list's insert(0, ...) put it
            classes[v.blame] = "blamed"
        else:
            classes[v.where] = "blamed"
    ordered = [*front, *(n for n in nodes if n not in front)]
    if INPUT_DATA in front or INPUT_DATA in nodes:
        classes.setdefault(INPUT_DATA, "data")
    return ordered, classes


def _graph(report: DiagnosisReport, f: Facts, nodes: list[str], classes: dict[str, str]) -> str:
    svg = graph_svg(nodes, list(report.edges), report.module_types, classes, f.counts, top=report.model or "<model>")
    legend = (
        '<div class="legend dim"><span><i class="sw" style="background:#ffd6d6;border-color:#c62828"></i>'
        'blamed</span><span><i class="sw" style="background:#ffe9d6;border-color:#d9480f"></i>root cause '
        'site</span><span><i class="sw" style="background:#fff3cd;border-color:#c99a06"></i>consequence'
        '</span><span><i class="sw" style="background:#fff"></i>checked, no violation</span></div>'
    )
    note = "" if report.edges else '<p class="dim">No dataflow was recorded in this report; modules in path order.</p>'
    return f'<h2>Module graph</h2>{legend}<div class="graphbox">{svg}</div>{note}'


def _module_table(report: DiagnosisReport, f: Facts, classes: dict[str, str]) -> str:
    counts = f.counts
    roots: dict[str, int] = {}
    for v in report.roots:
        roots[v.where] = roots.get(v.where, 0) + 1
    contracts = {mc.module: mc for mc in report.contracts}
    modules = sorted(set(report.modules_monitored) | set(counts), key=natural_key)
    rows = []
    for m in modules[: MAX_ROWS * 4]:
        cls = classes.get(m, "")
        status = {"blamed": "blamed", "root": "root cause detected here", "consequence": "consequence"}.get(
            cls, "ok" if not counts.get(m) else "violations"
        )
        n_contracts = len(contracts[m].names()) if m in contracts else 0
        rows.append(
            f'<tr class="{cls}" data-module="{_e(m)}"><td><code>{_e(m)}</code></td>'
            f'<td>{_e(report.module_types.get(m, ""))}</td><td class="num">{n_contracts}</td>'
            f'<td class="num">{counts.get(m, 0)}</td><td class="num">{roots.get(m, 0)}</td>'
            f"<td>{status}</td></tr>"
        )
    more = f'<p class="dim">+{len(modules) - MAX_ROWS * 4} more modules</p>' if len(modules) > MAX_ROWS * 4 else ""
    return (
        '<h2>Modules</h2><table class="modules"><tr><th>module</th><th>type</th><th>contracts</th>'
        f"<th>violations</th><th>roots</th><th>status</th></tr>{''.join(rows)}</table>{more}"
    )


def _groups_table(report: DiagnosisReport, f: Facts) -> str:
    groups = f.groups
    if not groups:
        return ""
    rows = []
    for g in groups[:MAX_ROWS]:
        first = g.first
        ev = "; ".join(f"{k}={x}" for k, x in evidence_lines(first)[:4])
        rows.append(
            f'<tr class="group"><td><code>{_e(g.module)}</code></td><td><code>{_e(g.contract)}</code></td>'
            f'<td>{_e(first.kind)}</td><td class="num">{g.count}</td><td class="num">{g.roots}</td>'
            f'<td>{_e(g.steps)}</td><td>{_e(blamed_text(g.blamed))}</td><td class="mono">{_e(ev)}</td></tr>'
        )
    if len(groups) > MAX_ROWS:
        rest = groups[MAX_ROWS:]
        rows.append(
            f'<tr><td colspan="3">+{len(rest)} more (module, contract) pairs</td>'
            f'<td class="num">{sum(g.count for g in rest)}</td><td class="num">'
            f'{sum(g.roots for g in rest)}</td><td colspan="3"></td></tr>'
        )
    return (
        f"<h2>Violations by module and contract ({len(report.violations)} in {len(groups)} group(s))</h2>"
        '<table class="groups"><tr><th>module</th><th>contract</th><th>kind</th><th>count</th><th>roots</th>'
        f"<th>steps</th><th>blamed</th><th>first evidence</th></tr>{''.join(rows)}</table>"
    )


def _histograms(f: Facts) -> str:
    figs = []
    for g in f.groups:
        h = g.first.histogram
        if h is None:
            continue
        figs.append(histogram_svg(h, f"{g.module}: {g.contract} (step {g.first.step})"))
        if len(figs) >= MAX_HISTOGRAMS:
            break
    if not figs:
        return ""
    return (
        '<h2>Offending values</h2><p class="dim">First occurrence of each (module, contract); '
        "dashed lines are the contract's bounds, red bars non-finite values.</p>"
        f'<div class="flex">{"".join(figs)}</div>'
    )


def _contracts(report: DiagnosisReport, f: Facts) -> str:
    if not report.contracts:
        return ""
    violated = {(g.module, g.contract) for g in f.groups}
    blocks = []
    for mc in sorted(report.contracts, key=lambda m: natural_key(m.module)):
        rows: list[str] = []

        def row(
            kind: str, name: str, text: str, where: str | None = None, mc: ModuleContracts = mc, rows: list[str] = rows
        ) -> None:
            cls = "violated" if (mc.module, name) in violated else ""
            mark = "violated" if cls else ""
            rows.append(
                f'<tr class="{cls}"><td>{_e(kind)}</td><td class="cname mono">{_e(text)}</td>'
                f'<td class="mono dim">{_e(where or "")}</td><td>{mark}</td></tr>'
            )

        if mc.interface is not None:
            name = mc.interface_contract or "interface"
            for side in ("inputs", "outputs"):
                for k, spec in (mc.interface.get(side) or {}).items():
                    row(f"interface {side[:-1]}", name, f"{k}: {spec_text(spec)}")
        for c in mc.requires:
            row("requires", c.text, c.text + (f"  — {c.why}" if c.why else ""), c.declared_at)
        for c in mc.ensures:
            row("ensures", c.text, c.text + (f"  — {c.why}" if c.why else ""), c.declared_at)
        for d in mc.defaults:
            row("default", d, d, "added by the Monitor")
        title = f"<code>{_e(mc.module)}</code> {_e(mc.type)}"
        if mc.interface is not None:
            title += f" · interface <code>{_e(mc.interface.get('name', ''))}</code>"
        blocks.append(
            f'<h3>{title}</h3><table class="contracts"><tr><th>kind</th><th>contract as written</th>'
            f"<th>declared at</th><th></th></tr>{''.join(rows)}</table>"
        )
    return "<h2>Contracts as written</h2>" + "".join(blocks)


def render_html(report: DiagnosisReport) -> str:
    f = facts(report)
    groups = f.root_groups
    verdict_cls = "ok" if report.ok else "failed"
    if report.source == "validation":
        summary = [
            ("model", report.model or "?"),
            ("modules validated", len(report.modules_monitored)),
            ("generated examples passed", report.checks),
            ("forwards", report.calls),
            ("counterexamples", len(report.violations)),
        ]
    else:
        summary = [
            ("model", report.model or "?"),
            ("steps", report.steps),
            ("calls", report.calls),
            ("checks", report.checks),
            ("modules monitored", len(report.modules_monitored)),
            ("violations", len(report.violations)),
            ("root causes", len(groups)),
        ]
    body = [
        f"<h1>modpact diagnosis report: {_e(report.model or 'model')}</h1>",
        f'<div id="verdict" class="verdict {verdict_cls}">{_e(f.headline)}</div>',
        '<div class="summary">' + "".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in summary) + "</div>",
    ]
    if groups:
        body.append("<h2>Counterexamples</h2>" if report.source == "validation" else "<h2>Root cause</h2>")
        body += [_root_card(report, f, g) for g in groups[:MAX_ROOT_GROUPS]]
        if len(groups) > MAX_ROOT_GROUPS:
            body.append(f'<p class="dim">+{len(groups) - MAX_ROOT_GROUPS} more root causes; see the table below.</p>')
    if f.hint:
        body.append(f'<div class="hint" id="repair-hint"><b>Repair hint:</b> {_e(f.hint)}</div>')
    nodes, classes = _nodes_and_classes(report, groups)
    if report.modules_monitored:
        body.append(_graph(report, f, nodes, classes))
    body.append(_module_table(report, f, classes))
    body.append(_groups_table(report, f))
    body.append(_histograms(f))
    body.append(_contracts(report, f))
    if report.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    body.append(f"<footer>modpact {_e(__version__)} · report format version {report.format_version}</footer>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>modpact: {_e(f.headline)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
