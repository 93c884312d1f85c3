"""Contracts inferred from data: ``infer_contracts`` records, in one pass over
reference data, each module's input/output envelopes, shapes, dtypes and (for
classifiers) the label space; ``InferredContracts`` installs them as ordinary
contracts with ``guard`` so the runtime Monitor checks them device-side and
blames as for hand-written ones.

    inferred = infer_contracts(model, (x_train, y_train), margin=0.5)
    inferred.install()                 # guards; then use Monitor as usual
    with Monitor(model) as mon:
        model(x)
    inferred.refine((x_more, y_more))  # explicit widening; never automatic

An envelope on a tensor that flows from module A to module B is A's
postcondition; B's precondition would check the same tensor again, so by
default preconditions are installed only where a module's input was not
produced by another recorded module (the model's inputs, or values computed
in a container's forward): a bad model input is blamed on the input data, a
bad activation on the first module whose output left its envelope.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from modpact.contracts import disabled
from modpact.contracts.condition import Condition, Domain
from modpact.contracts.conditions import LabelsWithin
from modpact.contracts.guard import get_guard, guard, unguard
from modpact.contracts.source import user_site
from modpact.errors import SpecError
from modpact.interfaces.infer import interface_from_tensors
from modpact.interfaces.interface import Interface
from modpact.interfaces.jsonread import parse_json, read_text
from modpact.interfaces.labels import LabelSpace
from modpact.interfaces.serialize import rebuild
from modpact.interfaces.spec import TensorSpec

from ._boxes import build_boxes, grow_boxes
from ._inferred_json import read_document, to_dict
from ._recording import (
    GRANULARITIES,
    MAX_BOX_FEATURES,
    MODEL_INPUT,
    Granularity,
    Recorder,
    Stats,
    TensorSite,
    device_of,
    eval_mode,
    is_boundary,
    nest_paths,
    record,
    select_modules,
    state_batch_axes,
)
from .envelope import Envelope, InBoxes, InClassBoxes

__all__ = ["InferredContracts", "TensorEnvelope", "infer_contracts"]

#: Which inputs get preconditions: the model's boundary (inputs fed by the data) or every checked module
Preconditions = Literal["boundary", "all"]
#: Where boxes are kept: the input of the module that produces the model's output, or every checked tensor
BoxMode = Literal["head", "every"]
PRECONDITIONS: tuple[Preconditions, ...] = ("boundary", "all")
BOX_MODES: tuple[BoxMode, ...] = ("head", "every")
#: the party blamed for the model's inputs (the runtime's INPUT_DATA; inference and runtime are siblings)
INPUT_DATA = "the input data"
ROUNDOFF = 1e-4
#: how far (times the input envelope's width) a validation input may lie from a reference row and
#: still be in the domain of the module's inferred postconditions
DOMAIN_RADIUS = 0.01


@dataclass
class TensorEnvelope(TensorSite):
    """What was seen for one tensor of one module: the raw (un-widened)
    per-element/channel min and max, the rows seen, whether it is a module
    input that no other recorded module produced (``boundary``), whether it
    always was one of the model's own inputs (``model_input``), and the raw
    boxes (``[K, D]``, with the class of each box or -1) when clusters were asked,
    checked as a union (``box_mode="union"``) or against the predicted class
    (``"class"``, on the input of the module producing the model's scores)."""

    granularity: str
    lo: torch.Tensor
    hi: torch.Tensor
    rows: int
    boundary: bool = False
    model_input: bool = False
    box_lo: torch.Tensor | None = None
    box_hi: torch.Tensor | None = None
    box_labels: list[int] = field(default_factory=list)
    box_mode: str | None = None  # "union": rows inside any box; "class": inside a box of the predicted class
    #: reference rows of an input (not serialized): where the module's postconditions claim to hold
    sample: torch.Tensor | None = None

    @property
    def span(self) -> float:
        return float(self.hi.max() - self.lo.min()) if self.lo.numel() else 0.0


def widen(
    lo: torch.Tensor, hi: torch.Tensor, margin: float, min_scale: float, span: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[lo - margin*s - tol, hi + margin*s + tol]`` with
    ``s = max(hi - lo, min_scale * span)`` per element (``span``: the whole
    tensor's range) and ``tol = ROUNDOFF`` times the tensor's largest
    magnitude: the same rows give slightly different activations in batches
    of another size (float round-off), which must not count as leaving."""
    big = max(float(hi.abs().max()) if hi.numel() else 0.0, float(lo.abs().max()) if lo.numel() else 0.0)
    tol = ROUNDOFF * max(big, 1e-6)
    scale = (hi - lo).clamp_min(min_scale * span)
    return lo - margin * scale - tol, hi + margin * scale + tol


def _check_number(value: Any, what: str, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value < math.inf:
        raise SpecError(f"Expected {what} to be a number >= {lo}, got {value!r} (type={type(value).__name__})")
    return float(value)


def _check_clusters(clusters: Any) -> int | None:
    if clusters is None:
        return None
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 1:
        raise SpecError(f"Expected clusters to be None or a positive int (boxes per class), got {clusters!r}")
    return clusters


class InferredContracts:
    """Envelopes, interfaces and label space inferred from reference data.

    ``install(model)`` guards each recorded module (preconditions on boundary
    inputs, postconditions on outputs); ``uninstall()`` removes exactly what
    was installed; ``refine(more_data)`` widens the envelopes to cover more
    data and returns what changed; ``score(x)`` is a per-row excursion score
    (0 inside every envelope); ``to_json``/``from_json`` round-trip.
    """

    def __init__(
        self,
        envelopes: Sequence[TensorEnvelope],
        shapes: Mapping[str, list[dict]],
        *,
        margin: float,
        min_scale: float,
        clusters: int | None = None,
        granularity: Granularity = "auto",
        labels: LabelSpace | None = None,
        label_counts: Sequence[int] | None = None,
        output_module: str | None = None,
        history: Sequence[dict] = (),
        model: nn.Module | None = None,
        undescribed: Mapping[str, str] | None = None,
        indices: Mapping[str, Mapping[str, int]] | None = None,
        state_axes: Mapping[str, Mapping[str, int | None]] | None = None,
    ):
        self.margin = _check_number(margin, "margin")
        self.min_scale = _check_number(min_scale, "min_scale")
        self.clusters = _check_clusters(clusters)
        if granularity not in GRANULARITIES:
            raise SpecError(
                f"Expected granularity to be one of {', '.join(map(repr, GRANULARITIES))}, got {granularity!r}"
            )
        self.granularity = granularity
        self.envelopes = list(envelopes)
        self.shapes = {k: list(v) for k, v in shapes.items()}
        self.labels = labels
        self.label_counts = list(label_counts) if label_counts is not None else None
        self.output_module = output_module
        self.history = [dict(h) for h in history]
        self.undescribed = dict(undescribed or {})
        self.indices = {p: dict(v) for p, v in (indices or {}).items()}
        #: path -> state output leaf (an LSTM's ``result1[0]``) -> its batch axis (None: none)
        self.state_axes = {p: dict(v) for p, v in (state_axes or {}).items()}
        self._model = weakref.ref(model) if model is not None else None
        self._installed: list[tuple[Any, ...]] = []
        self._install_options: dict[str, Any] = {}
        self._installed_on: weakref.ref | None = None

    # ------------------------------------------------------------- views
    @property
    def modules(self) -> list[str]:
        """Recorded module paths, in first-call order."""
        return list(dict.fromkeys(e.module for e in self.envelopes)) + [
            p for p in self.shapes if p not in {e.module for e in self.envelopes}
        ]

    @property
    def installed(self) -> bool:
        return bool(self._installed)

    def interface(self, path: str) -> Interface:
        """The Interface of module ``path`` from the shapes and dtypes seen
        (dim 0 is the symbolic ``batch``; a dim whose size varied across the
        reference data is symbolic too; the integer input of an Embedding
        holds indices in ``[0, num_embeddings)``). Tuples of tensors inside a
        tuple output (an LSTM's ``(h, c)``) are a ``TupleSpec`` whose batch axis
        is dim 1 for torch's RNNs. A module whose outputs have other nested
        or opaque parts has none: SpecError with the reason (``undescribed``)."""
        if path not in self.shapes:
            raise SpecError(f"InferredContracts: no module {path!r} was recorded (recorded: {', '.join(self.shapes)})")
        if path in self.undescribed:
            raise SpecError(
                f"InferredContracts: no interface for {path or '<model>'!r}: {self.undescribed[path]} "
                "(an inferred interface describes tensors, and tuples or dicts of tensors)"
            )
        seen_in, seen_out = [], []
        for sig in self.shapes[path]:
            seen_in.append(
                {k: torch.empty(s, dtype=getattr(torch, d), device="meta") for k, (s, d) in sig["inputs"].items()}
            )
            seen_out.append(
                {k: torch.empty(s, dtype=getattr(torch, d), device="meta") for k, (s, d) in sig["outputs"].items()}
            )
        iface = interface_from_tensors(
            path or "<model>",
            seen_in,
            [nest_paths(o) for o in seen_out],
            batch_dim=True,
            batch_axes={**state_batch_axes(self.shapes[path]), **self.state_axes.get(path, {})},
            description="inferred by modpact.infer_contracts",
        )
        idx = {
            k: n
            for k, n in self.indices.get(path, {}).items()
            if k in iface.inputs and isinstance(iface.inputs[k], TensorSpec)
        }
        if not idx:
            return iface
        inputs = dict(iface.inputs)
        for name, n in idx.items():
            spec = inputs[name]
            assert isinstance(spec, TensorSpec)  # idx holds tensor inputs only
            d = spec.to_dict()
            d["indices"] = n
            inputs[name] = TensorSpec.from_dict(d)
        return Interface(iface.name, inputs, iface.outputs, description=iface.description)

    def bounds(self, e: TensorEnvelope) -> tuple[torch.Tensor, torch.Tensor]:
        """The widened bounds of one envelope (what is checked)."""
        return widen(e.lo, e.hi, self.margin, self.min_scale, e.span)

    def domain(self, e: TensorEnvelope) -> Domain:
        """Where the module of input envelope ``e`` was seen: within ``DOMAIN_RADIUS``
        times the envelope's width (per element or channel) of one of the kept
        reference rows. Contracts loaded from JSON keep no rows: an empty domain."""
        rows = e.sample if e.sample is not None else torch.empty((0,), dtype=torch.float32)
        return Domain(rows, DOMAIN_RADIUS * (e.hi - e.lo))

    def box_bounds(self, e: TensorEnvelope) -> tuple[torch.Tensor, torch.Tensor] | None:
        if e.box_lo is None or e.box_hi is None:  # set together
            return None
        return widen(e.box_lo, e.box_hi, self.margin, self.min_scale, e.span)

    def _checked(self, e: TensorEnvelope, preconditions: Preconditions) -> bool:
        return e.side == "output" or e.boundary or preconditions == "all"

    def conditions(
        self, preconditions: Preconditions = "boundary"
    ) -> dict[str, tuple[list[Condition], list[Condition]]]:
        """path -> (requires, ensures), built from the envelopes and the margin."""
        if preconditions not in PRECONDITIONS:
            raise SpecError(
                f"Expected preconditions to be one of {', '.join(map(repr, PRECONDITIONS))}, got {preconditions!r}"
            )
        out: dict[str, tuple[list[Condition], list[Condition]]] = {p: ([], []) for p in self.modules}
        site = self.history[0].get("at") if self.history else None
        # a module's postconditions claim only inputs like the reference inputs: near its reference rows
        domains: dict[str, dict[str, Domain]] = {}
        for e in self.envelopes:
            if e.side == "input" and e.index is None:
                domains.setdefault(e.module, {})[e.name] = self.domain(e)
        for e in self.envelopes:
            at = f"inferred by infer_contracts{f' at {site}' if site else ''}"
            why = f"inside the envelope of {e.rows} reference rows (margin {self.margin:g})"
            boxes = self.box_bounds(e)
            if boxes is not None and e.box_mode == "class":
                cb = InClassBoxes(e.name, "result", boxes[0], boxes[1], e.box_labels, e.index)
                cb.why = f"inside a box of the predicted class ({e.rows} reference rows, margin {self.margin:g})"
                cb.declared_at = at
                cb.domain = domains.get(e.module, {})
                out[e.module][1].append(cb)
            if not self._checked(e, preconditions):
                continue
            conds: list[Condition] = []
            lo, hi = self.bounds(e)
            conds.append(Envelope(e.name, lo, hi, e.index))
            if boxes is not None and e.box_mode == "union":
                conds.append(InBoxes(e.name, boxes[0], boxes[1], e.index))
            for c in conds:
                c.why = why
                c.declared_at = at
                if e.side == "output":
                    c.domain = domains.get(e.module, {})
            out[e.module][0 if e.side == "input" else 1].extend(conds)
        if self.labels is not None:
            target = self.output_module if self.output_module in out else None
            if target is not None:
                lw = LabelsWithin(self.labels, "result")
                lw.declared_at = f"inferred by infer_contracts{f' at {site}' if site else ''}"
                out[target][1].append(lw)
        return out

    # ----------------------------------------------------------- install
    def _resolve_model(self, model: nn.Module | None, what: str) -> nn.Module:
        if model is None:
            model = self._model() if self._model is not None else None
            if model is None:
                raise SpecError(
                    f"InferredContracts.{what}: no model; pass model=... (contracts loaded from JSON "
                    "or whose model was deleted do not hold one)"
                )
        if not isinstance(model, nn.Module):
            raise SpecError(f"InferredContracts.{what}(model=...): expected an nn.Module, got {type(model).__name__}")
        return model

    def install(
        self, model: nn.Module | None = None, *, preconditions: Preconditions = "boundary", interfaces: bool = True
    ) -> InferredContracts:
        """Guard each recorded module of ``model`` (default: the model the
        contracts were inferred on). A module that already has a guard keeps
        it and gets the inferred conditions added. Install before entering a
        Monitor: the Monitor finds guards when it starts."""
        if self._installed:
            raise SpecError("InferredContracts.install: already installed; call uninstall() first")
        model = self._resolve_model(model, "install")
        conds = self.conditions(preconditions)
        mods = dict(model.named_modules())
        missing = [p for p in conds if p not in mods]
        if missing:
            raise SpecError(
                f"InferredContracts.install: {type(model).__name__} has no submodule(s) "
                f"{', '.join(map(repr, missing))} recorded when the contracts were inferred"
            )
        done: list[tuple[Any, ...]] = []
        for path, (req, ens) in conds.items():
            m = mods[path]
            g = get_guard(m)
            if g is None:
                described = path in self.shapes and path not in self.undescribed
                iface = self.interface(path) if interfaces and described else None
                # a model input is blamed on the input data even where the Monitor
                # has no dataflow (torch.compile) and in eager messages
                producer = {
                    e.name: INPUT_DATA
                    for e in self.envelopes
                    if e.module == path and e.side == "input" and e.model_input
                } or None
                guard(
                    m, interface=iface, requires=req, ensures=ens, name=path or type(model).__name__, producer=producer
                )
                done.append(("new", m, get_guard(m)))
            else:
                g.add(req, ens)
                done.append(("added", m, g, tuple(req), tuple(ens)))
        self._installed = done
        self._installed_on = weakref.ref(model)
        self._install_options = {"preconditions": preconditions, "interfaces": interfaces}
        return self

    def uninstall(self) -> InferredContracts:
        """Remove what ``install`` attached (other guards and conditions stay)."""
        for entry in self._installed:
            m = entry[1]
            if entry[0] == "new":
                if get_guard(m) is entry[2]:
                    unguard(m)
            else:
                g, req, ens = entry[2], entry[3], entry[4]
                g.requires = tuple(c for c in g.requires if not any(c is r for r in req))
                g.ensures = tuple(c for c in g.ensures if not any(c is r for r in ens))
                g._prepare()
        self._installed = []
        return self

    # ------------------------------------------------------------ refine
    def refine(self, more_data: Any, model: nn.Module | None = None, *, batch_size: int = 256) -> dict[str, Any]:
        """Widen the envelopes to cover ``more_data`` (the only way bounds
        change). Returns what changed: rows seen, per envelope the number of
        bounds widened, boxes widened, labels newly seen. Installed guards are
        re-installed with the new bounds."""
        model = self._resolve_model(model, "refine")
        run = record(
            model,
            self.modules,
            more_data,
            self.granularity,
            keep_rows=self.clusters is not None,
            max_rows=None,
            batch_size=batch_size,
            known={e.key: e.granularity for e in self.envelopes},
        )
        by_key = {e.key: e for e in self.envelopes}
        seen: list[tuple[TensorEnvelope, Stats, torch.Tensor, torch.Tensor]] = []
        for key, st in run.stats.items():  # check everything before changing anything
            if st.lo is None or st.hi is None:  # only empty batches reached this tensor (both set by its first row)
                continue
            e = by_key.get(key)
            if e is None:
                raise SpecError(
                    f"InferredContracts.refine: {st.label} was not seen when the contracts were "
                    "inferred; infer them again to add tensors"
                )
            if st.lo.shape != e.lo.shape:
                raise SpecError(
                    f"InferredContracts.refine: {st.label} has envelope shape {list(st.lo.shape)}, "
                    f"inferred {list(e.lo.shape)}"
                )
            seen.append((e, st, st.lo, st.hi))
        if self.label_counts is not None and run.label_counts and len(run.label_counts) > len(self.label_counts):
            raise SpecError(
                f"InferredContracts.refine: label {len(run.label_counts) - 1} is outside the label space "
                f"of {len(self.label_counts)} labels"
            )
        widened: dict[str, int] = {}
        boxes_widened = 0
        for e, st, lo, hi in seen:
            n = int((lo < e.lo).sum() + (hi > e.hi).sum())
            if n:
                widened[e.label] = n
            e.lo, e.hi = torch.minimum(e.lo, lo), torch.maximum(e.hi, hi)
            e.rows += st.rows
            e.boundary = e.boundary or is_boundary(st)
            e.model_input = e.model_input and st.sources == {MODEL_INPUT}
            if e.box_lo is not None and st.kept:
                boxes_widened += grow_boxes(e, st)
        for path, sigs in run.shapes.items():
            known = self.shapes.setdefault(path, [])
            known.extend(s for s in sigs if s not in known)
        new_labels: list[int] = []
        if self.label_counts is not None and run.label_counts:
            for i, c in enumerate(run.label_counts):
                if c and not self.label_counts[i]:
                    new_labels.append(i)
                self.label_counts[i] += c
        change = {
            "event": "refine",
            "rows": run.rows,
            "batches": run.batches,
            "widened": widened,
            "boxes_widened": boxes_widened,
            "new_labels": new_labels,
            "at": user_site(2),
        }
        self.history.append(change)
        if self._installed:
            target = self._installed_on() if self._installed_on is not None else None
            opts = dict(self._install_options)
            self.uninstall()
            if target is not None:
                self.install(target, **opts)
        return change

    # ------------------------------------------------------------- score
    def score(
        self,
        x: torch.Tensor,
        model: nn.Module | None = None,
        *,
        preconditions: Preconditions = "boundary",
        per_module: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Per-row excursion score of the inputs ``x`` (slow path, for
        evaluation): the sum, over the envelopes that ``install`` checks, of
        :meth:`Envelope.excursion` (and the distance to the nearest box when
        boxes were inferred). 0 means every check holds for that row; > 0 means
        the row left some envelope. ``per_module`` gives path -> scores."""
        model = self._resolve_model(model, "score")
        if not isinstance(x, torch.Tensor) or x.ndim < 1:
            raise SpecError(f"InferredContracts.score(x=...): expected a batch tensor, got {type(x).__name__}")
        conds = self.conditions(preconditions)
        by: dict[tuple, list[Envelope | InBoxes]] = {}
        by_class: dict[str, list[InClassBoxes]] = {}
        for path, (req, ens) in conds.items():
            for side, cs in (("input", req), ("output", ens)):
                for c in cs:
                    if isinstance(c, InClassBoxes):
                        by_class.setdefault(path, []).append(c)
                    elif isinstance(c, (Envelope, InBoxes)):
                        by.setdefault((path, side, c.reads[0], c.index), []).append(c)
        n = x.shape[0]
        totals: dict[str, torch.Tensor] = {p: torch.zeros(n, dtype=torch.float64) for p in conds}
        last_inputs: dict[tuple[str, str], torch.Tensor] = {}

        def on_tensor(path, side, name, index, t, sources):
            for c in by.get((path, side, name, index), ()):
                if isinstance(c, Envelope) and not c.fits(t):
                    totals[path] += float("inf")
                else:
                    totals[path] += c.excursion(t).to("cpu", torch.float64)
            if side == "input":
                last_inputs[(path, name)] = t
            elif index is None:
                for c in by_class.get(path, ()):
                    feats = last_inputs.get((path, c.reads[0]))
                    if feats is not None:
                        totals[path] += c.class_excursion(feats, t).to("cpu", torch.float64)

        with eval_mode(model), torch.no_grad(), disabled(), Recorder(model, list(conds), on_tensor):
            model(x.to(device_of(model)))
        if per_module:
            return totals
        return torch.stack(list(totals.values())).sum(dim=0) if totals else torch.zeros(n, dtype=torch.float64)

    # ---------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> InferredContracts:
        """Build from ``to_dict()``'s form: ``SpecError`` naming the field for a
        malformed document, ``FormatVersionError`` for another version."""
        doc = read_document(data)
        try:
            ic = rebuild(
                "InferredContracts",
                lambda: cls([TensorEnvelope(**e) for e in doc.pop("envelopes")], doc.pop("shapes"), **doc),
            )
        except SpecError as e:  # a constructor's check: say where it was read
            text = str(e)
            raise SpecError(
                text if text.startswith("InferredContracts") else f"InferredContracts.from_dict: {text}"
            ) from None
        # every condition and interface it would install can be built (what summary() and install() build)
        try:
            rebuild("InferredContracts", lambda: ic.conditions("all"))
        except SpecError as e:
            raise SpecError(f"InferredContracts.from_dict: the envelopes make no valid condition: {e}") from None
        for path in ic.shapes:
            if path in ic.undescribed:
                continue
            try:
                rebuild("InferredContracts", functools.partial(ic.interface, path))
            except SpecError as e:
                raise SpecError(f"InferredContracts.from_dict: shapes[{path!r}] make no interface: {e}") from None
        return ic

    @classmethod
    def from_json(cls, text: str) -> InferredContracts:
        return cls.from_dict(parse_json(text, "InferredContracts.from_json", check=False))  # from_dict checks it

    @classmethod
    def load(cls, path: Any) -> InferredContracts:
        """``from_json`` of a file: ``LoadError`` when it cannot be read,
        ``SpecError`` naming the file and the problem when its content is not valid."""
        text = read_text(path, "inferred contracts")
        try:
            return cls.from_json(text)
        except SpecError as e:  # FormatVersionError stays one
            raise type(e)(f"{path}: {e}") from None

    # ---------------------------------------------------------- summary
    def summary(self) -> str:
        rows = self.history[0].get("rows", 0) if self.history else 0
        refines = sum(1 for h in self.history if h.get("event") == "refine")
        head = (
            f"InferredContracts: {len(self.modules)} modules, {len(self.envelopes)} envelopes, "
            f"margin={self.margin:g}, min_scale={self.min_scale:g}, from {rows} reference rows"
            f"{f', {refines} refinement(s)' if refines else ''}"
        )
        lines = [head]
        if self.labels is not None:
            lines.append(
                f"  labels: {len(self.labels)} ({', '.join(self.labels.labels[:10])}"
                f"{', ...' if len(self.labels) > 10 else ''}) on {self.output_module or '<not installed>'}"
            )
        table = [("module", "tensor", "checked as", "granularity", "min..max", "boxes")]
        for e in self.envelopes:
            lo, hi = self.bounds(e)
            where = e.name if e.index is None else f"{e.name}[{e.index!r}]"
            as_ = "postcondition" if e.side == "output" else ("precondition" if e.boundary else "(producer's post)")
            gran = Envelope(e.name, lo, hi, e.index).granularity
            boxes = (
                "-"
                if e.box_lo is None
                else f"{int(e.box_lo.shape[0])}{' (of the predicted class)' if e.box_mode == 'class' else ''}"
            )
            table.append(
                (e.module or "<model>", where, as_, gran, f"[{float(lo.min()):.3g}, {float(hi.max()):.3g}]", boxes)
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        for path in self.shapes:
            if path in self.undescribed:
                lines.append(f"  {path or '<model>'}: no interface ({self.undescribed[path]})")
                continue
            iface = self.interface(path)
            ins = ", ".join(f"{k}: {v}" for k, v in iface.inputs.items())
            outs = ", ".join(f"{k}: {v}" for k, v in iface.outputs.items())
            lines.append(f"  {path or '<model>'}: ({ins}) -> ({outs})")
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        return (
            f"InferredContracts(modules={len(self.modules)}, envelopes={len(self.envelopes)}, "
            f"margin={self.margin:g}, installed={self.installed})"
        )


def infer_contracts(
    model: nn.Module,
    data: Any,
    modules: Iterable[str] | None = None,
    *,
    margin: float = 0.5,
    min_scale: float = 0.2,
    clusters: int | None = None,
    boxes: BoxMode = "head",
    granularity: Granularity = "auto",
    labels: LabelSpace | Sequence[str] | None = None,
    batch_size: int = 256,
    max_rows: int = 20_000,
    seed: int = 0,
) -> InferredContracts:
    """Run ``model`` once over reference ``data`` (eval mode, no grad) and
    record, for each module in ``modules`` (paths; default every leaf):

    * per-element (2-D tensors) or per-channel (dim 1 of >=3-D tensors) min and
      max of every floating input and output (``granularity``: "auto",
      "element", "channel", "last" or "tensor"), checked with a ``margin``:
      each bound moves out by ``margin * max(hi - lo, min_scale * span)``,
      ``span`` being the tensor's overall range;
    * with ``clusters=k``: k k-means boxes per class of flattened rows (at
      most ``max_rows`` rows kept per tensor), widened the same way.
      ``boxes="head"``: boxes of the input of the module producing the model's
      scores, checked against the predicted class (needs labels);
      ``boxes="every"``: boxes of every checked tensor (per class when labeled,
      else k overall), a row passing when inside any box;
    * the shapes and dtypes seen (an Interface per module, batch dim symbolic);
    * for classifiers (``data`` yields (inputs, labels), or ``labels`` is
      given) the label space of the model's output.

    ``data`` (:mod:`modpact.interfaces.batches`): a tensor or a dict batch
    (passed as keywords, e.g. ``{"input_ids": ..., "attention_mask": ...}``),
    split into ``batch_size`` rows; an ``(inputs, labels)`` pair, labels an
    integer tensor or a list of ints; or an iterable of batches (a DataLoader,
    a list). With granularity "auto", a kept dim that varies across the data
    (a sequence length) makes the envelope coarser instead of failing, and
    the interfaces make it symbolic.
    """
    if not isinstance(model, nn.Module):
        raise SpecError(f"infer_contracts(model=...): expected an nn.Module, got {type(model).__name__}")
    _check_number(margin, "margin")
    _check_number(min_scale, "min_scale")
    clusters = _check_clusters(clusters)
    if boxes not in BOX_MODES:
        raise SpecError(f"Expected boxes to be one of {', '.join(map(repr, BOX_MODES))}, got {boxes!r}")
    if granularity not in GRANULARITIES:
        raise SpecError(f"Expected granularity to be one of {', '.join(map(repr, GRANULARITIES))}, got {granularity!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise SpecError(f"Expected max_rows to be a positive int, got {max_rows!r}")
    space = None
    if labels is not None:
        space = (
            labels
            if isinstance(labels, LabelSpace)
            else LabelSpace("labels", list(labels))
            if isinstance(labels, (list, tuple))
            else None
        )
        if space is None:
            raise SpecError(f"Expected labels to be a LabelSpace or a list of label names, got {labels!r}")
    paths = select_modules(model, modules)
    run = record(
        model, paths, data, granularity, keep_rows=clusters is not None, max_rows=max_rows, batch_size=batch_size
    )
    envelopes = []
    for st in run.stats.values():
        if st.lo is None or st.hi is None:  # only empty batches reached this tensor (both set by its first row)
            continue
        e = TensorEnvelope(
            st.module,
            st.side,
            st.name,
            st.index,
            st.granularity,
            st.lo,
            st.hi,
            st.rows,
            boundary=st.side == "input" and is_boundary(st),
            model_input=st.side == "input" and st.sources == {MODEL_INPUT},
            sample=torch.cat(st.sample) if st.sample else None,
        )
        head = e.side == "input" and e.module == run.output_module
        wanted = head if boxes == "head" else (e.side == "output" or e.boundary)
        if clusters is not None and wanted:
            got = build_boxes(st, clusters, seed)
            if got is not None:
                e.box_lo, e.box_hi, e.box_labels = got
                e.box_mode = "class" if boxes == "head" else "union"
        envelopes.append(e)
    if clusters is not None and boxes == "head":
        if run.output_module is None or run.out_width is None:
            raise SpecError(
                "infer_contracts(clusters=..., boxes='head'): the model's output is not a [rows, classes] "
                "score tensor produced by a recorded module; use boxes='every'"
            )
        if not any(e.box_mode == "class" for e in envelopes):
            raise SpecError(
                "infer_contracts(clusters=..., boxes='head'): no box could be built on the input of "
                f"{run.output_module!r} (more than {MAX_BOX_FEATURES} values per row?)"
            )
        if any(e.box_mode == "class" and -1 in e.box_labels for e in envelopes):
            raise SpecError(
                "infer_contracts(clusters=..., boxes='head') needs labels: give data as (inputs, labels) "
                "or use boxes='every'"
            )
    counts = run.label_counts
    if space is None and counts is not None:
        n = run.out_width if run.out_width is not None else len(counts)
        space = LabelSpace("labels", [str(i) for i in range(max(n, len(counts)))])
    if space is not None:
        if run.out_width is not None and run.out_width != len(space):
            raise SpecError(
                f"infer_contracts: the model outputs {run.out_width} scores per row but the label space "
                f"has {len(space)} labels"
            )
        if counts is not None and len(counts) > len(space):
            raise SpecError(
                f"infer_contracts: label {len(counts) - 1} seen in the data is outside the label space "
                f"of {len(space)} labels"
            )
        counts = (counts or []) + [0] * (len(space) - len(counts or []))
    history = [{"event": "infer", "rows": run.rows, "batches": run.batches, "at": user_site(2)}]
    return InferredContracts(
        envelopes,
        run.shapes,
        margin=margin,
        min_scale=min_scale,
        clusters=clusters,
        granularity=granularity,
        labels=space,
        label_counts=counts,
        output_module=run.output_module,
        history=history,
        model=model,
        undescribed=run.undescribed,
        indices=run.indices,
        state_axes=run.state_axes,
    )
