"""guard / unguard, hooks, kwargs, multi-output modules, modes, sampling, the checker extension point."""

import pytest
import torch
from torch import nn

import modpact.contracts as mc
from modpact.contracts import ContractWarning, PostconditionViolation, PreconditionViolation
from modpact.errors import InterfaceViolation, SpecError
from modpact.interfaces import Interface, TensorSpec


def _hooks(m):
    return len(m._forward_pre_hooks) + len(m._forward_hooks)


class TwoInTwoOut(nn.Module):
    def forward(self, x, mask=None, *, scale=1.0):
        y = x * scale
        if mask is not None:
            y = y * mask
        return y, y.sum(-1)


def test_guard_returns_same_module_and_unguard_leaves_no_hooks():
    m = nn.Linear(4, 2)
    assert mc.guard(m, ensures=[mc.finite()]) is m
    g = mc.get_guard(m)
    assert isinstance(g, mc.Guard) and len(g.handles) == 2 and _hooks(m) == 2
    assert g.name == "Linear" and g.ensures[0].text == "finite(result)"
    mc.guard(m, ensures=[mc.finite()])  # re-guarding replaces, does not stack
    assert _hooks(m) == 2
    assert mc.unguard(m) is m
    assert _hooks(m) == 0 and mc.get_guard(m) is None and "_modpact_guard" not in m.__dict__
    m(torch.ones(1, 4))


def test_guard_maps_positional_args_kwargs_and_defaults_by_signature():
    seen = {}

    def spy(x, mask, scale):
        seen.update(x=x.shape, mask=mask, scale=scale)
        return True

    m = mc.guard(TwoInTwoOut(), requires=[spy])
    m(torch.ones(2, 3), scale=2.0)
    assert seen == {"x": (2, 3), "mask": None, "scale": 2.0}
    m(torch.ones(2, 3), torch.zeros(2, 3))
    assert seen["mask"] is not None and seen["scale"] == 1.0


def test_multi_output_module_with_named_outputs():
    iface = Interface(
        "two",
        inputs={"x": TensorSpec("b n", dtype="float32")},
        outputs={"y": TensorSpec("b n", dtype="float32"), "total": TensorSpec("b", dtype="float32")},
    )
    m = mc.guard(
        TwoInTwoOut(), interface=iface, ensures=[mc.finite("y", "total"), lambda total, x: total.shape[0] == x.shape[0]]
    )
    y, total = m(torch.ones(2, 3), scale=3.0)
    assert total.tolist() == [9.0, 9.0]
    with pytest.raises(PostconditionViolation) as e:
        m(torch.ones(2, 3), scale=float("inf"))
    assert e.value.blame == "TwoInTwoOut" and "y was f32[2,3] inf=6" in str(e.value)


def test_interface_by_position_when_names_differ():
    iface = Interface(
        "lin",
        inputs={"x": TensorSpec("batch 4", dtype="float32")},
        outputs={"y": TensorSpec("batch 2", dtype="float32")},
    )
    m = mc.guard(nn.Linear(4, 2), interface=iface)  # Linear.forward(input)
    m(torch.ones(3, 4))
    with pytest.raises(InterfaceViolation) as e:
        m(torch.ones(3, 5))
    assert e.value.side == "input"
    with pytest.raises(InterfaceViolation) as e:
        m(torch.ones(3, 4, dtype=torch.float64))
    assert e.value.side == "input" and "dtype" in str(e.value)


def test_guard_checks_names_against_forward_signature():
    with pytest.raises(
        SpecError, match=r"on forward\(input\): condition reads 'x', which is not an argument of forward"
    ):
        mc.guard(nn.Linear(2, 2), requires=[mc.finite("x")])
    with pytest.raises(SpecError, match="Expected guard\\(module\\) to be an nn.Module"):
        mc.guard(lambda x: x)


def test_guard_submodules_names_paths_and_infers_sequential_producers():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    mc.guard_submodules(model, {"0": {"requires": [mc.finite("input")]}, "1.1": {"requires": [mc.finite("input")]}})
    assert mc.get_guard(model[0]).name == "0" and mc.get_guard(model[0]).producer == "the input data"
    assert mc.get_guard(model[1][1]).producer == "1.0"
    assert [p for p, _ in mc.guarded(model)] == ["0", "1.1"]
    with pytest.raises(
        SpecError, match=r"^guard_submodules: Sequential has no submodule '2' \(submodules: 0, 1, 1.0, 1.1\)$"
    ):
        mc.guard_submodules(model, {"2": {}})


