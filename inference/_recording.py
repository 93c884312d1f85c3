"""One pass over reference data with forward hooks: per-module envelopes
(running min/max at a granularity), shapes and dtypes seen, dataflow between
the recorded modules, the labels seen, and (for box envelopes) kept rows."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from modpact.contracts import disabled
from modpact.contracts.binding import Binder
from modpact.errors import SpecError
from modpact.interfaces.batches import read_batches
from modpact.interfaces.summary import describe
from modpact.interfaces.tree import named_tensors

__all__ = [
    "Granularity",
    "GRANULARITIES",
    "Stats",
    "Recorder",
    "select_modules",
    "resolve_granularity",
    "reduce",
    "record",
    "Run",
    "eval_mode",
    "device_of",
    "is_boundary",
    "nest_paths",
    "state_batch_axes",
]

#: How an envelope's bounds are kept: per element, per channel, per last dim, one for the tensor, or "auto"
Granularity = Literal["auto", "element", "channel", "last", "tensor"]
GRANULARITIES: tuple[Granularity, ...] = ("auto", "element", "channel", "last", "tensor")
MODEL_INPUT = "<input>"
MAX_BOX_FEATURES = 4096  # rows wider than this are not kept for boxes
DOMAIN_ROWS = 256  # reference input rows kept per module input: the domain its postconditions claim
COMPUTED = "<computed>"


def resolve_granularity(granularity: str, ndim: int) -> str:
    """The concrete granularity for a tensor of rank ``ndim`` (batch dim included)."""
    if ndim <= 1:
        return "tensor"
    if granularity == "auto":
        return "element" if ndim == 2 else "channel"
    if granularity in ("channel", "last") and ndim == 2:
        return "element"
    return granularity


def reduce(t: torch.Tensor, gran: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) over the batch (and the reduced dims), shaped to broadcast against one row."""
    if gran == "tensor" or t.ndim <= 1:
        dims: tuple[int, ...] = tuple(range(t.ndim))
        shape: tuple[int, ...] = ()
    elif gran == "element":
        dims, shape = (0,), tuple(t.shape[1:])
    elif gran == "channel":
        dims = (0,) + tuple(range(2, t.ndim))
        shape = (t.shape[1],) + (1,) * (t.ndim - 2)
    elif gran == "last":
        dims, shape = tuple(range(t.ndim - 1)), (t.shape[-1],)
    else:
        raise SpecError(f"unknown granularity {gran!r}; expected one of {', '.join(GRANULARITIES)}")
    lo = t.amin(dim=dims).reshape(shape) if dims else t
    hi = t.amax(dim=dims).reshape(shape) if dims else t
    return lo, hi


@dataclass
class TensorSite:
    """Which tensor of which module: the key and label shared by the running
    statistics and the inferred envelope."""

    module: str
    side: str  # "input" | "output"
    name: str  # argument name, or "result"
    index: int | str | None

    @property
    def key(self) -> tuple[str, str, str, Any]:
        return (self.module, self.side, self.name, self.index)

    @property
    def label(self) -> str:
        where = self.name if self.index is None else f"{self.name}[{self.index!r}]"
        return f"{self.module or '<model>'} {self.side} {where}"


