"""The pytest plugin's entry point (``[project.entry-points.pytest11]``):
``--modpact-examples N``, ``MODPACT_PROFILE=ci|dev`` and the
``modpact_examples`` fixture, defined in :mod:`modpact.validation.pytest_plugin`.
Loading it never fails when Hypothesis is missing.
"""

from modpact.validation.pytest_plugin import (
    PROFILES,
    modpact_examples,
    pytest_addoption,
    pytest_configure,
    pytest_report_header,
    pytest_unconfigure,
)

__all__ = [
    "PROFILES",
    "pytest_addoption",
    "pytest_configure",
    "pytest_unconfigure",
    "pytest_report_header",
    "modpact_examples",
]
