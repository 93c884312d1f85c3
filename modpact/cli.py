"""The ``modpact`` command (also ``python -m modpact``).

    modpact demo                               the main job on an embedded default
    modpact report FILE.json [--html OUT] [--junit OUT] [--quiet] [--strict]
    modpact inspect PATH[:OBJECT] [--json OUT]
    modpact validate PATH[:OBJECT] [--json OUT] [--junit OUT]

Exit codes: 0 success; 1 the check failed (validate found failures, or
``report --strict`` read a report with violations; ``demo`` did not blame the
injected module); 2 bad input (missing file, bad object path, invalid JSON,
wrong format version, unwritable output) or bad arguments, or a bad
``MODPACT_CONTRACTS``. An error is one line on stderr, ``modpact <command>:
error: ...``, with control characters shown as escapes; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's usage errors exit 2 too, with our prefix
        from modpact.runtime.render.common import clean

        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {clean(message)}\n")  # the arguments shown, not acted on


def _parser() -> argparse.ArgumentParser:
    from modpact import __version__

    parser = _Parser(
        prog="modpact",
        description="Interfaces and contracts for modular PyTorch models",
        epilog="exit codes: 0 success, 1 check failed, 2 bad input or arguments",
    )
    parser.add_argument("--version", action="version", version=f"modpact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="the main job on digits: train, decompose, monitor, inject a fault, "
        "diagnose, repair, validate; writes modpact-report.html/.json",
    )
    demo.add_argument("--out", default=".", metavar="DIR", help="where to write the report files (default: .)")

    rep = sub.add_parser("report", help="re-render a saved diagnosis report (JSON) as text, HTML, JUnit XML")
    rep.add_argument("file", metavar="FILE.json", help="a report saved with DiagnosisReport.to_json()")
    rep.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML page")
    rep.add_argument("--junit", metavar="OUT.xml", help="write JUnit XML, one test case per contract")
    rep.add_argument("--quiet", "-q", action="store_true", help="do not print the report to the terminal")
    rep.add_argument("--strict", action="store_true", help="exit 1 when the report has violations")

    ins = sub.add_parser("inspect", help="print the interfaces and contracts of a model as a tree")
    ins.add_argument(
        "target",
        metavar="PATH[:OBJECT]",
        help="a .py file or module, and an nn.Module in it or a function returning one "
        "(default: model, build_model, build, or the only nn.Module)",
    )
    ins.add_argument("--json", metavar="OUT.json", help="export the contracts as JSON")

    val = sub.add_parser("validate", help="validate the guarded modules of a model with generated inputs")
    val.add_argument("target", metavar="PATH[:OBJECT]", help="as for inspect")
    val.add_argument("--json", metavar="OUT.json", help="write the result as a diagnosis report (JSON)")
    val.add_argument("--junit", metavar="OUT.xml", help="write JUnit XML, one test case per contract")
    val.add_argument("--html", metavar="OUT.html", help="write the HTML report")
    val.add_argument(
        "--max-examples", type=int, default=100, metavar="N", help="generated examples per module (default 100)"
    )
    val.add_argument("--seed", type=int, default=None, help="Hypothesis seed, to reproduce a run")
    return parser


def main(argv: list[str] | None = None) -> int:
    from modpact.errors import ModpactError

    args = _parser().parse_args(argv)
    try:
        if args.command in ("demo", "inspect", "validate"):  # they guard modules: the mode must be readable
            from modpact.contracts import get_mode

            get_mode()
        if args.command == "demo":
            from modpact.demo import run_demo

            return run_demo(args.out)
        return {"report": _report, "inspect": _inspect, "validate": _validate}[args.command](args)
    except ModpactError as e:
        _error(args.command, str(e))
        return EXIT_USAGE


def _error(command: str, message: str) -> None:
    """One line on stderr: the message's lines joined, control characters shown as escapes."""
    from modpact.runtime.render.common import clean

    line = "; ".join(part.strip() for part in message.split("\n") if part.strip())  # \r and others: escaped
    print(f"modpact {command}: error: {clean(line)}", file=sys.stderr)


def _print(console: Any, *renderables: Any, **kw: Any) -> None:
    """Print to the terminal; a reader that went away (``| head``) ends the printing, not the command."""
    try:
        console.print(*renderables, **kw)
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as Python's docs advise for SIGPIPE


