"""Inline SVG for the HTML report: value histograms and the module graph.
Plain strings, no scripts, no external references."""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape as _html_escape

from modpact.runtime.records import Histogram
from modpact.runtime.render.common import clean

__all__ = ["histogram_svg", "graph_layout", "graph_svg"]


def escape(text: str, quote: bool = True) -> str:
    """A string from a report in SVG text: control characters written as escapes, then HTML-escaped."""
    return _html_escape(clean(text), quote=quote)


def _num(x: float) -> str:
    return f"{x:.3g}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def histogram_svg(h: Histogram, title: str = "") -> str:
    """Bars over the finite values; NaN/+inf/-inf as red bars on the right;
    the contract's bounds as dashed lines where they fall inside the range."""
    w, ht, left, right, top, bottom = 380, 150, 34, 10, 18, 32
    extra = [(k, getattr(h, k)) for k in ("nan", "posinf", "neginf") if getattr(h, k)]
    extra_w = 34 * len(extra)
    plot_w = w - left - right - extra_w - (8 if extra else 0)
    plot_h = ht - top - bottom
    peak = max([*h.counts, *(n for _, n in extra), 1])
    parts = [
        f'<svg class="histogram" role="img" width="{w}" height="{ht}" viewBox="0 0 {w} {ht}">',
        f"<title>{escape(title or 'value histogram')}</title>",
        f'<text x="{left}" y="12" class="hcap">{escape(_clip(title, 54))}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 8}" class="tick" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    n = len(h.counts)
    if n:
        bw = plot_w / n
        for i, c in enumerate(h.counts):
            if not c:
                continue
            bh = max(1.0, plot_h * c / peak)
            a = h.lo + (h.hi - h.lo) * i / n
            b = h.lo + (h.hi - h.lo) * (i + 1) / n
            parts.append(
                f'<rect class="bar" x="{left + i * bw:.1f}" y="{top + plot_h - bh:.1f}" '
                f'width="{max(bw - 1, 1):.1f}" height="{bh:.1f}"><title>[{_num(a)}, {_num(b)}): {c}'
                f"</title></rect>"
            )
        parts.append(f'<text x="{left}" y="{top + plot_h + 14}" class="tick">{_num(h.lo)}</text>')
        parts.append(
            f'<text x="{left + plot_w}" y="{top + plot_h + 14}" class="tick" text-anchor="end">{_num(h.hi)}</text>'
        )
        for bound, name in ((h.bound_lo, "min"), (h.bound_hi, "max")):
            if bound is not None and h.lo <= bound <= h.hi and h.hi > h.lo:
                x = left + plot_w * (bound - h.lo) / (h.hi - h.lo)
                parts.append(
                    f'<line class="bound" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}">'
                    f"<title>contract {name} {_num(bound)}</title></line>"
                )
    else:
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" class="tick" '
            'text-anchor="middle">no finite values</text>'
        )
    x0 = left + plot_w + 8
    for i, (k, c) in enumerate(extra):
        bh = max(1.0, plot_h * c / peak)
        x = x0 + 34 * i
        label = {"nan": "NaN", "posinf": "+inf", "neginf": "-inf"}[k]
        parts.append(
            f'<rect class="bar nonfinite" x="{x}" y="{top + plot_h - bh:.1f}" width="28" '
            f'height="{bh:.1f}"><title>{label}: {c}</title></rect>'
        )
        parts.append(f'<text x="{x + 14}" y="{top + plot_h + 14}" class="tick" text-anchor="middle">{label}</text>')
        parts.append(f'<text x="{x + 14}" y="{top + plot_h + 26}" class="tick" text-anchor="middle">{c}</text>')
    parts.append("</svg>")
    return "".join(parts)


NODE_W, NODE_H, GAP_X, GAP_Y, PAD, HEAD = 176, 38, 60, 14, 12, 22


MAX_ROWS = 10


def _parent(path: str) -> str:
    if path == "the input data":
        return path
    return path.rsplit(".", 1)[0] if "." in path else ""


