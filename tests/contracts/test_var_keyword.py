"""Contracts on functions and modules that take ``**kw``."""

import pytest
import torch
from torch import nn

import modpact as mp
from modpact.errors import PreconditionViolation


@mp.requires(lambda x: x.ndim == 2, "x is a batch of vectors")
def twice(**kw):
    return kw["x"] * 2


class Keywords(nn.Module):
    def forward(self, **kw):
        return kw["x"] + 1


def test_a_condition_reads_what_was_passed_by_keyword():
    assert twice(x=torch.ones(2, 3)).shape == (2, 3)
    with pytest.raises(PreconditionViolation) as e:
        twice(x=torch.ones(3))
    assert "x is a batch of vectors" in str(e.value)
    model = mp.guard(Keywords(), requires=[lambda x: x.ndim == 2])
    assert model(x=torch.ones(2, 2)).shape == (2, 2)


def test_a_name_the_call_did_not_pass_breaks_the_precondition_and_says_so():
    with pytest.raises(PreconditionViolation) as e:
        twice(y=torch.ones(2, 3))
    assert "not passed: x" in str(e.value)
    assert "blaming the caller" in str(e.value)
