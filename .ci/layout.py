"""Build a view of modpact's installed layout out of symlinks, for tools that
find a package by walking its folder (import-linter's grimp sees only
``modpact/`` otherwise: the other subpackages live in top-level folders).

    python .ci/layout.py [build/layout]

The view is rebuilt from pyproject's ``[tool.setuptools.package-dir]``, so
the mapping is written once: ``<view>/modpact/`` is a folder whose entries
link to those of the folder mapped to ``modpact``, and every other mapped
package is a link to its folder (``<view>/modpact/interfaces -> interfaces/``).
Point ``PYTHONPATH`` at the view. Nothing in the source tree is written.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def build(view: Path) -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    if view.exists():
        shutil.rmtree(view)  # removes the links, never what they point to
    for package in sorted(mapping, key=lambda p: p.count(".")):  # parents first
        source = (ROOT / mapping[package]).resolve()
        target = view.joinpath(*package.split("."))
        if "." not in package:  # the root package: a real folder, so the subpackages can be linked into it
            subpackages = {p.split(".")[1] for p in mapping if p.count(".") == 1}
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__" and entry.name not in subpackages:
                    (target / entry.name).symlink_to(entry)
            continue
        parent = target.parent
        if parent.is_symlink() or not parent.is_dir():
            raise SystemExit(f"{package}: its parent {parent} must be a mapped top-level package folder in the view")
        target.symlink_to(source, target_is_directory=True)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/layout").resolve())
