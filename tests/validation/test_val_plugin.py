"""The pytest plugin (entry point pytest11): @modpact.given, --modpact-examples,
MODPACT_PROFILE; and the documented pytest example in docs/validation.md runs."""

import re
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

TEST_FILE = """
import torch
import modpact as mp

IFACE = mp.Interface("add", inputs={"a": mp.TensorSpec("batch n", dtype="float32", finite=True),
                                    "b": mp.TensorSpec("batch n", dtype="float32", finite=True)},
                     outputs={"y": mp.TensorSpec("batch n")})
SEEN = []

@mp.given(IFACE)
def test_shapes_are_shared(a, b, tmp_path):
    SEEN.append(1)
    assert a.shape == b.shape and tmp_path.exists()

@mp.given(IFACE)
def test_as_one_dict(inputs):
    assert set(inputs) == {"a", "b"}

def test_count():
    print(f"\\nSEEN={len(SEEN)}")

def test_examples_fixture(modpact_examples):
    print(f"\\nFIXTURE={modpact_examples}")
"""


def test_given_runs_with_fixtures_and_the_example_option(pytester):
    from modpact.validation.testing import CONFIG

    before = CONFIG["max_examples"]
    pytester.makepyfile(test_given=TEST_FILE)
    result = pytester.runpytest_inprocess("--modpact-examples", "7", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "SEEN=7" in out and "FIXTURE=7" in out
    assert "modpact: examples=7, profile=-" in out
    assert CONFIG["max_examples"] == before  # the outer run's setting is restored


def test_profiles_are_chosen_by_environment_variable(pytester, monkeypatch):
    pytester.makepyfile(test_given=TEST_FILE)
    monkeypatch.setenv("MODPACT_PROFILE", "ci")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert "SEEN=50" in result.stdout.str()  # the ci profile: 50 examples
    monkeypatch.setenv("MODPACT_PROFILE", "nightly")
    bad = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert "MODPACT_PROFILE='nightly': expected one of ci, dev" in bad.stderr.str()


def test_given_names_a_missing_parameter(pytester):
    pytester.makepyfile(
        test_bad="""
import modpact as mp
IFACE = mp.Interface("one", inputs={"x": mp.TensorSpec("batch 3")}, outputs={})

@mp.given(IFACE)
def test_wrong(y):
    pass
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*modpact.given('one') on test_wrong(y): the test takes no parameter 'x'*"])


def test_the_documented_pytest_example_runs(pytester):
    text = (ROOT / "docs" / "validation.md").read_text()
    m = re.search(r"<!-- pytest-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "docs/validation.md has no block marked <!-- pytest-example -->"
    pytester.makepyfile(test_doc_example=m.group(1))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--modpact-examples", "10")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and not outcomes.get("failed") and not outcomes.get("errors"), (
        result.stdout.str()
    )


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "modpact"]
    assert ep.value == "modpact.pytest_plugin"
    assert 'modpact = "modpact.pytest_plugin"' in (ROOT / "pyproject.toml").read_text()
