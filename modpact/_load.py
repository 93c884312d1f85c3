"""``PATH[:OBJECT]`` for the command line: a Python file or an importable
module, and an object in it (an ``nn.Module``, or a function or class that
returns one when called without arguments)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from modpact.errors import LoadError

__all__ = ["load_module", "load_object", "load_model", "split_target", "DEFAULT_NAMES"]

DEFAULT_NAMES = ("model", "build_model", "build")


def split_target(target: str) -> tuple[str, str | None]:
    """``"pkg/file.py:build"`` -> ``("pkg/file.py", "build")``."""
    path, sep, obj = target.rpartition(":")
    if not sep:
        return target, None
    if not path:
        raise LoadError(f"{target!r}: expected PATH[:OBJECT] with a file or module before the ':'")
    if not obj or not all(p.isidentifier() for p in obj.split(".")):
        raise LoadError(
            f"{target!r}: {obj!r} after the ':' is not an object name (expected e.g. model or "
            "build_model or a dotted name like zoo.MLP)"
        )
    return path, obj


def load_module(path: str) -> ModuleType:
    """Import a ``.py`` file (its folder goes first on sys.path, so its own
    imports work) or a dotted module name."""
    p = Path(path)
    if path.endswith(".py") or "/" in path or "\\" in path or _exists(p):
        if not _exists(p, file=True):
            raise LoadError(f"no such file: {path}")
        name = f"_modpact_target_{abs(hash(str(p.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, p)
        if spec is None or spec.loader is None:
            raise LoadError(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        folder = str(p.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except BaseException as e:  # noqa: BLE001 - the user's code may raise anything on import
            del sys.modules[name]
            if isinstance(e, KeyboardInterrupt):
                raise
            raise LoadError(f"importing {path} raised {type(e).__name__}: {e}") from e
        return module
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and (path == e.name or path.startswith(e.name + ".")):
            raise LoadError(f"no such file or module: {path}") from None
        raise LoadError(f"importing module {path} raised ModuleNotFoundError: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"importing module {path} raised {type(e).__name__}: {e}") from e


def _exists(p: Path, file: bool = False) -> bool:
    try:
        return p.is_file() if file else p.exists()
    except (OSError, ValueError):  # a NUL in the name, a name too long
        return False


def _candidates(module: ModuleType) -> list[str]:
    out = []
    for k, v in vars(module).items():
        if k.startswith("_"):
            continue
        if isinstance(v, nn.Module):
            out.append(k)
        elif callable(v) and getattr(v, "__module__", None) == module.__name__:
            out.append(k)
    return out


def load_object(module: ModuleType, name: str | None, where: str) -> tuple[str, Any]:
    """The object ``name`` (dotted) in ``module``; without a name, the first of
    DEFAULT_NAMES present, else the module's only nn.Module."""
    if name is None:
        for default in DEFAULT_NAMES:
            if hasattr(module, default):
                return default, getattr(module, default)
        modules = [k for k, v in vars(module).items() if isinstance(v, nn.Module) and not k.startswith("_")]
        if len(modules) == 1:
            return modules[0], getattr(module, modules[0])
        cands = ", ".join(_candidates(module)) or "none"
        raise LoadError(
            f"{where}: no object named; write {where}:OBJECT (it defines no {', '.join(DEFAULT_NAMES)}; "
            f"candidates: {cands})"
        )
    obj: Any = module
    done: list[str] = []
    for part in name.split("."):
        if not hasattr(obj, part):
            owner = f"{where}:{'.'.join(done)}" if done else where
            cands = (
                ", ".join(_candidates(module))
                if not done
                else ", ".join(k for k in dir(obj) if not k.startswith("_"))[:300]
            )
            raise LoadError(f"{owner} has no object {part!r} (candidates: {cands or 'none'})")
        obj = getattr(obj, part)
        done.append(part)
    return name, obj


def load_model(target: str) -> tuple[str, nn.Module]:
    """``PATH[:OBJECT]`` -> (its name, the nn.Module). A function or class is
    called without arguments and must return an nn.Module."""
    path, name = split_target(target)
    module = load_module(path)
    name, obj = load_object(module, name, path)
    if isinstance(obj, nn.Module):
        return name, obj
    if callable(obj):
        try:
            made = obj()
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"{path}:{name}: calling {name}() raised {type(e).__name__}: {e}") from e
        if not isinstance(made, nn.Module):
            raise LoadError(f"{path}:{name}: {name}() returned {type(made).__name__}, expected an nn.Module")
        return name, made
    raise LoadError(f"{path}:{name} is a {type(obj).__name__}, expected an nn.Module or a function returning one")
