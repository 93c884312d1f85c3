"""Before and after in one run: a benchmark against an earlier revision of modpact.

    python bench/ab.py --before REV [--rounds 3] -- bench/monitor_overhead.py --quick
    python bench/ab.py --before REV -- bench/contracts_overhead.py --quick

The earlier revision is installed once into ``build/ab/<sha>/site`` (from a
temporary git worktree, without its dependencies). Then the benchmark script
of *this* checkout runs ``--rounds`` times with each version, alternating
which goes first, each time in a fresh process: the earlier one with
``PYTHONPATH`` pointing at its site, the current one as installed. The
script writes its figures with ``--json PATH`` (rows of named numbers); the
table shows, per row and figure, the median over rounds of each version.
The machines here are shared and noisy: alternating processes spreads the
drift over both versions alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def install(rev: str) -> Path:
    """The site folder of ``rev``, built on first use."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    site = ROOT / "build" / "ab" / sha[:12] / "site"
    if (site / "modpact").is_dir():
        return site
    src = site.parent / "src"
    _git("worktree", "add", "--detach", "--force", str(src), sha)
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(site),
                str(src),
            ],
            check=True,
        )
    finally:
        _git("worktree", "remove", "--force", str(src))
    return site


def run(script: list[str], site: Path | None) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        subprocess.run(
            [sys.executable, *script, "--json", str(out)], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the earlier revision (a commit, tag or branch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("script", nargs=argparse.REMAINDER, help="-- the benchmark script and its arguments")
    args = ap.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script:
        ap.error("name the benchmark script after --")
    site = install(args.before)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = [("before", site), ("after", None)]
        for label, where in order if r % 2 == 0 else reversed(order):
            print(f"round {r + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            runs[label].append(run(script, where))
    rows = list(runs["after"][0])
    cols = sorted({c for row in runs["after"][0].values() for c in row})
    head = _git("rev-parse", "--short", "HEAD")
    print(
        f"{' '.join(script)}: before = {args.before}, after = {head} (working tree); "
        f"median of {args.rounds} alternating rounds"
    )
    print(f"{'row':34s} {'figure':14s} {'before':>9s} {'after':>9s}")
    for row in rows:
        for col in cols:
            vals = {k: [run_[row][col] for run_ in v if row in run_ and col in run_[row]] for k, v in runs.items()}
            if vals["before"] and vals["after"]:
                b, a = statistics.median(vals["before"]), statistics.median(vals["after"])
                print(f"{row:34s} {col:14s} {b:9.3f} {a:9.3f}")


if __name__ == "__main__":
    main()
