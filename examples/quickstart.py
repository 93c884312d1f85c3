import torch
from torch import nn

import modpact as mp

iface = mp.Interface(
    "digit-head",
    inputs={"x": mp.TensorSpec("batch 64", dtype="float32")},
    outputs={"logits": mp.TensorSpec("batch 10", finite=True)},
)
head = mp.guard(nn.Linear(64, 10), interface=iface, name="head")
head(torch.randn(8, 64))  # fine
head(torch.randn(8, 32))  # wrong width: raises InterfaceViolation, blaming the caller
