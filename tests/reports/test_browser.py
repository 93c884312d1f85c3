"""The HTML report renders in a real browser: headless Chromium (Debian's
chromium + chromium-driver) opens it, the test checks what is on the page and
saves a screenshot under the test's tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FAULTY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver; "
    f".ci/run installs them); found chromium={CHROMIUM} chromedriver={CHROMEDRIVER}",
)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_report(browser, report, tmp_path: Path):
    page = tmp_path / "report.html"
    report.to_html(page)
    browser.get(page.as_uri())
    browser.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")  # painted
    return browser


def test_report_renders_in_headless_chromium(browser, faulty_report, tmp_path):
    from selenium.webdriver.common.by import By

    b = open_report(browser, faulty_report, tmp_path)
    assert b.title == f"modpact: {faulty_report.headline()}"
    verdict = b.find_element(By.ID, "verdict")
    assert verdict.text == faulty_report.headline()
    assert verdict.value_of_css_property("background-color") == "rgba(253, 232, 232, 1)"

    blamed = b.find_elements(By.CSS_SELECTOR, "svg.graph g.node.blamed")
    assert [g.get_attribute("data-module") for g in blamed] == [FAULTY]
    box = blamed[0].find_element(By.TAG_NAME, "rect")
    assert box.is_displayed() and box.size["width"] > 100
    assert box.value_of_css_property("stroke") == "rgb(198, 40, 40)"
    assert box.value_of_css_property("stroke-width") == "3px"
    assert len(b.find_elements(By.CSS_SELECTOR, "svg.graph g.node.consequence")) > 5

    hist = b.find_elements(By.CSS_SELECTOR, "svg.histogram")
    assert hist and hist[0].size["width"] == 380 and hist[0].size["height"] == 150
    assert hist[0].find_elements(By.CSS_SELECTOR, "rect.bar.nonfinite")[0].is_displayed()
    assert "Repair hint: replace or retrain layer1.conv2" in b.find_element(By.ID, "repair-hint").text

    shot = tmp_path / "report.png"
    assert b.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_clean_report_renders_green(browser, clean_report, tmp_path):
    from selenium.webdriver.common.by import By

    b = open_report(browser, clean_report, tmp_path)
    verdict = b.find_element(By.ID, "verdict")
    assert verdict.text.startswith("OK: no contract violations")
    assert verdict.value_of_css_property("background-color") == "rgba(230, 246, 234, 1)"
    assert not b.find_elements(By.CSS_SELECTOR, "g.node.blamed")
    assert b.save_screenshot(str(tmp_path / "clean.png"))
