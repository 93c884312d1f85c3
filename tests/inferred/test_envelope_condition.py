import pytest
import torch

from modpact.contracts import Condition, mostly
from modpact.errors import SpecError
from modpact.inference import envelope, in_boxes, in_class_boxes


def test_device_ok_is_a_0dim_bool_tensor_without_host_sync(monkeypatch):
    c = envelope("x", torch.zeros(3), torch.ones(3))
    x = torch.rand(5, 3)

    def no_sync(*a, **k):
        raise AssertionError("host sync in device_ok")

    monkeypatch.setattr(torch.Tensor, "item", no_sync)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_sync)
    monkeypatch.setattr(torch.Tensor, "tolist", no_sync)
    ok = c.device_ok({"x": x})
    bad = c.device_ok({"x": x + 2})
    monkeypatch.undo()
    assert isinstance(ok, torch.Tensor) and ok.dtype == torch.bool and ok.ndim == 0
    assert bool(ok) and not bool(bad)


def test_boxes_device_ok_is_a_0dim_bool_tensor_without_host_sync(monkeypatch):
    c = in_boxes("x", [[0.0, 0.0], [5.0, 5.0]], [[1.0, 1.0], [6.0, 6.0]])
    x = torch.tensor([[0.5, 0.5], [5.5, 5.9]])

    def no_sync(*a, **k):
        raise AssertionError("host sync in device_ok")

    monkeypatch.setattr(torch.Tensor, "item", no_sync)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_sync)
    ok = c.device_ok({"x": x})
    between = c.device_ok({"x": torch.tensor([[3.0, 3.0]])})
    monkeypatch.undo()
    assert ok.ndim == 0 and ok.dtype == torch.bool and bool(ok)
    assert not bool(between)  # inside the overall range, outside every box


@pytest.mark.cuda
def test_device_ok_on_cuda_does_not_sync():
    c = envelope("x", torch.zeros(3), torch.ones(3))
    x = torch.rand(64, 3, device="cuda")
    c.device_ok({"x": x})  # warm the bound cache (one host-to-device copy)
    torch.cuda.set_sync_debug_mode("error")
    try:
        ok = c.device_ok({"x": x})
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ok.device.type == "cuda" and bool(ok)


def test_nan_fails_and_bounds_are_inclusive():
    c = envelope("x", torch.zeros(2), torch.ones(2))
    assert bool(c.device_ok({"x": torch.tensor([[0.0, 1.0]])}))
    assert not bool(c.device_ok({"x": torch.tensor([[0.5, float("nan")]])}))
    assert c.excursion(torch.tensor([[0.5, float("nan")]]))[0] == float("inf")


def test_per_channel_bounds_broadcast_and_rows():
    lo = torch.tensor([0.0, -1.0]).reshape(2, 1, 1)
    c = envelope("x", lo, lo + 1)
    x = torch.zeros(3, 2, 4, 4)
    x[1, 0, 2, 2] = 5.0
    assert c.granularity == "2 channels"
    assert not bool(c.device_ok({"x": x}))
    assert c.rows({"x": x}).tolist() == [True, False, True]
    assert c.excursion(x).tolist() == [0.0, 4.0, 0.0]


def test_wrong_width_is_a_violation_with_evidence_not_an_error():
    c = envelope("x", torch.zeros(3), torch.ones(3))
    assert c.device_ok({"x": torch.zeros(2, 4)}) is False
    out = c.check({"x": torch.zeros(2, 4)})
    assert not out.ok and out.evidence["expected"] == "rows broadcasting with bounds of shape [3]"


def test_evidence_names_first_failure_and_its_bounds():
    c = envelope("x", torch.zeros(3), torch.ones(3))
    x = torch.zeros(4, 3)
    x[2, 1] = 7.0
    out = c.check({"x": x})
    assert not out.ok
    assert out.evidence["failing"] == 1 and out.evidence["first_index"] == (2, 1)
    assert out.evidence["first_value"] == 7.0 and out.evidence["first_bounds"] == (0.0, 1.0)
    assert out.evidence["rows_outside"] == 1


def test_mostly_uses_rows():
    c = mostly(envelope("x", torch.zeros(1), torch.ones(1)), 0.5)
    x = torch.tensor([[0.5], [0.5], [3.0]])
    assert bool(c.device_ok({"x": x}))
    assert not bool(c.device_ok({"x": x + 1}))


@pytest.mark.parametrize(
    "lo,hi,msg",
    [
        ([0.0, 2.0], [1.0, 1.0], "envelope('x'): lo > hi at index (1,) (2.0 > 1.0)"),
        ([0.0], [1.0, 1.0], "envelope('x'): lo has shape [1] but hi has shape [2]; they must match"),
        ([0.0, float("nan")], [1.0, 1.0], "Expected envelope(lo) to be finite"),
        ("abc", [1.0], "Expected envelope(lo) to be a tensor or nested list of numbers"),
    ],
    ids=["lo>hi", "shapes", "nan", "not-numbers"],
)
def test_bad_bounds_are_rejected_with_a_clear_message(lo, hi, msg):
    with pytest.raises(SpecError) as e:
        envelope("x", lo, hi)
    assert msg in str(e.value)