def graph_layout(
    nodes: Iterable[str], top: str = "<model>"
) -> tuple[dict[str, tuple[float, float]], list[tuple[float, str]]]:
    """Columns follow the module hierarchy: ``nodes`` (in module registration
    order, which is how PyTorch prints a model) are cut into runs of siblings,
    one column per run (at most MAX_ROWS tall), headed by the parent's path.
    Returns node positions and the column headings with their x."""
    pos: dict[str, tuple[float, float]] = {}
    heads: list[tuple[float, str]] = []
    col, row, current = -1, 0, None
    for n in dict.fromkeys(nodes):
        parent = _parent(n)
        if parent != current or row >= MAX_ROWS:
            col += 1
            row = 0
            x = PAD + col * (NODE_W + GAP_X)
            heads.append((x, "" if parent == "the input data" else (parent or top)))
            current = parent
        pos[n] = (PAD + col * (NODE_W + GAP_X), PAD + HEAD + row * (NODE_H + GAP_Y))
        row += 1
    return pos, heads


def _label(path: str, limit: int = 25) -> str:
    if len(path) <= limit:
        return path
    return "…" + path[-(limit - 1) :]


def _short(path: str) -> str:
    """The name within its column (the column heading is the parent's path)."""
    parent = _parent(path)
    return path[len(parent) + 1 :] if parent and parent != path else path


def _edge_path(a: tuple[float, float], b: tuple[float, float]) -> str:
    (xa, ya), (xb, yb) = a, b
    if xa == xb:  # same column
        if 0 < yb - ya <= NODE_H + GAP_Y:  # the next row: straight down
            return f"M {xa + NODE_W / 2} {ya + NODE_H} L {xb + NODE_W / 2} {yb - 2}"
        x = xa + NODE_W  # a skip: bow out to the right
        return (
            f"M {x} {ya + NODE_H / 2} C {x + 34} {ya + NODE_H / 2}, {x + 34} {yb + NODE_H / 2}, "
            f"{x + 2} {yb + NODE_H / 2}"
        )
    if xb > xa:
        x1, y1, x2, y2 = xa + NODE_W, ya + NODE_H / 2, xb - 2, yb + NODE_H / 2
    else:
        x1, y1, x2, y2 = xa, ya + NODE_H / 2, xb + NODE_W + 2, yb + NODE_H / 2
    mid = (x1 + x2) / 2
    return f"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}"


def graph_svg(
    nodes: list[str],
    edges: list[tuple[str, str]],
    types: dict[str, str],
    classes: dict[str, str],
    counts: dict[str, int],
    top: str = "<model>",
) -> str:
    """The module graph: one box per module (``classes[path]`` adds e.g.
    ``blamed`` or ``consequence``), one arrow per dataflow edge, modules in
    columns by parent module (see ``graph_layout``); ``nodes`` in module order."""
    pos, heads = graph_layout(nodes, top)
    width = max((x for x, _ in pos.values()), default=0) + NODE_W + PAD + 40
    height = max((y for _, y in pos.values()), default=0) + NODE_H + PAD
    out = [
        f'<svg class="graph" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        "<title>module graph (dataflow between monitored modules)</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for x, title in heads:
        out.append(f'<text x="{x}" y="{PAD + 12}" class="colhead">{escape(_label(title))}</text>')
    hot = ("blamed", "root", "consequence")
    for a, b in edges:
        if a not in pos or b not in pos or a == b:
            continue
        cls = "edge hot" if classes.get(a) in hot and classes.get(b) in hot else "edge"
        out.append(f'<path class="{cls}" d="{_edge_path(pos[a], pos[b])}" marker-end="url(#arrow)"/>')
    for n in nodes:
        if n not in pos:
            continue
        x, y = pos[n]
        cls = classes.get(n, "")
        slug = escape(n, quote=True)
        ident = re.sub(r"[^A-Za-z0-9_.-]", "-", n)
        kind = types.get(n, "data" if n == "the input data" else "")
        badge = f" · {counts[n]} violation(s)" if counts.get(n) else ""
        out.append(
            f'<g class="node {cls}" data-module="{slug}" id="node-{ident}">'
            f"<title>{escape(n)} ({escape(kind)}){escape(badge)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 16}" class="nname">{escape(_label(_short(n)))}</text>'
            f'<text x="{x + 8}" y="{y + 30}" class="ntype">{escape(kind)}{escape(badge)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
