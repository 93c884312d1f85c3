"""JUnit XML: one test case per contract (module x contract), failures for
the violated ones, errors for contracts that raised; it parses."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import FAULTY


def _cases(xml: str) -> tuple[ET.Element, dict[tuple[str, str], ET.Element]]:
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    return root, cases


def test_one_case_per_contract_and_a_failure_per_violated_one(faulty_report, tmp_path):
    path = tmp_path / "report.xml"
    faulty_report.to_junit(path)
    root, cases = _cases(path.read_text())
    suite = root.find("testsuite")
    contracts = [(mc.module, name) for mc in faulty_report.contracts for name in mc.names()]
    assert len(cases) == len(contracts) == int(suite.get("tests")) == int(root.get("tests"))
    violated = {(g.module, g.contract) for g in faulty_report.groups()}
    failed = {
        (c.get("classname").split(".", 2)[2], c.get("name")) for c in cases.values() if c.find("failure") is not None
    }
    assert failed == violated
    assert int(suite.get("failures")) == len(violated) and suite.get("errors") == "0"
    case = cases[(f"modpact.SmallResNet.{FAULTY}", "in_range(result, -10000.0, 10000.0)")]
    failure = case.find("failure")
    assert failure.get("type") == "postcondition"
    assert failure.get("message") == (
        "2 violation(s): postcondition in_range(result, -10000.0, 10000.0) at "
        f"layer1.conv2; blaming {FAULTY} (its preconditions held)"
    )
    assert "first_value: nan" in failure.text
    assert "repair hint: replace or retrain layer1.conv2" in failure.text
    # a consequence's failure says which root it follows from
    fc = cases[("modpact.SmallResNet.fc", "finite(output)")].find("failure")
    assert "consequence of the root cause at layer1.conv2" in fc.text
    # a contract that held is a passing case
    assert len(cases[("modpact.SmallResNet.stem.0", "interface digits-image")]) == 0


def test_clean_run_passes_every_case(clean_report):
    root, cases = _cases(clean_report.to_junit())
    assert len(cases) == sum(len(mc.names()) for mc in clean_report.contracts) > 40
    assert root.get("failures") == "0" and all(len(c) == 0 for c in cases.values())


def test_an_interface_violation_fails_the_interface_case(input_blame_report):
    _, cases = _cases(input_blame_report.to_junit())
    failure = cases[("modpact.SmallResNet.stem.0", "interface digits-image")].find("failure")
    assert failure is not None and failure.get("type") == "interface"
    assert "blaming the input data" in failure.get("message")


def test_a_contract_that_raised_is_an_error(contract_error_report):
    root, cases = _cases(contract_error_report.to_junit())
    err = cases[("modpact.MLP.head", "broken")].find("error")
    assert err is not None and err.get("type") == "contract-error"
    assert "AttributeError" in err.text
    assert root.get("errors") == "1" and root.get("failures") == "0"