@dataclass
class Stats(TensorSite):
    """Running envelope of one tensor of one module."""

    granularity: str
    lo: torch.Tensor | None = None  # float64 on CPU
    hi: torch.Tensor | None = None
    rows: int = 0
    sources: set[str] = field(default_factory=set)  # producers of an input
    kept: list[torch.Tensor] = field(default_factory=list)  # flattened rows (boxes)
    kept_labels: list[torch.Tensor | None] = field(default_factory=list)  # None: the batch had no labels
    #: with granularity "auto": coarser granularities kept alongside, used when a dim the
    #: first one keeps varies across the data (a sequence length at dim 1: "channel" -> "last")
    fallbacks: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=dict)
    #: up to DOMAIN_ROWS reference rows of an input (the first row shape seen), for the domain
    sample: list[torch.Tensor] = field(default_factory=list)

    def keep_sample(self, t: torch.Tensor) -> None:
        have = sum(int(x.shape[0]) for x in self.sample)
        if t.ndim < 1 or t.shape[0] == 0 or have >= DOMAIN_ROWS or t[0].numel() > MAX_BOX_FEATURES:
            return
        if self.sample and self.sample[0].shape[1:] != t.shape[1:]:
            return
        self.sample.append(t.detach()[: DOMAIN_ROWS - have].to("cpu").clone())

    def add(self, t: torch.Tensor) -> None:
        x = t.detach()
        if x.ndim and x.shape[0] == 0:  # an empty batch adds nothing
            return
        if not bool(torch.isfinite(x).all()):
            raise SpecError(
                f"infer_contracts: the reference data gave non-finite values in {self.label} "
                f"({describe(x)}); envelopes need finite reference activations"
            )
        lo, hi = self._reduce(x, self.granularity)
        for gran, seen in list(self.fallbacks.items()):
            flo, fhi = self._reduce(x, gran)
            if seen is not None and seen[0].shape != flo.shape:
                del self.fallbacks[gran]
            else:
                self.fallbacks[gran] = (flo, fhi) if seen is None else _merge(seen, (flo, fhi))
        if self.lo is None:
            self.lo, self.hi = lo, hi
        elif lo.shape != self.lo.shape:
            if not self.fallbacks:
                raise SpecError(
                    f"infer_contracts: {self.label} had envelope shape {list(self.lo.shape)} and then "
                    f"{list(lo.shape)} ({describe(x)}) at granularity {self.granularity!r}; "
                    "use granularity='last' or 'tensor' for tensors whose non-batch dims vary"
                )
            # a dim the envelope kept varies: the coarser envelope, over every batch so far
            self.granularity = next(iter(self.fallbacks))
            self.lo, self.hi = self.fallbacks.pop(self.granularity)  # type: ignore[misc]  # set above
        else:
            assert self.hi is not None  # set with lo
            self.lo, self.hi = _merge((self.lo, self.hi), (lo, hi))
        self.rows += int(x.shape[0]) if x.ndim else 1

    @staticmethod
    def _reduce(x: torch.Tensor, gran: str) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = reduce(x, gran)
        return lo.to("cpu", torch.float64), hi.to("cpu", torch.float64)


def _merge(
    a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.minimum(a[0], b[0]), torch.maximum(a[1], b[1])


def new_stats(site: tuple[str, str, str, Any], granularity: str, ndim: int) -> Stats:
    """Running statistics for a tensor of rank ``ndim``; in "auto", with the
    coarser granularities to fall back on if a kept dim varies."""
    gran = resolve_granularity(granularity, ndim)
    st = Stats(*site, granularity=gran)
    if granularity == "auto":
        order = {"channel": ["last", "tensor"], "element": ["tensor"]}.get(gran, [])
        st.fallbacks = {g: None for g in order}
    return st


def _names(module: nn.Module) -> Binder | None:
    try:
        return Binder(inspect.signature(module.forward))
    except (TypeError, ValueError):
        return None


def select_modules(model: nn.Module, modules: Iterable[str] | None) -> list[str]:
    """Paths to record: the given ones (checked), or every leaf module."""
    mods = dict(model.named_modules())
    if modules is None:
        paths = [p for p, m in mods.items() if p and not any(True for _ in m.children())]
        return paths or [""]
    if isinstance(modules, str):
        raise SpecError(f"infer_contracts(modules={modules!r}): expected a list of module paths, not a string")
    out = []
    for p in modules:
        if not isinstance(p, str) or p not in mods:
            names = [q for q in mods if q]
            close = [q for q in names if isinstance(p, str) and p and (q.endswith(p) or p in q)][:5]
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"submodules: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}"
            )
            raise SpecError(f"infer_contracts: {type(model).__name__} has no submodule {p!r} ({hint})")
        if p not in out:
            out.append(p)
    if not out:
        raise SpecError("infer_contracts(modules=[]): give at least one module path (or None for every leaf)")
    return out


