"""The pytest plugin's hooks and fixture (registered through the entry point
module ``modpact.pytest_plugin``): ``--modpact-examples N`` and the ``ci`` /
``dev`` Hypothesis profiles chosen by ``MODPACT_PROFILE``.

- ``--modpact-examples N``: examples per ``@modpact.given`` test and the
  default ``max_examples`` of ``modpact.validate`` / ``check_substitutable`` /
  ``check_composition`` during the run.
- ``MODPACT_PROFILE=ci|dev``: loads the Hypothesis profile ``modpact-ci``
  (50 examples, derandomized, no deadline) or ``modpact-dev`` (100 examples,
  no deadline). Without it the Hypothesis profile in effect is untouched.
- fixture ``modpact_examples``: the example count in effect.

Loading the plugin never fails when Hypothesis is missing; the features that
need it say how to install it when used.
"""

from __future__ import annotations

import os

import pytest

from .testing import CONFIG

PROFILES = ("ci", "dev")
_PREVIOUS = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modpact", "modpact property-based validation")
    group.addoption(
        "--modpact-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per @modpact.given test and default max_examples of modpact.validate",
    )


def _register_profiles() -> bool:
    """Register ``modpact-ci`` and ``modpact-dev`` (own names: Hypothesis ships a ``ci``
    profile, and a conftest.py may register ``ci``/``dev`` of its own)."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return False
    settings.register_profile(
        "modpact-ci",
        max_examples=50,
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("modpact-dev", max_examples=100, deadline=None)
    return True


def pytest_configure(config: pytest.Config) -> None:
    n = config.getoption("--modpact-examples")
    if n is not None and n < 1:
        raise pytest.UsageError(f"--modpact-examples={n}: expected a positive number of examples")
    config.stash[_PREVIOUS] = CONFIG["max_examples"]  # restored at unconfigure (nested in-process runs)
    CONFIG["max_examples"] = n
    has_hypothesis = _register_profiles()
    profile = os.environ.get("MODPACT_PROFILE", "").strip()
    if profile:
        if profile not in PROFILES:
            raise pytest.UsageError(f"MODPACT_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
        if has_hypothesis:
            from hypothesis import settings

            settings.load_profile(f"modpact-{profile}")


def pytest_unconfigure(config: pytest.Config) -> None:
    CONFIG["max_examples"] = config.stash.get(_PREVIOUS, None)


def pytest_report_header(config: pytest.Config) -> str | None:
    n = config.getoption("--modpact-examples")
    profile = os.environ.get("MODPACT_PROFILE")
    if n is None and not profile:
        return None
    return f"modpact: examples={n if n is not None else 'profile default'}, profile={profile or '-'}"


@pytest.fixture
def modpact_examples() -> int:
    """Examples per property test in effect (``--modpact-examples``, else the Hypothesis profile's)."""
    if CONFIG["max_examples"] is not None:
        return CONFIG["max_examples"]
    try:
        from hypothesis import settings
    except ImportError:
        return 100
    return settings().max_examples
