"""Infer contracts for a digits MLP, then monitor an inverted batch."""

import sys
from pathlib import Path

import torch

import modpact as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from digits_ood import load  # noqa: E402

torch.set_num_threads(1)
d = load(seed=0, epochs=150)
inferred = mp.infer_contracts(d.model, (d.x_train, d.y_train))
inferred.refine((d.x_cal, d.y_cal))
inferred.install()
with mp.Monitor(d.model) as mon:
    d.model(1.0 - d.x_test[:16])  # inverted images (16 - x on the 0..16 scale; pixels are x / 16)
    mon.step()
print(mon.report())
