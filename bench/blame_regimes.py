"""How the blame benchmark runs a model under the Monitor, and how a run is scored.

A regime is ``run(model, batch, fault, inject_at=1) -> DiagnosisReport``: it
runs ``STEPS`` steps of ``model`` on ``batch`` under ``modpact.Monitor`` and
returns ``mon.report()``. ``fault`` (a ``blame_faults.Fault``, or None for a
clean run) is applied just before step ``inject_at``: 0 puts it in the
Monitor's first call, 1 (the default) lets one clean step pass first, as a
fault that appears during a long run would. A forward that raises leaves the
``with Monitor`` block, as it would in user code; the report is read after.

Only the public API is used: ``Monitor(model, defaults=True, ...)``,
``mon.step()``, ``mon.report()`` and the report's ``ok``, ``violations`` and
``root_cause`` (``module``, ``blame``, ``blame_reason``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from blame_faults import INPUT_DATA, Fault
from torch import nn
from zoo import BLAME_MODELS, Batch, loss

import modpact as mp

STEPS = 3


class _Unmonitored:
    """Stands in for the Monitor to run a regime without modpact (see ``runs_without_monitor``)."""

    def __enter__(self) -> _Unmonitored:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step(self) -> None:
        return None


def _loop(
    model: nn.Module,
    batch: Batch,
    fault: Fault | None,
    inject_at: int,
    *,
    train: str | None,
    optimizer: str = "sgd",
    autocast: bool = False,
    monitor: dict[str, Any] | None = None,
    monitored: bool = True,
    errors: list[BaseException] | None = None,
) -> Any:
    """The common loop. ``train``: None (eval, no grad), "after" (``opt.step(); mon.step()``) or
    "before" (``mon.step(); opt.step()``). An exception from the loop is appended to ``errors``."""
    model.train(train is not None)
    opt = None
    if train is not None:
        params = model.parameters()
        opt = (
            torch.optim.Adam(params, lr=1e-3) if optimizer == "adam" else torch.optim.SGD(params, lr=0.05, momentum=0.9)
        )
    mon = mp.Monitor(model, defaults=True, **(monitor or {})) if monitored else _Unmonitored()
    grad = torch.no_grad() if train is None else contextlib.nullcontext()
    try:
        with grad, mon:
            for step in range(STEPS):
                if fault is not None and step == inject_at:
                    batch = fault.apply(model, batch)
                with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
                    out = batch.call(model)
                if opt is None:
                    mon.step()
                    continue
                opt.zero_grad()
                loss(out, batch).backward()
                if train == "before":
                    mon.step()
                    opt.step()
                else:
                    opt.step()
                    mon.step()
    except Exception as e:  # noqa: BLE001 - a raising forward is part of the fault; the report must say whom to blame
        if errors is not None:
            errors.append(e)
    return mon.report() if monitored else None


def eval_run(model: nn.Module, batch: Batch, fault: Fault | None = None, inject_at: int = 1, **kw: Any) -> Any:
    """(a) inference: ``model.eval()`` under ``torch.no_grad()``, ``mon.step()`` after each call."""
    return _loop(model, batch, fault, inject_at, train=None, **kw)


def train_after(model: nn.Module, batch: Batch, fault: Fault | None = None, inject_at: int = 1, **kw: Any) -> Any:
    """(b) training with SGD: ``loss.backward(); opt.step(); mon.step()``, the order README shows."""
    return _loop(model, batch, fault, inject_at, train="after", **kw)


def train_before(model: nn.Module, batch: Batch, fault: Fault | None = None, inject_at: int = 1, **kw: Any) -> Any:
    """(c) training with SGD: ``loss.backward(); mon.step(); opt.step()``."""
    return _loop(model, batch, fault, inject_at, train="before", **kw)


def backward_checks(model: nn.Module, batch: Batch, fault: Fault | None = None, inject_at: int = 1, **kw: Any) -> Any:
    """(d) training with Adam under ``Monitor(model, defaults=True, backward=True)``;
    ``loss.backward(); opt.step(); mon.step()``."""
    return _loop(model, batch, fault, inject_at, train="after", optimizer="adam", monitor={"backward": True}, **kw)


def bf16_autocast(model: nn.Module, batch: Batch, fault: Fault | None = None, inject_at: int = 1, **kw: Any) -> Any:
    """(e) inference as in (a), the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    return _loop(model, batch, fault, inject_at, train=None, autocast=True, **kw)