def test_boxes_need_a_2d_shape():
    with pytest.raises(SpecError, match=r"lo and hi must have shape \[boxes, features\], got \[3\]"):
        in_boxes("x", [0.0, 0, 0], [1.0, 1, 1])


def test_serialises_through_the_condition_registry():
    for c in (
        envelope("x", torch.zeros(2, 1, 1), torch.ones(2, 1, 1), index=0),
        in_boxes("result", [[0.0, 1.0]], [[2.0, 3.0]]),
    ):
        back = Condition.from_dict(c.to_dict())
        assert back == c and back.text == c.text


def test_class_boxes_device_ok_without_host_sync(monkeypatch):
    from modpact.inference import in_class_boxes

    c = in_class_boxes("x", "scores", [[0.0], [5.0]], [[1.0], [6.0]], [0, 1])
    x = torch.tensor([[0.5], [5.5]])
    right = torch.tensor([[2.0, 0.0], [0.0, 2.0]])

    def no_sync(*a, **k):
        raise AssertionError("host sync in device_ok")

    monkeypatch.setattr(torch.Tensor, "item", no_sync)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_sync)
    ok = c.device_ok({"x": x, "scores": right})
    swapped = c.device_ok({"x": x, "scores": right.flip(1)})
    monkeypatch.undo()
    assert ok.ndim == 0 and bool(ok) and not bool(swapped)
    assert c.rows({"x": x, "scores": torch.tensor([[2.0, 0.0], [2.0, 0.0]])}).tolist() == [True, False]
    with pytest.raises(SpecError, match="in_class_boxes\\('x'\\): 3 labels for 2 boxes; give one class per box"):
        in_class_boxes("x", "scores", [[0.0], [5.0]], [[1.0], [6.0]], [0, 1, 2])


def test_empty_batch_holds_and_infinities_fail():
    c = envelope("x", torch.zeros(2), torch.ones(2))
    assert c.device_ok({"x": torch.zeros(0, 2)}) is True
    assert c.rows({"x": torch.zeros(0, 2)}).shape == (0,)
    assert not bool(c.device_ok({"x": torch.tensor([[float("inf"), 0.5]])}))
    assert not bool(c.device_ok({"x": torch.tensor([[0.5, float("-inf")]])}))
    # exact at the bounds, also for bounds that are not representable halves
    lo, hi = torch.tensor([0.1]), torch.tensor([0.3])
    c = envelope("x", lo, hi)
    edge = torch.tensor([[0.1], [0.3]], dtype=torch.float32)
    assert bool(c.device_ok({"x": edge}))
    assert not bool(c.device_ok({"x": torch.nextafter(edge, edge + 1)[1:]}))
    assert not bool(c.device_ok({"x": torch.nextafter(edge, edge - 1)[:1]}))


def test_device_forms_trace_with_fullgraph():
    from modpact.inference import in_class_boxes

    c = envelope("x", torch.zeros(3), torch.ones(3))
    b = in_class_boxes("x", "s", [[0.0] * 3, [1.0] * 3], [[1.0] * 3, [2.0] * 3], [0, 1])
    f = torch.compile(
        lambda x, s: c.device_ok({"x": x}) & b.device_ok({"x": x, "s": s}), fullgraph=True, backend="eager"
    )
    x, s = torch.rand(4, 3), torch.tensor([[1.0, 0.0]] * 4)
    assert bool(f(x, s)) and not bool(f(x + 5, s))


def test_evidence_on_a_0dim_tensor_has_no_row_counts():
    c = envelope("x", torch.tensor(0.0), torch.tensor(1.0))
    out = c.check({"x": torch.tensor(5.0)})
    assert not out.ok
    assert out.evidence["failing"] == 1 and out.evidence["first_value"] == 5.0
    assert "rows" not in out.evidence and "rows_outside" not in out.evidence


def test_rows_of_another_width_are_outside_every_box():
    c = in_boxes("x", [[0.0, 0.0]], [[1.0, 1.0]])
    assert c.device_ok({"x": torch.zeros(3, 5)}) is False
    assert c.excursion(torch.zeros(3, 5)).tolist() == [float("inf")] * 3
    k = in_class_boxes("x", "scores", [[0.0, 0.0]], [[1.0, 1.0]], [0])
    assert k.class_excursion(torch.zeros(3, 5), torch.zeros(3, 2)).tolist() == [float("inf")] * 3
    assert k.class_excursion(torch.zeros(3, 2), torch.zeros(3)).tolist() == [float("inf")] * 3  # scores not 2-d
    assert k.class_excursion(torch.full((3, 2), 0.5), torch.zeros(3, 2)).tolist() == [0.0] * 3
