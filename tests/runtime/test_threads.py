"""Guards and the Monitor with a model called from several threads at once:
no violation invented, none lost, counts exact."""

import threading

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.runtime import Monitor

THREADS, CALLS = 8, 100


def _run_threads(work) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _wide(n: int = 64) -> nn.Module:
    """Large enough that torch releases the GIL inside the forward, so the
    threads' calls interleave."""
    return nn.Sequential(nn.Linear(n, n), nn.ReLU(), nn.Linear(n, n))


def test_a_guard_called_from_threads_binds_each_call_s_dims_apart():
    iface = mp.Interface("block", inputs={"x": mp.TensorSpec("n 64")}, outputs={"y": mp.TensorSpec("n 64")})
    model = mp.guard(_wide(), interface=iface)  # raise mode: a false violation would raise

    def work(i: int) -> None:
        for _ in range(CALLS):
            model(torch.rand(i + 1, 64))  # each thread its own batch size: its own binding of n

    assert _run_threads(work) == []


class Flagged(nn.Module):
    """Its output is NaN exactly when the input's first element is negative."""

    def __init__(self):
        super().__init__()
        self.body = _wide()
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        h = self.body(x)
        return self.head(torch.where(x[:1, :1] < 0, h * float("nan"), h))


@pytest.mark.parametrize("replay", [False, True])
def test_monitor_counts_every_call_and_every_violation_of_every_thread(replay):
    torch.manual_seed(0)
    model = Flagged()
    ensures = [mp.finite("result")]
    mp.guard(model.head, ensures=ensures, name="head")
    bad_calls = 0

    def work(i: int) -> None:
        for k in range(CALLS):
            x = torch.rand(4, 64)
            if (i + k) % 4 == 0:
                x[0, 0] = -1.0
            model(x)

    for i in range(THREADS):
        bad_calls += sum((i + k) % 4 == 0 for k in range(CALLS))
    with torch.no_grad(), Monitor(model, leaf_checks="every_call", replay=replay) as mon:
        errors = _run_threads(work)
        mon.step()
    assert errors == []
    rep = mon.report()
    assert rep.calls == THREADS * CALLS
    head = [v for v in rep.violations if v.module == "head" and v.check == "finite(result)"]
    assert len(head) == bad_calls, (len(head), bad_calls)
    assert len({(v.step, v.call) for v in head}) == bad_calls  # every call numbered apart
    assert all(v.blame == "head" for v in head)


def test_step_from_the_main_thread_while_workers_call_the_model():
    torch.manual_seed(0)
    model = _wide()
    stop = threading.Event()
    counted = [0]

    def worker() -> None:
        while not stop.is_set():
            model(torch.rand(2, 64))
            counted[0] += 1

    with torch.no_grad(), Monitor(model, defaults=True) as mon:
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(50):
            mon.step()
        stop.set()
        for t in threads:
            t.join()
    rep = mon.report()
    assert rep.ok, str(rep)
    assert rep.calls == counted[0]
