"""Type-check modpact as installed, with mypy, and name the source files.

    python .ci/typecheck.py [mypy arguments]

mypy finds a package by walking its folder, and ``modpact/`` holds only the
top package (the subpackages live in the top-level folders that pyproject's
``package-dir`` maps), so mypy runs ``-p modpact`` from inside the view that
``.ci/layout.py`` builds (``build/layout``), where the checkout's ``modpact/``
cannot shadow it. mypy reports paths in the view (``modpact/interfaces/dims.py``);
this script rewrites them to the source files they link to, relative to the
current folder (``interfaces/dims.py`` from the repository root), so an editor
or a terminal opens the file to fix. The settings are pyproject's
``[tool.mypy]``; the cache is ``build/mypy_cache``. Exits with mypy's status.
"""

from __future__ import annotations

import os
import re
import sys

from layout import ROOT, build
from mypy import api

VIEW = ROOT / "build" / "layout"
# a path in the view at the start of a line: "modpact/interfaces/dims.py:65: error: ..."
_PATH = re.compile(r"^(modpact/[\w/]+\.pyi?)(?=:)", re.MULTILINE)


def _source(view_path: str, cwd: str) -> str:
    return os.path.relpath(os.path.realpath(VIEW / view_path), cwd)


def main(argv: list[str]) -> int:
    cwd = os.getcwd()
    build(VIEW)
    config = str(ROOT / "pyproject.toml")
    cache = str(ROOT / "build" / "mypy_cache")
    os.chdir(VIEW)
    out, err, status = api.run(["--config-file", config, "--cache-dir", cache, *argv, "-p", "modpact"])
    sys.stdout.write(_PATH.sub(lambda m: _source(m.group(1), cwd), out))
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
