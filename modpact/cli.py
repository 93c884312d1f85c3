"""The `modpact` command. Today: `modpact demo` (the quickstart end to end) and
`modpact --version`; validate/report/inspect arrive with the reports issue."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from modpact import __version__

    parser = argparse.ArgumentParser(prog="modpact", description="Interfaces and contracts for modular PyTorch models")
    parser.add_argument("--version", action="version", version=f"modpact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="guard a small model, monitor it, inject a fault and print the diagnosis")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from modpact.runtime.demo import run_demo

        return run_demo()
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
