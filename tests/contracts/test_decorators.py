"""@requires / @ensures / @contract on functions, methods, forward and nn.Module classes."""

import pytest
import torch
from torch import Tensor, nn

import modpact.contracts as mc
from modpact.contracts import ContractError, PostconditionViolation, PreconditionViolation, ensures, requires
from modpact.errors import InterfaceViolation, SpecError
from modpact.interfaces import Interface, TensorSpec


@requires(lambda x: x.ndim == 2, "x is a batch of vectors")
@ensures(mc.finite("result"))
def log_rows(x, eps=0.0):
    return (x + eps).log()


def test_plain_function_passes_and_fails():
    assert log_rows(torch.ones(2, 3)).shape == (2, 3)
    with pytest.raises(PreconditionViolation) as e:
        log_rows(torch.ones(3))
    assert e.value.blame == "the caller of log_rows"
    with pytest.raises(PostconditionViolation) as e:
        log_rows(-torch.ones(2, 3))
    assert e.value.blame == "log_rows" and e.value.blame_reason == "its preconditions held"


def test_stacked_decorators_merge_into_one_wrapper_in_top_down_order():
    g = mc.get_contract(log_rows)
    assert [c.text for c in g.requires] == ["lambda x: x.ndim == 2"]
    assert [c.text for c in g.ensures] == ["finite(result)"]
    assert not hasattr(log_rows.__wrapped__, "__wrapped__")  # one wrapper, not two

    @requires(lambda x: x > 0, "first")
    @requires(lambda x: x > 1, "second")
    def f(x):
        return x

    assert [c.why for c in mc.get_contract(f).requires] == ["first", "second"]
    with pytest.raises(PreconditionViolation, match="first"):
        f(0)


def test_defaults_and_kwargs_are_seen_by_conditions():
    @requires(lambda x, eps: eps >= 0, "eps is non-negative")
    def f(x, eps=0.5, *, scale=1.0):
        return x * scale

    assert f(1.0) == 1.0
    assert f(x=2.0, scale=3.0) == 6.0
    with pytest.raises(PreconditionViolation):
        f(1.0, eps=-1)


def test_method_excludes_self_and_sees_result_and_old():
    class Acc:
        def __init__(self):
            self.total = torch.zeros(3)

        @ensures(lambda x, old: x._version == old.x._version, "x is not modified in place")
        @ensures(lambda result, x: result.shape == x.shape)
        def add(self, x):
            self.total += x
            return self.total.clone()

        @ensures(lambda x, old: x._version == old.x._version, "x is not modified in place")
        def bad(self, x):
            x.mul_(2)
            return x

    a = Acc()
    assert a.add(torch.ones(3)).tolist() == [1, 1, 1]
    with pytest.raises(PostconditionViolation, match="x is not modified in place"):
        a.bad(torch.ones(3))


def test_snapshot_copies_only_on_request():
    @ensures(lambda result, old: torch.equal(result, old.x_copy * 2), snapshot={"x_copy": lambda x: x.clone()})
    def double_in_place(x):
        return x.mul_(2)

    assert double_in_place(torch.ones(2)).tolist() == [2, 2]


def test_module_class_decorator_wraps_forward():
    @mc.contract(requires=[mc.finite("x")], ensures=[mc.shape_preserved("x")])
    class Block(nn.Module):
        def forward(self, x):
            return x[:, :1] if x.shape[1] > 3 else x * 2

    b = Block()
    assert b(torch.ones(2, 3)).shape == (2, 3)
    with pytest.raises(PostconditionViolation) as e:
        b(torch.ones(2, 4))
    assert e.value.module == "Block" and e.value.blame == "Block"
    assert mc.get_contract(Block) is not None


def test_contract_on_forward_with_interface_named_outputs():
    iface = Interface(
        "clf",
        inputs={"x": TensorSpec("batch 4", dtype="float32")},
        outputs={"logits": TensorSpec("batch 3", dtype="floating")},
    )

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        @mc.contract(interface=iface, ensures=[mc.finite("logits"), lambda logits, x: logits.shape[0] == x.shape[0]])
        def forward(self, x: Tensor) -> Tensor:
            return self.lin(x)

    h = Head()
    assert h(torch.ones(5, 4)).shape == (5, 3)
    with pytest.raises(InterfaceViolation) as e:
        h(torch.ones(5, 7))
    assert e.value.side == "input" and e.value.blame == "the caller of Head"


def test_relational_condition_reruns_decorated_method():
    class Rows(nn.Module):
        @ensures(mc.batch_independent("x"))
        def forward(self, x):
            return x - x.mean(0)

    with pytest.raises(PostconditionViolation, match="batch_independent"):
        Rows()(torch.randn(6, 2))


def test_off_at_decoration_returns_the_function_itself(monkeypatch):
    def f(x):
        return x

    assert requires(lambda x: False, mode="off")(f) is f
    assert mc.contract(ensures=[mc.finite()], mode="off")(f) is f
    monkeypatch.setenv("MODPACT_CONTRACTS", "off")
    assert requires(lambda x: False)(f) is f
    m = nn.Linear(2, 2)
    assert mc.guard(m, requires=[lambda input: False]) is m and mc.get_guard(m) is None


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: requires(lambda z: z > 0)(lambda x: x),
            r"^requires\(lambda z: z > 0\) on <lambda>\(x\): condition parameter 'z' is not an argument of <lambda> "
            r"\(arguments: x\)$",
        ),
        (
            lambda: ensures(mc.finite("y"))(lambda x: x),
            r"condition reads 'y', which is not an argument of <lambda> \(arguments: x; also result, old\)",
        ),
        (lambda: requires(lambda result: True)(lambda x: x), "condition parameter 'result' is not an argument"),
        (lambda: requires(lambda *a: True)(lambda x: x), r"takes \*a"),
        (lambda: requires(3), r"Expected a Condition or a callable, got 3 \(type=int\)"),
        (lambda: requires(lambda x: True, mode="loud"), "Expected mode to be one of"),
        (lambda: requires(lambda x: True, every=0), "Expected every to be a positive int, got 0"),
    ],
    ids=["unknown-lambda-param", "unknown-read", "result-in-pre", "varargs", "not-callable", "mode", "every"],
)
def test_bad_contracts_fail_at_decoration(make, match):
    with pytest.raises(SpecError, match=match):
        make()


def test_decorator_error_names_forward_and_its_arguments():
    with pytest.raises(SpecError) as e:

        class M(nn.Module):
            @requires(lambda z: z.ndim == 2)
            def forward(self, x):
                return x

    assert str(e.value) == (
        "requires(lambda z: z.ndim == 2) on forward(x): condition parameter 'z' is not an "
        "argument of forward (arguments: x)"
    )


def test_condition_that_raises_is_a_contract_error():
    @requires(lambda x: x.missing_attribute, "x has the attribute")
    def f(x):
        return x

    with pytest.raises(ContractError) as e:
        f(torch.ones(1))
    assert e.value.blame == "the contract"
    assert "raised AttributeError" in e.value.actual
    assert e.value.__suppress_context__
