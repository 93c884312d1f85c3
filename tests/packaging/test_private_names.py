"""No private name (``from modpact.x.y import _name``) is imported across
subpackages: what a subpackage keeps private stays inside it. Private modules
are checked by import-linter (``make lint``); this test checks names."""

import ast
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def _modules():
    """(module name, path) of every source file of modpact, through the package mapping."""
    for package, folder in PACKAGE_DIR.items():
        base = ROOT / folder
        for path in sorted(base.glob("*.py")):
            yield package if path.name == "__init__.py" else f"{package}.{path.stem}", path
        if package == "modpact":
            continue
        for path in sorted(base.glob("*/**/*.py")):  # nested packages (runtime/render)
            rel = path.relative_to(base).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            yield ".".join([package, *parts]), path


def _subpackage(module: str) -> str:
    """``modpact.contracts`` for ``modpact.contracts.guard``; ``modpact`` for top-level modules."""
    parts = module.split(".")
    name = ".".join(parts[:2])
    return name if name in PACKAGE_DIR else "modpact"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_private_name_is_imported_across_subpackages():
    found = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported_from(node, module, path.name == "__init__.py")
            if not source.startswith("modpact"):
                continue
            for alias in node.names:
                if _private(alias.name) and _subpackage(source) != _subpackage(module):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {source} import {alias.name}")
    assert not found, "private names imported across subpackages:\n" + "\n".join(found)


def test_the_check_sees_every_subpackage():
    seen = {_subpackage(m) for m, _ in _modules()}
    assert seen == set(PACKAGE_DIR)
