import pytest
import torch


@pytest.fixture(scope="session")
def digits():
    from digits_ood import load

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figures in docs/inferred.md were measured so
    try:
        return load(seed=0, epochs=150)
    finally:
        torch.set_num_threads(threads)
