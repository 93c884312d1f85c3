"""README's training loop: a NaN weight appears mid-training, and the
Monitor names the module, although `opt.step()` runs before `mon.step()`.

    .venv/bin/python examples/training_loop.py
"""

import torch
import torch.nn.functional as F

import modpact as mp
from modpact.decomposition.training import digits_modular, train_digits_mlp

torch.manual_seed(0)
mlp, data = train_digits_mlp(epochs=10)
model = digits_modular(mlp)  # x -> encoder -> hidden -> head, an interface on every edge
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = data.x_train[:128], data.y_train[:128]

with mp.Monitor(model, defaults=True) as mon:
    for step in range(4):
        if step == 2:  # a bad update, say: one weight of the hidden layer turns NaN
            with torch.no_grad():
                model.get_submodule("hidden.2").weight[0, 0] = float("nan")
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        mon.step()
mon.report().print()
