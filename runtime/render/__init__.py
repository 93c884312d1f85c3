"""Renderers of ``DiagnosisReport``: rich terminal text, self-contained HTML,
JUnit XML. Each collapses violations by (module, contract) with counts, so a
run with thousands of violations stays readable."""

from modpact.runtime.render.html import render_html
from modpact.runtime.render.junit import render_junit
from modpact.runtime.render.text import print_report, render_text

__all__ = ["render_text", "print_report", "render_html", "render_junit"]
