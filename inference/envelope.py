"""Envelope conditions: per-feature / per-channel ranges and unions of boxes.

``envelope(name, lo, hi)`` holds when every value of ``name`` lies inside
``[lo, hi]``, where ``lo``/``hi`` broadcast against one batch row (shape
``[F]`` for features, ``[C, 1, 1]`` for channels, ``[]`` for the whole tensor).
``in_boxes(name, lo, hi)`` holds when every batch row, flattened, lies inside
at least one of K boxes (``lo``/``hi`` of shape ``[K, D]``), as in the
box-abstraction monitors of Henzinger et al. (2020).

Device forms (no host sync, NaN fails, exact at the bounds: ``x - y`` is 0
only when ``x == y``), a few tensor ops per check and no Python loop over
dims or boxes; bounds kept on the tensor's device. Each condition has two:

* ``device_ok`` (a 0-dim bool): ``torch.maximum(lo - t, t - hi).amax() <= 0``
  for an envelope; ``(torch.maximum(lo - x, x - hi).amax(-1) <= 0).any(-1)``
  over ``[rows, boxes, features]`` for boxes; for class boxes the boxes of
  each row's predicted class only, gathered by ``scores.argmax(1)`` from a
  table made once (``_plans.py``), instead of every box masked by
  ``labels == argmax``: the same verdict. The Monitor uses it where there
  is no range form (integer tensors, scores on another device).
* ``device_range`` (what the Monitor records, in eager and compiled code,
  and what ``ok`` reads on the host): a tensor whose elements must all lie in ``[lo, hi]``, handed to the
  flag buffer as one ``aminmax`` like a range check: ``clamp(t, lo, hi) - t``
  (all zeros) for an envelope and for class boxes with one box per class
  (two element-wise ops instead of four), each row's excess over its
  nearest box (all <= 0) for more boxes. On large CPU activations an
  envelope reduces first (``amin``/``amax`` over the dims its bounds
  broadcast along, then ``max(lo - min, max - hi)``, all <= 0): two
  read-only passes instead of three passes and a temporary. No 0-dim verdict to convert and
  stack: on the 2-core CPU the envelopes of the digits MLP went from
  7.2-8.9x to 5.6-6.9x of the bare forward (docs/performance.md).

Whether the rows fit the bounds is metadata, kept per shape.

Slow form: evidence with the first failing element and its bounds, and
``excursion(t)``, a per-row score (0 inside the envelope) used to rank inputs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch

from modpact.contracts.condition import Condition, register
from modpact.errors import SpecError
from modpact.interfaces import values as V
from modpact.interfaces.summary import describe

from ._plans import ClassTable, box_excess, box_rows, clamp_range, class_box_range, class_box_rows

__all__ = ["Envelope", "InBoxes", "InClassBoxes", "envelope", "in_boxes", "in_class_boxes"]


def _bounds(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu", torch.float64)
    else:
        try:
            t = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise SpecError(f"Expected {what} to be a tensor or nested list of numbers, got {value!r}: {e}") from None
    if not bool(torch.isfinite(t).all()):
        raise SpecError(f"Expected {what} to be finite, got {describe(t)} with non-finite values")
    return t


def _check_pair(lo: torch.Tensor, hi: torch.Tensor, what: str) -> None:
    if lo.shape != hi.shape:
        raise SpecError(f"{what}: lo has shape {list(lo.shape)} but hi has shape {list(hi.shape)}; they must match")
    bad = lo > hi
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise SpecError(f"{what}: lo > hi at index {idx} ({float(lo[idx])!r} > {float(hi[idx])!r})")


def _pick(env: Mapping[str, Any], name: str, index: int | str | None) -> torch.Tensor:
    v = env[name]
    where = name
    if index is not None:
        try:
            v = v[index]
        except (TypeError, IndexError, KeyError):
            raise TypeError(f"{name} is {describe(v)}; it has no item {index!r}") from None
        where = f"{name}[{index!r}]"
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{where} is {describe(v)}, not a tensor")
    return v


# Envelope.device_range reduces first (amin, amax) on CPU tensors at least this large (see _reduced_dims)
REDUCE_INNER = 64  # values per channel and sample, for channel bounds [C, 1, ...]
REDUCE_ROWS = 1024  # rows, for feature bounds [F] on [rows, F]


def _row_size(t: torch.Tensor) -> int:
    """Values per batch row (metadata; also for an empty batch)."""
    n = 1
    for d in t.shape[1:]:
        n *= d
    return n


class _Bounded(Condition):
    """Shared parts: bounds kept on CPU (float64) for serialization, cached
    per (device, dtype) for checking."""

    def _setup(self, name: str, lo: Any, hi: Any, index: Any, what: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"Expected {what}(name) to be an argument name (an identifier string), got {name!r}")
        if index is not None and (isinstance(index, bool) or not isinstance(index, (int, str))):
            raise SpecError(f"Expected {what}(index) to be None, an int or a str, got {index!r}")
        self.lo = _bounds(lo, f"{what}(lo)")
        self.hi = _bounds(hi, f"{what}(hi)")
        _check_pair(self.lo, self.hi, f"{what}({name!r})")
        self.index = index
        self.reads = (name,)
        self._cache: dict[tuple[Any, Any], tuple[torch.Tensor, torch.Tensor]] = {}
        self._fits: dict[tuple[Any, ...], bool] = {}
        self._dims: dict[tuple[Any, ...], tuple[int, ...]] = {}  # Envelope._reduced_dims, per shape
        self._params = {"name": name, "index": index}

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the per-device and per-shape caches behind."""
        state = dict(self.__dict__)
        state["_cache"], state["_fits"], state["_dims"] = {}, {}, {}
        if "_label_cache" in state:
            state["_label_cache"] = {}
        return state

    def _on(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = t.dtype if t.is_floating_point() else torch.float32
        key = (t.device, dtype)
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = (self.lo.to(t.device, dtype), self.hi.to(t.device, dtype))
        return got

    def _tensor(self, env: Mapping[str, Any]) -> torch.Tensor:
        return _pick(env, self.reads[0], self.index)

    def ok(self, env: Mapping[str, Any]) -> bool:
        """The range form read on the host (one reduction), where there is one."""
        form = self.device_range(env)
        if form is None:
            return super().ok(env)
        if isinstance(form, bool):
            return form
        t, lo, hi = form
        mn, mx = torch.aminmax(t)
        return lo <= mn.item() and mx.item() <= hi  # NaN compares false

    @property
    def where(self) -> str:
        n = self.reads[0]
        return n if self.index is None else f"{n}[{self.index!r}]"

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["params"]["lo"] = self.lo.tolist()
        d["params"]["hi"] = self.hi.tolist()
        return d

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (
            self.reads == other.reads
            and self.index == other.index
            and self.why == other.why
            and torch.equal(self.lo, other.lo)
            and torch.equal(self.hi, other.hi)
        )

    __hash__ = object.__hash__


@register
class Envelope(_Bounded):
    name = "envelope"

    def __init__(self, name: str = "result", lo: Any = 0.0, hi: Any = 0.0, index: int | str | None = None):
        self._setup(name, lo, hi, index, "envelope")

    @functools.cached_property  # read on every checked call; the bounds never change
    def text(self) -> str:
        return f"envelope({self.where}, {self.granularity})"

    @property
    def granularity(self) -> str:
        s = list(self.lo.shape)
        if not s:
            return "one range"
        if len(s) > 1 and all(x == 1 for x in s[1:]):
            return f"{s[0]} channels"
        return f"{'x'.join(map(str, s))} features"

    def fits(self, t: torch.Tensor) -> bool:
        """Metadata: the bounds broadcast against one batch row of ``t``."""
        row = t.shape[1:]
        n = self.lo.ndim
        if n > len(row):
            return False
        return all(a == b or a == 1 for a, b in zip(self.lo.shape, row[len(row) - n :]))

    def _decided(self, t: torch.Tensor) -> bool | None:
        """What metadata alone decides: False when the bounds do not fit the
        rows (kept per shape), True for an empty batch, else None."""
        shape = t.shape
        fits = self._fits.get(shape)  # metadata, the same for every call of a shape
        if fits is None:
            fits = self._fits[shape] = self.fits(t)
            if len(self._fits) > 64:  # many shapes (varying lengths): start over
                self._fits = {shape: fits}
        if not fits:
            return False
        if t.numel() == 0:  # an empty batch holds (amax has nothing to reduce)
            return True
        return None

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        t = self._tensor(env)
        decided = self._decided(t)
        if decided is not None:
            return decided
        lo, hi = self._on(t)
        return torch.maximum(lo - t, t - hi).amax() <= 0

    def device_range(self, env: Mapping[str, Any]) -> tuple[torch.Tensor, float, float] | bool | None:
        """``clamp(t, lo, hi) - t``, all zeros exactly when every value lies
        inside (``x - y`` is 0 only when ``x == y``; NaN stays NaN, an
        infinity leaves finite bounds): two element-wise ops and, in the
        Monitor, one reduction, against five ops for ``device_ok``. On large
        CPU tensors of the layouts in ``_reduced_dims``: ``amin`` and ``amax``
        over the dims the bounds broadcast along first (two read-only passes),
        then ``max(lo - min, max - hi)``, all <= 0. Floating tensors only
        (integer ones take ``device_ok``)."""
        t = self._tensor(env)
        decided = self._decided(t)
        if decided is not None:
            return decided
        if not t.is_floating_point():
            return None
        if t.requires_grad:
            t = t.detach()
        lo, hi = self._on(t)
        dims = self._reduced_dims(t)
        if dims:
            mn, mx = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
            return torch.maximum(lo - mn, mx - hi), -math.inf, 0.0
        return clamp_range(t, lo, hi)

    def _reduced_dims(self, t: torch.Tensor) -> tuple[int, ...]:
        """The dims ``device_range`` reduces first, or () for ``clamp(t) - t``
        (metadata, kept per shape). Only where that was measured faster, on the
        CPU (docs/performance.md): channel bounds ``[C, 1, ...]`` with at least
        ``REDUCE_INNER`` values per channel and sample (clamping a large
        activation against broadcast bounds runs at about 1 ns a value there,
        5x the two reductions), and feature bounds ``[F]`` on at least
        ``REDUCE_ROWS`` rows. Elsewhere (small tensors, few values per
        channel, CUDA: not measured) the clamp form."""
        if not t.is_cpu:
            return ()
        cache = self._dims
        got = cache.get(t.shape)
        if got is None:
            got = ()
            lo = self.lo
            if t.ndim == 2 and lo.ndim == 1 and lo.shape[0] == t.shape[1] and t.shape[0] >= REDUCE_ROWS:
                got = (0,)
            elif t.ndim >= 3 and lo.ndim == t.ndim - 1 and lo.shape[0] == t.shape[1]:
                if all(n == 1 for n in lo.shape[1:]) and math.prod(t.shape[2:]) >= REDUCE_INNER:
                    got = (0, *range(2, t.ndim))
            if len(cache) > 64:  # many shapes: start over
                cache.clear()
            cache[t.shape] = got
        return got

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        t = self._tensor(env)
        if not self.fits(t) or t.ndim == 0:
            return None
        lo, hi = self._on(t)
        return torch.maximum(lo - t, t - hi).reshape(t.shape[0], _row_size(t)).amax(dim=1) <= 0

    def excursion(self, t: torch.Tensor) -> torch.Tensor:
        """Per-row score: the sum over elements of the distance outside
        ``[lo, hi]`` divided by the element's width ``hi - lo`` (floored at
        1e-6 of the largest width); NaN counts as +inf; 0 inside."""
        t = t.detach()
        lo, hi = self._on(t)
        x = t if t.is_floating_point() else t.to(lo.dtype)
        width = hi - lo
        width = width.clamp_min(float(width.max()) * 1e-6 if width.numel() else 0.0).clamp_min(1e-12)
        out = (torch.relu(lo - x) + torch.relu(x - hi)) / width
        out = torch.where(torch.isnan(x), torch.full_like(out, math.inf), out)
        return out.reshape(t.shape[0], _row_size(t)).sum(dim=1)

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        t = self._tensor(env).detach()
        if not self.fits(t):
            return {"expected": f"rows broadcasting with bounds of shape {list(self.lo.shape)}", "actual": describe(t)}
        lo, hi = self._on(t)
        ev = V.range_evidence(t, lo, hi)
        if ev.get("failing"):
            idx = ev["first_index"]
            blo, bhi = torch.broadcast_tensors(lo.expand_as(t), hi.expand_as(t))
            ev["first_bounds"] = (float(blo[idx]), float(bhi[idx]))
            rows = self.rows(env)
            if rows is not None:  # a 0-dim tensor has no rows
                ev["rows_outside"] = int((~rows).sum())
                ev["rows"] = int(rows.numel())
        return ev


def envelope(name: str, lo: Any, hi: Any, index: int | str | None = None) -> Condition:
    """Every value of ``name`` (or of its item ``index``) lies inside ``[lo, hi]``;
    ``lo``/``hi`` broadcast against one batch row ([F], [C, 1, 1], [])."""
    return Envelope(name, lo, hi, index)


@register
class InBoxes(_Bounded):
    name = "in_boxes"

    def __init__(self, name: str = "result", lo: Any = ((0.0,),), hi: Any = ((0.0,),), index: int | str | None = None):
        self._setup(name, lo, hi, index, "in_boxes")
        if self.lo.ndim != 2 or self.lo.shape[0] < 1:
            raise SpecError(
                f"in_boxes({name!r}): lo and hi must have shape [boxes, features], got {list(self.lo.shape)}"
            )

    @functools.cached_property  # read on every checked call; the bounds never change
    def text(self) -> str:
        return f"in_boxes({self.where}, {self.lo.shape[0]} boxes)"

    def _flat(self, t: torch.Tensor) -> torch.Tensor | None:
        if t.ndim == 0 or _row_size(t) != self.lo.shape[1]:
            return None
        return t.reshape(t.shape[0], 1, self.lo.shape[1])

    def _inside(self, t: torch.Tensor) -> torch.Tensor | None:
        x = self._flat(t)
        if x is None:
            return None
        lo, hi = self._on(t)
        return box_rows(x, lo, hi)

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        inside = self._inside(self._tensor(env))
        return False if inside is None else inside.all()

    def device_range(self, env: Mapping[str, Any]) -> tuple[torch.Tensor, float, float] | bool | None:
        """Each row's excess over its nearest box (``_plans.box_excess``), all <= 0."""
        t = self._tensor(env)
        x = self._flat(t)
        if x is None:
            return False
        if x.numel() == 0:
            return True if x.shape[0] == 0 else None  # no features: device_ok's form
        if t.requires_grad:
            x = x.detach()
        lo, hi = self._on(t)
        return box_excess(x, lo, hi), -math.inf, 0.0

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        return self._inside(self._tensor(env))

    def excursion(self, t: torch.Tensor) -> torch.Tensor:
        """Per-row score: distance (as in :meth:`Envelope.excursion`) to the nearest box."""
        t = t.detach()
        x = self._flat(t)
        lo, hi = self._on(t)
        if x is None:  # not rows of the boxes' width: outside every box (the check fails on them too)
            return torch.full(t.shape[:1], math.inf, dtype=lo.dtype, device=t.device)
        x = x if x.is_floating_point() else x.to(lo.dtype)
        width = (hi - lo).clamp_min(1e-12)
        d = ((torch.relu(lo - x) + torch.relu(x - hi)) / width).sum(dim=2)
        d = torch.where(torch.isnan(x).any(dim=2), torch.full_like(d, math.inf), d)
        return d.min(dim=1).values

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        t = self._tensor(env).detach()
        inside = self._inside(t)
        if inside is None:
            return {"expected": f"rows of {self.lo.shape[1]} values", "actual": describe(t)}
        bad = ~inside
        ev: dict[str, Any] = {"failing": int(bad.sum()), "of": int(inside.numel()), "boxes": int(self.lo.shape[0])}
        if ev["failing"]:
            row = int(bad.nonzero()[0, 0])
            ev["first_row"] = row
            ev["first_row_distance"] = float(self.excursion(t[row : row + 1])[0])
        return ev


def in_boxes(name: str, lo: Any, hi: Any, index: int | str | None = None) -> Condition:
    """Every batch row of ``name``, flattened, lies inside at least one of the
    boxes ``[lo[k], hi[k]]`` (``lo``/``hi`` of shape [boxes, features])."""
    return InBoxes(name, lo, hi, index)


@register
class InClassBoxes(InBoxes):
    """Each row of ``name`` lies inside a box of the class its ``scores`` row
    predicts (argmax): the per-class box monitor of Henzinger et al. (2020),
    checked where a module sees both its input features and its output scores."""

    name = "in_class_boxes"

    def __init__(
        self,
        name: str = "input",
        scores: str = "result",
        lo: Any = ((0.0,),),
        hi: Any = ((0.0,),),
        labels: Any = (0,),
        index: int | str | None = None,
    ):
        super().__init__(name, lo, hi, index)
        if not isinstance(scores, str) or not scores.isidentifier():
            raise SpecError(f"Expected in_class_boxes(scores) to be an argument name, got {scores!r}")
        labs = torch.as_tensor(labels, dtype=torch.int64) if not isinstance(labels, torch.Tensor) else labels.long()
        if labs.shape != (self.lo.shape[0],):
            raise SpecError(
                f"in_class_boxes({name!r}): {labs.numel()} labels for {self.lo.shape[0]} boxes; give one class per box"
            )
        self.labels = labs.cpu()
        self.reads = (name, scores)
        self._params = {"name": name, "scores": scores, "index": index}
        self._label_cache: dict[Any, torch.Tensor] = {}
        self._table = ClassTable(self.lo, self.hi, self.labels.tolist())

    @functools.cached_property  # read on every checked call; the bounds never change
    def text(self) -> str:
        return f"in_class_boxes({self.where}, {self.reads[1]}, {self.lo.shape[0]} boxes)"

    def _match(self, env: Mapping[str, Any], t: torch.Tensor) -> torch.Tensor | None:
        s = env[self.reads[1]]
        if not isinstance(s, torch.Tensor) or s.ndim != 2 or s.shape[0] != t.shape[0]:
            return None
        labels = self._label_cache.get(s.device)
        if labels is None:
            labels = self._label_cache[s.device] = self.labels.to(s.device)
        return labels.unsqueeze(0) == s.argmax(dim=1, keepdim=True)

    def _rows_and_scores(self, env: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(the tensor, its rows as ``[rows, 1, features]``, the scores), or
        None when their shapes do not fit the boxes (metadata: the check fails)."""
        t = self._tensor(env)
        x = self._flat(t)
        if x is None:
            return None
        s = env[self.reads[1]]
        if not isinstance(s, torch.Tensor) or s.ndim != 2 or s.shape[0] != t.shape[0]:
            return None
        return t, x, s

    def _inside_class(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        got = self._rows_and_scores(env)
        if got is None:
            return None
        t, x, s = got
        if t.is_floating_point() and s.device == t.device:
            return class_box_rows(x, s, self._table)
        # integer features (no +-inf padding in their dtype), or scores on another device (this raises)
        match = self._match(env, t)
        assert match is not None  # the scores were checked above
        lo, hi = self._on(t)
        return ((torch.maximum(lo - x, x - hi).amax(dim=2) <= 0) & match).any(dim=1)

    def in_domain(self, env: Mapping[str, Any]) -> bool:
        """Inside the input envelopes (``domain``) and every row inside some box,
        of any class: the condition claims which class such a row is predicted as."""
        if not super().in_domain(env):
            return False
        inside = self._inside(self._tensor(env))
        return inside is not None and bool(inside.all())

    def device_ok(self, env: Mapping[str, Any]) -> torch.Tensor | bool:
        inside = self._inside_class(env)
        return False if inside is None else inside.all()

    def device_range(self, env: Mapping[str, Any]) -> tuple[torch.Tensor, float, float] | bool | None:
        """Each row's excess over the nearest box of its predicted class, all <= 0."""
        got = self._rows_and_scores(env)
        if got is None:
            return False
        t, x, s = got
        if x.numel() == 0:
            return True if x.shape[0] == 0 else None
        if not (t.is_floating_point() and s.device == t.device):
            return None  # device_ok's general form
        if t.requires_grad:
            x, s = x.detach(), s.detach()
        return class_box_range(x, s, self._table)

    def rows(self, env: Mapping[str, Any]) -> torch.Tensor | None:
        return self._inside_class(env)

    def class_excursion(self, t: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Per-row distance (as in :meth:`InBoxes.excursion`) to the nearest box of the predicted class."""
        t = t.detach()
        x = self._flat(t)
        lo, hi = self._on(t)
        match = self._match({self.reads[1]: scores.detach()}, t) if x is not None else None
        if x is None or match is None:  # rows of another width, or scores that are not [rows, classes]
            return torch.full(t.shape[:1], math.inf, dtype=lo.dtype, device=t.device)
        width = (hi - lo).clamp_min(1e-12)
        d = ((torch.relu(lo - x) + torch.relu(x - hi)) / width).sum(dim=2)
        d = torch.where(torch.isnan(x).any(dim=2), torch.full_like(d, math.inf), d)
        d = torch.where(match, d, torch.full_like(d, math.inf))
        return d.min(dim=1).values

    def evidence(self, env: Mapping[str, Any]) -> dict[str, Any]:
        t = self._tensor(env).detach()
        inside = self._inside_class(env)
        if inside is None:
            return {
                "expected": f"rows of {self.lo.shape[1]} values and [rows, classes] scores",
                "actual": f"{describe(t)}, {describe(env[self.reads[1]])}",
            }
        bad = ~inside
        ev: dict[str, Any] = {"failing": int(bad.sum()), "of": int(inside.numel()), "boxes": int(self.lo.shape[0])}
        if ev["failing"]:
            row = int(bad.nonzero()[0, 0])
            ev["first_row"] = row
            ev["predicted_class"] = int(env[self.reads[1]][row].argmax())
        return ev

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["params"]["labels"] = self.labels.tolist()
        return d

    def __eq__(self, other: object) -> bool:
        eq = super().__eq__(other)
        return (
            eq
            if eq is NotImplemented
            else (
                eq
                and isinstance(other, InClassBoxes)  # it is: Condition.__eq__ compares conditions of one type
                and self.reads == other.reads
                and torch.equal(self.labels, other.labels)
            )
        )

    __hash__ = object.__hash__


def in_class_boxes(name: str, scores: str, lo: Any, hi: Any, labels: Any, index: int | str | None = None) -> Condition:
    """Every row of ``name`` (flattened) lies inside one of the boxes whose
    class (``labels[k]``) is the row's predicted class ``scores.argmax(1)``."""
    return InClassBoxes(name, scores, lo, hi, labels, index)