REGIMES: dict[str, Callable[..., Any]] = {
    "eval": eval_run,
    "train_after": train_after,
    "train_before": train_before,
    "backward": backward_checks,
    "bf16_autocast": bf16_autocast,
}


def runs_without_monitor(model_name: str, regime: str) -> str | None:
    """None if the clean model runs in ``regime`` without modpact, else the error (e.g. nn.LSTM under
    CPU bf16 autocast on a CPU whose oneDNN has no bf16 LSTM): such a pair has nothing to measure."""
    spec = BLAME_MODELS[model_name]
    errors: list[BaseException] = []
    REGIMES[regime](spec.build(0), spec.batch(0), None, monitored=False, errors=errors)
    return f"{type(errors[0]).__name__}: {str(errors[0]).splitlines()[0]}" if errors else None


@dataclass
class Outcome:
    """One scored run (a row of ``--json``). ``fault`` is None for a clean run."""

    model: str
    regime: str
    fault: str | None
    inject_at: int | None
    seed: int
    expected: str | None  # the accepted party; None: a clean run, expected OK
    correct: bool  # faulty run: blamed the expected party; clean run: the report is OK
    ok: bool
    root_module: str | None
    blame: str | None
    blame_reason: str | None
    said: str  # what the report said, in one line
    raised: str | None  # the exception that left the loop, if any
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _module(path: str | None) -> str:
    return "" if path in (None, "", "<model>") else path


def names_expected(report: Any, fault: Fault) -> bool:
    """The report is not OK and its root cause names the fault's expected party:
    ``blame == "the input data"`` for a data fault, else ``module`` is one of the
    accepted module paths (and the blame is not on the data)."""
    root = report.root_cause
    if report.ok or root is None:
        return False
    if fault.expected == INPUT_DATA:
        return root.blame == INPUT_DATA
    return _module(root.module) in fault.accepted and root.blame != INPUT_DATA


def _said(report: Any) -> str:
    """One line from the public fields: how many violations, and the root cause's check and module."""
    root = report.root_cause
    if report.ok or root is None:
        return "OK"
    check = f"{getattr(root, 'kind', '')} {getattr(root, 'check', '')}".strip()
    return f"{len(report.violations)} violation(s); root: {check} at {root.module or '<model>'}"


def run_case(model_name: str, regime: str, fault: Fault | None = None, *, inject_at: int = 1, seed: int = 0) -> Outcome:
    """Build a fresh seeded model and batch, run ``regime`` with ``fault`` (None: clean) and score it."""
    spec = BLAME_MODELS[model_name]
    model, batch = spec.build(seed), spec.batch(seed)
    start = time.perf_counter()
    errors: list[BaseException] = []
    report = REGIMES[regime](model, batch, fault, inject_at, errors=errors)
    seconds = time.perf_counter() - start
    root = report.root_cause
    correct = report.ok if fault is None else names_expected(report, fault)
    return Outcome(
        model=model_name,
        regime=regime,
        fault=fault.name if fault else None,
        inject_at=inject_at if fault else None,
        seed=seed,
        expected=" or ".join(fault.accepted) if fault else None,
        correct=correct,
        ok=report.ok,
        root_module=(root.module or "<model>") if root else None,
        blame=root.blame if root else None,
        blame_reason=root.blame_reason if root else None,
        said=_said(report),
        raised=type(errors[0]).__name__ if errors else None,
        seconds=round(seconds, 4),
    )
