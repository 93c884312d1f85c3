"""The built wheel installs only `modpact` at top level and its subpackages
(mapped from top-level folders) import from the wheel, not from the checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGES = SETUPTOOLS["packages"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("modpact-*.whl")
    return whl


def test_wheel_installs_only_modpact_at_top_level(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"modpact"}
    for package in PACKAGES:
        assert f"{package.replace('.', '/')}/__init__.py" in names
    assert "modpact/errors.py" in names and "modpact/py.typed" in names


def test_every_package_in_the_source_folders_is_listed():
    """A new subpackage that pyproject's ``packages`` misses would not ship."""
    found = set()
    for package, folder in SETUPTOOLS["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == set(PACKAGES)


def test_wheel_imports_subpackages_from_the_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = f"import {', '.join(PACKAGES)}, modpact.errors;print(modpact.interfaces.__file__)"
    # run outside the checkout so the source folders cannot shadow the wheel
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(site)), proc.stdout
