import pytest
import torch

from modpact.decomposition.data import load
from modpact.decomposition.training import train_digits_mlp


@pytest.fixture(scope="session")
def digits():
    return load("digits")


@pytest.fixture(scope="session")
def mlp(digits):
    """A digits MLP (seed 0). Tests must not modify it: deepcopy first."""
    torch.set_num_threads(1)
    model, _ = train_digits_mlp(0, data=digits)
    return model