# ---- modes -------------------------------------------------------------------------------


def _bad():
    return mc.guard(nn.Identity(), requires=[(lambda input: input.min() > 0, "positive")], name="ident")


def test_mode_warn():
    m = mc.guard(nn.Identity(), requires=[(lambda input: input.min() > 0, "positive")], name="ident", mode="warn")
    with pytest.warns(ContractWarning, match="ident: precondition failed: positive"):
        m(-torch.ones(2))


def test_mode_record_collects_without_stopping():
    m = mc.guard(
        nn.Identity(),
        requires=[(lambda input: input.min() > 0, "positive")],
        ensures=[mc.nonnegative()],
        name="ident",
        mode="record",
    )
    out = m(-torch.ones(2))
    assert out.tolist() == [-1, -1]
    g = mc.get_guard(m)
    kinds = [type(v) for v in g.violations]
    assert kinds == [PreconditionViolation, PostconditionViolation]
    # the postcondition failed after a failed precondition: the caller stays blamed
    assert g.violations[1].blame == "the caller of ident"
    assert g.violations[1].blame_reason == "its preconditions failed first"
    assert mc.recorded() == g.violations
    mc.clear_recorded()
    assert mc.recorded() == []


def test_mode_off_and_global_set_mode_and_disabled():
    m = _bad()
    with pytest.raises(PreconditionViolation):
        m(-torch.ones(2))
    assert mc.set_mode("off") == "raise"
    m(-torch.ones(2))
    mc.set_mode("record")
    m(-torch.ones(2))
    assert len(mc.recorded()) == 1
    mc.set_mode("raise")
    with mc.disabled():
        assert mc.is_disabled()
        m(-torch.ones(2))
    with pytest.raises(SpecError):
        mc.set_mode("loud")


def test_mode_off_on_guard_attaches_nothing():
    m = nn.Identity()
    mc.guard(m, requires=[lambda input: False], mode="off")
    assert _hooks(m) == 0
    m(torch.ones(1))


def test_every_n_th_call_is_checked():
    calls = []

    def spy(input):
        calls.append(1)
        return True

    m = mc.guard(nn.Identity(), requires=[spy], every=3)
    for _ in range(7):
        m(torch.ones(1))
    assert len(calls) == 3  # calls 1, 4, 7


def test_forward_that_raises_does_not_leak_pending_frames():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    m = mc.guard(Boom(), ensures=[mc.finite()])
    for _ in range(100):
        with pytest.raises(RuntimeError):
            m(torch.ones(1))
    assert len(mc.get_guard(m)._frames()) <= 64


# ---- the checker extension point -----------------------------------------------------------


class FlagChecker(mc.Checker):
    """What the runtime Monitor does: device flags, no raising, no host sync."""

    def __init__(self):
        self.flags = []

    def check_pre(self, guard, env):
        self.flags += [(guard.name, "pre", c.device_ok(env)) for c in guard.requires]
        return "state"

    def check_post(self, guard, env, state):
        assert state == "state"
        self.flags += [(guard.name, "post", c.device_ok(env)) for c in guard.ensures]


def test_use_checker_routes_checks_to_the_installed_checker():
    m = mc.guard(nn.Identity(), requires=[mc.finite("input")], ensures=[mc.shape_preserved("input")], name="id")
    fc = FlagChecker()
    assert isinstance(mc.current_checker(), mc.EagerChecker)
    with mc.use_checker(fc):
        assert mc.current_checker() is fc
        m(torch.tensor([1.0, float("nan")]))  # would raise under the eager checker
    assert [(n, w) for n, w, _ in fc.flags] == [("id", "pre"), ("id", "post")]
    pre_flag = fc.flags[0][2]
    assert isinstance(pre_flag, torch.Tensor) and pre_flag.shape == () and not bool(pre_flag)
    assert fc.flags[1][2] is True
    assert isinstance(mc.current_checker(), mc.EagerChecker)


def test_unguard_of_something_that_is_not_a_module_names_it():
    with pytest.raises(SpecError, match=r"Expected unguard\(module\) to be an nn.Module, got 'str' \(type=str\)"):
        mc.unguard("str")
