"""Fuzzing the command line: argument lists from a pool of good and bad files,
paths and values, for every command. ``modpact`` exits 0, 1 or 2, never with
a traceback, and an error is one line on stderr with no control character
in it. In-process (``modpact.cli.main``): the same code as the console
script, without starting an interpreter per example."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
import textwrap
from pathlib import Path

from fuzz_docs import CONTROL, DEEP, HUGE, dumps, mutations, report_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modpact.cli import main
from modpact.runtime.render.common import clean

# four times the profile's examples (ci: 200 per test; the suite takes about 20 s on 2 cores)
FUZZ = settings(
    max_examples=4 * settings.default.max_examples,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)

MODEL = textwrap.dedent("""
    from torch import nn
    import modpact as mp

    def build_model():
        model = nn.Sequential(nn.Linear(4, 2))
        mp.guard(model[0], ensures=[mp.finite("result")], name="0")
        return model
""")


@functools.cache
def files() -> dict[str, str]:
    """Files the arguments name, made once: good, hostile and missing ones."""
    d = Path(tempfile.mkdtemp(prefix="modpact-fuzz-cli-"))
    out: dict[str, str] = {}

    def put(name: str, content: str | bytes) -> None:
        path = d / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        out[name] = str(path)

    put("report.json", json.dumps(report_doc()))
    put("digits.json", '{"format_version": 1, "steps": ' + "9" * 5000 + "}")
    put("deep.json", '{"format_version": 1, "notes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    put("control.json", json.dumps({"format_version": 1, "model": CONTROL[:-1], "notes": [CONTROL[:-1]]}))
    put("binary.json", b"\xff\xfe\x00garbage")
    put("empty.json", "")
    put("list.json", "[1, 2]")
    put("version.json", '{"format_version": "1"}')
    put("model.py", MODEL)
    put("broken.py", "raise RuntimeError('\\x1b[2J boom')\n")
    (d / "folder").mkdir()
    out["folder"] = str(d / "folder")
    out["missing.json"] = str(d / "missing.json")
    out["out.html"] = str(d / "out.html")
    out["out.xml"] = str(d / "out.xml")
    out["out.json"] = str(d / "out.json")
    out["unwritable"] = str(d / "no" / "such" / "dir" / "out.html")
    return out


def _path(name: str) -> str:
    return files().get(name, name)


COMMANDS = {"demo", "report", "inspect", "validate"}
texts = (
    st.text(max_size=12) | st.sampled_from([CONTROL[:-1], "-", "--", "--html", "-q", ":", "x:y", "a\x00b"])
).filter(lambda s: s not in COMMANDS)
# a target made of random text must never name an importable module ("this", "antigravity"): a path in the
# fuzz folder, or a module name no one has
safe_targets = texts.map(lambda s: f"no_such_module_zz9{s}" if s[:1].isalpha() else f"{files()['folder']}/{s}")
numbers = st.sampled_from(["-1", "0", "1", "2", "x", "1e3", str(10**30), "", " 3"])
report_files = st.sampled_from(
    ["report.json", "digits.json", "deep.json", "control.json", "binary.json", "empty.json", "list.json"]
    + ["version.json", "folder", "missing.json", "model.py"]
)
outputs = st.sampled_from(["out.html", "out.xml", "out.json", "unwritable", "folder"]).map(_path) | texts  # in folder/
bad_targets = st.sampled_from(
    ["missing.json", "broken.py", "folder", "model.py:nope", "model.py:1x", "no_such_module_zz9", ":x", "model.py:"]
).map(_path)


@st.composite
def argument_lists(draw) -> list[str]:
    command = draw(st.sampled_from(["report", "report", "inspect", "validate", "demo", "other"]))
    if command == "report":
        args = ["report", _path(draw(report_files))]
        for opt in draw(st.lists(st.sampled_from(["--html", "--junit", "--quiet", "--strict", "-q"]), max_size=3)):
            args += [opt, draw(outputs)] if opt in ("--html", "--junit") else [opt]
    elif command == "inspect":
        target = draw(bad_targets | st.just(_path("model.py")) | safe_targets)
        args = ["inspect", target] + draw(st.sampled_from([[], ["--json", draw(outputs)]]))
    elif command == "validate":  # bad targets only: a good one runs Hypothesis for as long as asked
        args = ["validate", draw(bad_targets | safe_targets)]
        for opt in draw(st.lists(st.sampled_from(["--max-examples", "--seed", "--json", "--junit"]), max_size=2)):
            args += [opt, draw(numbers if opt in ("--max-examples", "--seed") else outputs)]
    elif command == "demo":  # a bad --out only: it is checked before any work
        args = ["demo", "--out", draw(st.sampled_from([_path("missing.json"), _path("unwritable"), "a\x00b"]))]
    else:
        args = draw(st.lists(texts | st.sampled_from(["--help", "--version", "-h", "report", "inspect"]), max_size=4))
    if draw(st.booleans()):  # an extra argument anywhere
        args.insert(draw(st.integers(0, len(args))), draw(texts))
    return args


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in the fuzz folder (a relative output path lands there), its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(files()["folder"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: --help, --version, usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str]) -> None:
    code, out, err = run(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback (most recent call last)" not in err + out, (argv, err)
    assert clean(err) == err and clean(out) == out, (argv, err)  # no control character printed raw
    errors = [line for line in err.splitlines() if ": error: " in line]
    if code == 2 and not any(a in argv for a in ("-h", "--help", "--version")):
        assert len(errors) == 1, (argv, err)  # one line naming the problem
    if code == 0 and argv[:1] == ["report"] and "--quiet" not in argv and "-q" not in argv:
        assert out.startswith(("OK", "FAILED", "usage:")), (argv, out[:200])  # a report, or --help


@FUZZ
@given(argument_lists())
def test_cli_arguments(argv):
    check(argv)


@FUZZ
@given(st.data())
def test_cli_report_on_mutated_files(data):
    path = Path(files()["folder"]) / "mutated.json"
    path.write_text(dumps(data.draw(mutations(report_doc()))), encoding="utf-8")
    check(["report", str(path), "--html", files()["out.html"], "--junit", files()["out.xml"]])


def test_the_hostile_markers_are_written_out():
    assert dumps([DEEP[64], HUGE]) == "[" + "[" * 64 + "]" * 64 + ", " + "9" * 5000 + "]"
