import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# the benchmark model zoo (bench/zoo.py) is shared with the runtime tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none visible to torch on this machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op thread: the real-model tests run tiny forwards, and on a shared
    2-core machine a second thread mostly waits (the count is put back after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