def _class_labels(y: torch.Tensor | None) -> torch.Tensor | None:
    """Per-row class labels (a 1-D integer tensor) or None: per-token labels
    and regression targets give no label space."""
    if y is None or y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        return None
    return y


class Recorder:
    """Forward hooks that feed a callback with (path, side, name, index, tensor)
    for every floating tensor going into or out of the selected modules."""

    def __init__(
        self,
        model: nn.Module,
        paths: list[str],
        on_tensor: Callable[[str, str, str, Any, torch.Tensor, set[str]], None],
    ):
        self.model = model
        self.paths = paths
        self.on_tensor = on_tensor
        self.produced: dict[int, tuple[torch.Tensor, str]] = {}
        self.output_module: str | None = None
        self.calls: dict[str, list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]] = {}
        #: path -> why its outputs cannot be described by an interface of tensors (nested or opaque parts)
        self.undescribed: dict[str, str] = {}
        #: path -> input name -> n: integer inputs that index an Embedding's n rows
        self.indices: dict[str, dict[str, int]] = {}
        #: path -> state leaf (``result1[0]``) -> its batch axis, for torch's RNNs (LSTM, GRU, RNN)
        self.state_axes: dict[str, dict[str, int | None]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> Recorder:
        mods = dict(self.model.named_modules())
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre, with_kwargs=True, prepend=True))
        for p in self.paths:
            self._handles.append(mods[p].register_forward_hook(self._make(p, _names(mods[p])), with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._root_post, with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.produced.clear()

    def _root_pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.produced = {}
        for t in _flat_tensors((args, kwargs)):
            self.produced[id(t)] = (t, MODEL_INPUT)

    def _root_post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        output = _scores(output, any_shape=True)
        if output is not None:
            got = self.produced.get(id(output))
            self.output_module = got[1] if got is not None and got[0] is output and got[1] != MODEL_INPUT else None

    def _make(self, path: str, binder: Binder | None):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if binder is not None:
                try:
                    env = binder.bind(args, kwargs)
                except TypeError:
                    env = {f"x{i}": a for i, a in enumerate(args)}
            else:
                env = {f"x{i}": a for i, a in enumerate(args)}
            meta_in: dict[str, torch.Tensor] = {}
            for name, v in env.items():
                if isinstance(v, torch.Tensor):
                    meta_in[name] = torch.empty_like(v, device="meta")
                    if v.is_floating_point() and v.ndim >= 1:
                        got = self.produced.get(id(v))
                        src = got[1] if got is not None and got[0] is v else COMPUTED
                        self.on_tensor(path, "input", name, None, v, {src})
            meta_out: dict[str, torch.Tensor] = {}
            for index, t in _outputs(output):
                key = "result" if index is None else (index if isinstance(index, str) else f"result{index}")
                meta_out[key] = torch.empty_like(t, device="meta")
                if t.is_floating_point() and t.ndim >= 1:
                    self.on_tensor(path, "output", "result", index, t, set())
                self.produced[id(t)] = (t, path)
            for key, t in _state_leaves(output):  # an RNN's (h, c): shapes only, no envelope
                meta_out[key] = torch.empty_like(t, device="meta")
                if isinstance(module, nn.RNNBase):  # (layers * directions, batch, hidden), or no batch
                    self.state_axes.setdefault(path, {})[key] = 1 if t.dim() == 3 else None
            self.calls.setdefault(path, []).append((meta_in, meta_out))
            why = _undescribed(output)
            if why is not None and path not in self.undescribed:
                self.undescribed[path] = why
            if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                ints = [k for k, t in meta_in.items() if not (t.is_floating_point() or t.is_complex())]
                if ints:
                    self.indices[path] = {ints[0]: int(module.num_embeddings)}

        return hook


def _scores(output: Any, any_shape: bool = False) -> torch.Tensor | None:
    """The model's scores: its output tensor, or the ``logits`` of a mapping
    (a Hugging Face ModelOutput); a [rows, classes] floating tensor unless ``any_shape``."""
    t = output.get("logits") if isinstance(output, Mapping) else output
    if not isinstance(t, torch.Tensor):
        return None
    if any_shape or (t.is_floating_point() and t.ndim == 2):
        return t
    return None


def _outputs(output: Any) -> list[tuple[int | str | None, torch.Tensor]]:
    if isinstance(output, torch.Tensor):
        return [(None, output)]
    if isinstance(output, (tuple, list)):
        return [(i, t) for i, t in enumerate(output) if isinstance(t, torch.Tensor)]
    if isinstance(output, dict):
        return [(str(k), t) for k, t in output.items() if isinstance(t, torch.Tensor)]
    return []


def _tensor_tuple(v: Any) -> bool:
    """A tuple of tensors or of such tuples, to any depth (an LSTM's ``(h, c)``)."""
    return type(v) is tuple and all(isinstance(x, torch.Tensor) or _tensor_tuple(x) for x in v)


def _state_leaves(output: Any) -> list[tuple[str, torch.Tensor]]:
    """The tensors inside the tuple items of a tuple or list output, named by path
    (``result1[0]``, ``result1[1]``): what ``InferredContracts.interface`` nests again."""
    if not isinstance(output, (tuple, list)):
        return []
    out: list[tuple[str, torch.Tensor]] = []
    for i, v in enumerate(output):
        if _tensor_tuple(v):
            out += named_tensors(v, f"result{i}")
    return out


_PATH = re.compile(r"^(\w+)((?:\[\d+\])+)$")


def nest_paths(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded outputs with their state leaves nested again: ``{"result1[0]": h,
    "result1[1]": c}`` becomes ``{"result1": (h, c)}`` (tuples, to any depth)."""
    out: dict[str, Any] = {}
    for key, t in flat.items():
        m = _PATH.match(key)
        if m is None:
            out[key] = t
            continue
        idx = [int(i) for i in re.findall(r"\d+", m.group(2))]
        node = out.setdefault(m.group(1), {})
        for i in idx[:-1]:
            node = node.setdefault(i, {})
        node[idx[-1]] = t

    def tup(v: Any) -> Any:
        return tuple(tup(v[i]) for i in sorted(v)) if isinstance(v, dict) else v

    return {k: tup(v) for k, v in out.items()}


def state_batch_axes(sigs: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """The batch axis of each state leaf (``result1[0]``) of a module other than torch's RNNs
    (whose axis is recorded): the one axis whose size equals the batch (dim 0 of the first
    input) in every recorded call, else None: no axis is named ``batch`` there."""
    axes: dict[str, set[int]] = {}
    for sig in sigs:
        ins = [shape for shape, _ in sig["inputs"].values() if len(shape)]
        for key, (shape, _) in sig["outputs"].items():
            if _PATH.match(key) is None:
                continue
            fit = {i for i, n in enumerate(shape) if ins and n == ins[0][0]}
            axes[key] = axes.get(key, fit) & fit
    return {k: (next(iter(v)) if len(v) == 1 else None) for k, v in axes.items()}


def _undescribed(output: Any) -> str | None:
    """Why ``output`` is more than a tensor, a tuple/list of tensors (or of tuples of
    tensors, an RNN's state) or a dict of tensors (what an inferred interface describes),
    or None."""
    if isinstance(output, torch.Tensor):
        return None
    if isinstance(output, (tuple, list, dict)):
        items = output.items() if isinstance(output, dict) else enumerate(output)
        for k, v in items:
            if not isinstance(v, torch.Tensor) and not (isinstance(output, (tuple, list)) and _tensor_tuple(v)):
                return f"its output item {k!r} is {describe(v)}, not a tensor"
        return None
    return f"its output is {describe(output)}"


def _flat_tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _flat_tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _flat_tensors(x)


# ------------------------------------------------------------- one pass
@dataclass
class Run:
    stats: dict[tuple, Stats]
    shapes: dict[str, list[dict]]
    label_counts: list[int] | None
    out_width: int | None
    output_module: str | None
    rows: int
    batches: int
    undescribed: dict[str, str] = field(default_factory=dict)
    indices: dict[str, dict[str, int]] = field(default_factory=dict)
    state_axes: dict[str, dict[str, int | None]] = field(default_factory=dict)


class eval_mode:
    """Eval mode for the pass, then each module's own mode back."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.modes = {m: m.training for m in self.model.modules()}
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, t in self.modes.items():
            m.training = t


def device_of(model: nn.Module) -> torch.device:
    p: torch.Tensor | None = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def _signature(meta: dict[str, torch.Tensor]) -> dict[str, list]:
    return {k: [list(t.shape), str(t.dtype).replace("torch.", "")] for k, t in meta.items()}


def is_boundary(st: Stats) -> bool:
    return any(s in (MODEL_INPUT, COMPUTED) for s in st.sources)


def record(
    model: nn.Module,
    paths: list[str],
    data: Any,
    granularity: str,
    *,
    keep_rows: bool,
    max_rows: int | None,
    batch_size: int,
    known: dict[tuple, str] | None = None,
) -> Run:
    """One pass over ``data``; ``known``: tensor key -> the granularity an existing
    envelope has (refine), used instead of choosing one again."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpecError(f"Expected batch_size to be a positive int, got {batch_size!r}")
    stats: dict[tuple, Stats] = {}
    current: dict[str, Any] = {"y": None}
    kept_rows: dict[tuple, int] = {}

    def on_tensor(path, side, name, index, t, sources):
        key = (path, side, name, index)
        st = stats.get(key)
        if st is None:
            fixed = (known or {}).get(key)
            st = stats[key] = new_stats(key, fixed or granularity, t.ndim)
        st.add(t)
        st.sources |= sources
        if side == "input" and index is None:
            st.keep_sample(t)
        if (
            keep_rows
            and (max_rows is None or kept_rows.get(key, 0) < max_rows)
            and t.shape[0] > 0
            and t[0].numel() <= MAX_BOX_FEATURES
        ):
            flat = t.detach().reshape(t.shape[0], -1).to("cpu", torch.float64)
            y = current["y"]
            st.kept.append(flat)
            st.kept_labels.append(y if y is not None and y.shape[0] == t.shape[0] else None)
            kept_rows[key] = kept_rows.get(key, 0) + t.shape[0]

    rec = Recorder(model, paths, on_tensor)
    counts: list[int] | None = None
    out_width = None
    rows = nb = 0
    device = device_of(model)
    with eval_mode(model), torch.no_grad(), disabled(), rec:
        for batch in read_batches(data, "infer_contracts", batch_size=batch_size):
            y = _class_labels(batch.labels)
            current["y"] = y.cpu() if y is not None else None
            out = batch.to(device).call(model)
            nb += 1
            rows += batch.rows
            scores = _scores(out)
            if scores is not None:
                out_width = int(scores.shape[1])
            if y is not None:
                if bool((y < 0).any()):
                    raise SpecError(f"infer_contracts: labels must be >= 0, got {int(y.min())} in batch {nb - 1}")
                c = torch.bincount(y.cpu().long()).tolist()
                counts = counts or []
                counts.extend([0] * (len(c) - len(counts)))
                for i, v in enumerate(c):
                    counts[i] += v
    if nb == 0:
        raise SpecError("infer_contracts: the reference data gave no batches")
    shapes: dict[str, list[dict]] = {}
    for path, calls in rec.calls.items():
        sigs = shapes.setdefault(path, [])
        for mi, mo in calls:
            s = {"inputs": _signature(mi), "outputs": _signature(mo)}
            if s not in sigs:
                sigs.append(s)
    return Run(
        stats, shapes, counts, out_width, rec.output_module, rows, nb, rec.undescribed, rec.indices, rec.state_axes
    )
