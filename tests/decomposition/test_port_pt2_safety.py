"""load_exported reads a .pt2 archive only when nothing in it needs Python's
full unpickler: a crafted weight, constant or sample-input entry is refused
with the entry named, before torch.export.load runs."""

import io
import json
import pathlib
import zipfile

import pytest
import torch
from test_port_export import LIN, MASKED, Masked
from torch import nn

from modpact.decomposition.port import export, load_exported
from modpact.decomposition.pt2_safety import unsafe_entries
from modpact.errors import LoadError


class Touch:
    """Unpickled, it creates ``path``: the trace of code run from a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _rewrite(src, dst, change):
    """A copy of the zip ``src`` at ``dst`` with ``change(name, bytes) -> bytes`` applied to each entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info)))
    return dst


def _saved(tmp_path, module=None, iface=LIN, example=None):
    port = export(module or nn.Linear(8, 4), iface, torch.randn(3, 8) if example is None else example)
    path = tmp_path / "ok.pt2"
    port.save(path)
    return path


def _pickled_weight(tmp_path, payload):
    """The saved program with its first weight marked ``use_pickle`` and replaced by ``payload`` (torch.save)."""
    ok = _saved(tmp_path)
    first = {}

    def mark(name, data):
        if name.endswith("data/weights/model_weights_config.json"):
            cfg = json.loads(data)
            fqn = next(iter(cfg["config"]))
            cfg["config"][fqn]["use_pickle"] = True
            first["file"] = cfg["config"][fqn]["path_name"]
            return json.dumps(cfg).encode()
        return data

    marked = _rewrite(ok, tmp_path / "marked.pt2", mark)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return _rewrite(
        marked, tmp_path / "crafted.pt2", lambda n, d: buf.getvalue() if n.endswith("/" + first["file"]) else d
    )


def test_saved_programs_have_no_unsafe_entry_and_load(tmp_path):
    bn = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 4)).eval()  # buffers: constants
    path = _saved(tmp_path, bn)
    assert unsafe_entries(path) == []
    assert load_exported(path)(torch.randn(5, 8)).shape == (5, 4)
    ex = {"x": torch.randn(3, 5, 8), "mask": torch.ones(3, 5)}
    path = _saved(tmp_path, Masked().eval(), MASKED, ex)
    assert unsafe_entries(path) == []
    load_exported(path)(**ex)


def test_a_plain_tensor_saved_with_pickle_is_accepted(tmp_path):
    # torch itself pickles some tensors (use_pickle); a tensor passes the weights-only unpickler
    path = _pickled_weight(tmp_path, torch.nn.Parameter(torch.randn(4, 8)))
    assert unsafe_entries(path) == []


def test_a_crafted_weight_is_refused_before_torch_runs_it(tmp_path):
    mark = tmp_path / "ran"
    path = _pickled_weight(tmp_path, {"w": Touch(mark)})
    with pytest.raises(LoadError) as e:
        load_exported(path)
    text = str(e.value)
    assert text.startswith(f"{path}: refused, nothing loaded: it holds pickled data that could run code when loaded")
    assert "data/weights/weight_0: weight '" in text and "weights-only unpickler refuses (Unsupported global" in text
    assert "\x1b" not in text
    assert not mark.exists()
    # what the check prevents: torch.export.load itself runs the payload
    with pytest.raises(Exception):
        torch.export.load(path)
    assert mark.exists()


def test_pickled_objects_among_constants_and_crafted_sample_inputs_are_named(tmp_path):
    ok = _saved(tmp_path)
    buf = io.BytesIO()
    torch.save((Touch(tmp_path / "ran"),), buf)

    def craft(name, data):
        if name.endswith("data/constants/model_constants_config.json"):
            cfg = json.loads(data)
            cfg["config"]["cache"] = {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True}
            return json.dumps(cfg).encode()
        if name.endswith("data/sample_inputs/model.pt"):
            return buf.getvalue()
        return data

    path = _rewrite(ok, tmp_path / "crafted.pt2", craft)
    problems = unsafe_entries(path)
    assert len(problems) == 2, problems
    assert problems[0].endswith(
        "data/constants/custom_obj_0: a pickled Python object (constant 'cache'); torch.export.load unpickles it "
        "with Python's full unpickler, which can run code"
    )
    assert "data/sample_inputs/model.pt: a torch.save file that torch's weights-only unpickler refuses" in problems[1]
    with pytest.raises(LoadError, match="refused, nothing loaded"):
        load_exported(path)
    assert not (tmp_path / "ran").exists()


def test_a_broken_weights_table_is_named(tmp_path):
    ok = _saved(tmp_path)
    path = _rewrite(
        ok, tmp_path / "broken.pt2", lambda n, d: b"{not json" if n.endswith("model_weights_config.json") else d
    )
    problems = unsafe_entries(path)
    assert len(problems) == 1 and problems[0].endswith(
        "data/weights/model_weights_config.json: not a weights/constants table torch.export.load can read"
    )
