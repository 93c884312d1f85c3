import pytest

import modpact.contracts as mc


@pytest.fixture(autouse=True)
def _clean_contract_state():
    previous = mc.set_mode("raise")
    mc.clear_recorded()
    yield
    mc.set_mode(previous)
    mc.clear_recorded()