def _write(path: str, text: str, what: str) -> None:
    from modpact.errors import LoadError

    try:
        Path(path).write_text(text, encoding="utf-8")
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise LoadError(f"cannot write {what} to {path}: {reason}") from None


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, emoji=False)


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a NUL in the name, a name too long
        return False


def _report(args: argparse.Namespace) -> int:
    from modpact.errors import LoadError
    from modpact.runtime.render.text import report_renderable
    from modpact.runtime.report import DiagnosisReport

    if not _is_file(args.file):
        raise LoadError(f"no such file: {args.file}")
    report = DiagnosisReport.load(args.file)  # LoadError, or a SpecError that starts with the file's name
    if not args.quiet:
        console = _console()
        _print(console, report_renderable(report))
    if args.html:
        _write(args.html, report.to_html(), "the HTML report")
    if args.junit:
        _write(args.junit, report.to_junit(), "the JUnit XML")
    return EXIT_FAILED if args.strict and not report.ok else EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from modpact._load import load_model
    from modpact.runtime.contracts_info import model_contracts
    from modpact.runtime.render.text import contracts_tree

    name, model = load_model(args.target)
    contracts = model_contracts(model)
    total = sum(1 for _ in model.modules())
    heading, tree = contracts_tree(f"{type(model).__name__} ({args.target})", contracts, total)
    console = _console()
    _print(console, heading, soft_wrap=True)  # one line, whatever the terminal width
    _print(console, tree)
    if not contracts:
        print("no guarded modules: guard modules with modpact.guard(...) or @modpact.contract", file=sys.stderr)
    if args.json:
        doc = {
            "format_version": 1,
            "kind": "ModelContracts",
            "model": type(model).__name__,
            "object": name,
            "modules": [mc.model_dump(mode="json") for mc in contracts],
        }
        _write(args.json, json.dumps(doc, indent=2) + "\n", "the contracts JSON")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from modpact._load import load_model
    from modpact.errors import SpecError, ValidationFailure
    from modpact.runtime.contracts_info import guard_of, module_contracts
    from modpact.runtime.render.text import report_renderable
    from modpact.runtime.report import DiagnosisReport
    from modpact.runtime.validation_report import ValidationOutcome
    from modpact.validation import validate

    name, model = load_model(args.target)
    guarded = [
        (path or "<model>", mod, guard_of(mod)) for path, mod in model.named_modules() if guard_of(mod) is not None
    ]
    if not guarded:
        raise SpecError(
            f"{args.target}: {type(model).__name__} has no guarded modules, so there is nothing to "
            "validate; guard modules with modpact.guard(module, interface=...)"
        )
    console = _console()
    outcomes = []
    for path, mod, guard in guarded:
        out = ValidationOutcome(module=path, contracts=module_contracts(path, mod, guard))
        if guard.interface is None:
            out.skipped = "no interface to generate inputs from"
        else:
            with console.status(f"validating {path} ({args.max_examples} examples)"):
                try:
                    out.result = validate(mod, max_examples=args.max_examples, seed=args.seed)
                except ValidationFailure as e:
                    out.failure = e
                except SpecError as e:  # e.g. nothing can be generated from the interface
                    out.skipped = str(e)
        verdict = (
            "[green]passed[/]"
            if out.result is not None
            else "[red]FAILED[/]"
            if out.failure is not None
            else "[yellow]skipped[/]"
        )
        _print(console, f"validate {_esc(path)}: {verdict}" + (f" ({_esc(out.skipped)})" if out.skipped else ""))
        outcomes.append(out)
    if all(o.skipped is not None for o in outcomes):
        raise SpecError(
            f"{args.target}: none of the {len(outcomes)} guarded module(s) could be validated: "
            + "; ".join(f"{o.module}: {o.skipped}" for o in outcomes)
        )
    report = DiagnosisReport.from_validation(type(model).__name__, outcomes)
    _print(console)
    _print(console, report_renderable(report))
    if args.json:
        _write(args.json, report.to_json() + "\n", "the report JSON")
    if args.junit:
        _write(args.junit, report.to_junit(), "the JUnit XML")
    if args.html:
        _write(args.html, report.to_html(), "the HTML report")
    return EXIT_OK if report.ok else EXIT_FAILED


def _esc(text: str) -> str:
    """A name in rich markup: markup escaped, control characters shown as escapes."""
    from rich.markup import escape

    from modpact.runtime.render.common import clean

    return escape(clean(text))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
