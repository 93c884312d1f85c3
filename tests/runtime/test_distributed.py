"""The Monitor across real torch.distributed processes (gloo on CPU)."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch import nn

import modpact as mp
from modpact.runtime import distributed as D
from modpact.runtime.violations import RuntimeViolation

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")


def _model() -> nn.Module:
    torch.manual_seed(0)  # the same replica on every rank
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _dump(out: str, rank: int, name: str, report: mp.DiagnosisReport) -> None:
    with open(os.path.join(out, f"{name}-{rank}.json"), "w") as f:
        f.write(report.to_json())


def _bad(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 0] = float("inf")
    return x


def _scenarios(rank: int, world: int, init: str, out: str) -> None:
    model = _model()
    # made before init_process_group: joins the exchange once the group exists
    mon = mp.Monitor(model, defaults=True, timeout=20)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x = torch.rand(4, 8)
    with mon:
        model(x)  # step 0: clean everywhere
        mon.step()
        # step 1: rank 1's batch is broken; the others are clean
        model(_bad(x) if rank == 1 else x)
        mon.step()
    _dump(out, rank, "one-rank", mon.report())

    with mp.Monitor(model, defaults=True, timeout=20) as mon:
        with torch.no_grad():
            model[2].weight[0, 0] = float("nan")  # every replica
        model(x)
        mon.step()
    _dump(out, rank, "all-ranks", mon.report())

    with torch.no_grad():
        model[2].weight[0, 0] = 0.0
    raised_at = None
    with pytest.raises(mp.MonitorViolation) as info:
        with mp.Monitor(model, "raise", defaults=True, timeout=20) as mon:
            for step in range(3):
                model(_bad(x) if (rank == 0 and step == 1) else x)
                raised_at = step
                mon.step()
    with open(os.path.join(out, f"raise-{rank}.json"), "w") as f:
        json.dump({"step": raised_at, "message": str(info.value)}, f)
    dist.destroy_process_group()


def _spawn(fn, world: int, tmp_path, *extra) -> None:
    init = f"file://{tmp_path}/init"
    tmp.spawn(fn, args=(world, init, str(tmp_path), *extra), nprocs=world, join=True)


def _load(tmp_path, name: str, rank: int) -> mp.DiagnosisReport:
    return mp.DiagnosisReport.from_json((tmp_path / f"{name}-{rank}.json").read_text())


def test_every_rank_gets_the_same_diagnosis_naming_the_rank(tmp_path):
    _spawn(_scenarios, 2, tmp_path)
    one = [_load(tmp_path, "one-rank", r) for r in range(2)]
    for rep in one:  # rank 0 saw nothing locally but knows what happened on rank 1
        root = rep.root_cause
        assert rep.world_size == 2
        assert root is not None and root.where == "<model>" and root.step == 1
        assert root.blame == "the input data" and root.ranks == [1] and root.rank == 1
        assert rep.rank_scope(root) == "on rank 1 only (of 2): points to the data fed to rank 1"
        assert rep.repair_hint() == "check the data fed to <model> on rank 1"
        assert "on rank 1 only (of 2)" in str(rep)
    assert one[0].model_dump() == one[1].model_dump()

    for rank in range(2):
        rep = _load(tmp_path, "all-ranks", rank)
        root = rep.root_cause
        assert root is not None and root.module == "2" and root.ranks == [0, 1]
        assert len([v for v in rep.violations if v.module == "2"]) == 1  # merged, not one per rank
        assert rep.rank_scope(root) == "on all 2 ranks: points to the module, not to one rank's data"
        assert rep.repair_hint() == "replace or retrain 2 against its interface and contracts"

    # mode="raise": the healthy rank raises at the same step as the faulty one
    raised = [json.loads((tmp_path / f"raise-{r}.json").read_text()) for r in range(2)]
    assert [r["step"] for r in raised] == [1, 1]
    assert all("root cause" in r["message"] and "at <model> in step 1" in r["message"] for r in raised)


def _lost_rank(rank: int, world: int, init: str, out: str, how: str, timeout: float) -> None:
    """Rank 1 never reaches step(): it hangs (``how="hang"``) or dies (``"die"``);
    rank 0 records what its step() raised and how long it waited."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    model = _model()
    with mp.Monitor(model, defaults=True, timeout=timeout) as mon:
        model(torch.rand(2, 8))
        if rank == 1:
            if how == "hang":
                time.sleep(4)
            os._exit(0)  # dies without a word, before step()
        t0 = time.monotonic()
        try:
            mon.step()
            message = "no error"
        except mp.MonitorError as e:
            message = str(e)
        waited = time.monotonic() - t0
    with open(os.path.join(out, f"{how}.json"), "w") as f:
        json.dump({"message": message, "waited": waited}, f)
    # gloo may abort tearing down a group whose peer is gone or whose collective
    # timed out ("terminate called without an active exception"); the error
    # above is what is under test
    os._exit(0)


def test_a_hung_rank_gives_a_clear_error_after_the_timeout(tmp_path):
    _spawn(_lost_rank, 2, tmp_path, "hang", 1.5)
    res = json.loads((tmp_path / "hang.json").read_text())
    assert res["message"].startswith(
        "Monitor.step() on rank 0: the exchange of violation flags across 2 ranks did not complete within 1.5 s; "
        "another rank has probably died or hangs (it must call Monitor.step() at the same steps)."
    )
    assert res["waited"] < 4


def test_a_dead_rank_gives_a_clear_error_without_waiting_for_the_timeout(tmp_path):
    _spawn(_lost_rank, 2, tmp_path, "die", 30.0)
    res = json.loads((tmp_path / "die.json").read_text())
    assert res["message"].startswith(
        "Monitor.step() on rank 0: the exchange of violation flags across 2 ranks did not complete within 30 s; "
        "another rank has probably died or hangs"
    )
    assert "Backend said: " in res["message"]
    assert res["waited"] < 25  # the closed connection is seen long before the timeout


def test_merge_ranks_keeps_one_record_per_violation():
    def v(rank, module="a", seq=1):
        return RuntimeViolation(
            step=0,
            call=0,
            seq=seq,
            module=module,
            kind="postcondition",
            check="finite(output)",
            tensor="output",
            blame=module,
            blame_reason="r",
            rank=rank,
        )

    merged = D.merge_ranks([v(1), v(0), v(1, "b", 2), v(3)])
    assert [(m.module, m.ranks, m.rank) for m in merged] == [("a", [0, 1, 3], 0), ("b", [1], 1)]


def test_single_process_runs_do_not_exchange():
    assert not D.active()
    model = _model()
    with mp.Monitor(model, defaults=True) as mon:
        model(torch.rand(2, 8))
        mon.step()
    rep = mon.report()
    assert rep.ok and rep.world_size is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sync_every": -1}, "Monitor(sync_every=-1): expected an int >= 0 (0: never exchange across ranks)"),
        ({"timeout": 0}, "Monitor(timeout=0): expected a positive number of seconds"),
    ],
)
def test_bad_distributed_arguments(kwargs, message):
    with pytest.raises(mp.SpecError) as info:
        mp.Monitor(_model(), defaults=True, **kwargs)
    assert str(info.value) == message


def test_ddp_example_stops_every_rank_and_names_the_faulty_one():
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "ddp_digits.py"
    run = subprocess.run([sys.executable, str(example), "--steps", "8"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert out.startswith("FAILED: ") and "root cause: precondition finite(input) at <model> in step 5" in out
    assert "on rank 1 only (of 2): points to the data fed to rank 1" in out
    assert out.rstrip().endswith("all 2 ranks stopped at step 5")
