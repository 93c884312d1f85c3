"""A diagnosis report from a real monitored run, in every form.

    python examples/diagnosis_report.py [OUT_DIR] [--screenshot]

Guards a small ResNet (bench/zoo.py), puts a NaN into one weight of
layer1.conv2, runs two steps under the Monitor and writes report.json,
report.html and report.xml to OUT_DIR (default: the current folder). With
--screenshot it also opens the page in headless Chromium (selenium, Debian's
chromium + chromium-driver) and saves report.png: docs/report-screenshot.png
was made this way.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from zoo import SmallResNet, example_input  # noqa: E402

import modpact as mp  # noqa: E402


def not_dead(result):
    """A layer whose whole output is zero has died."""
    return result.abs().amax() > 0


def build() -> SmallResNet:
    torch.manual_seed(0)
    model = SmallResNet()
    image = mp.Interface(
        "digits-image",
        inputs={"input": mp.TensorSpec("b 1 8 8", dtype="float32", range=(0, 1))},
        outputs={"result": mp.TensorSpec("b c 8 8", finite=True)},
    )
    mp.guard(model.stem[0], interface=image, name="stem.0")
    for path, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and path != "stem.0":
            mp.guard(mod, ensures=[mp.in_range("result", -1e4, 1e4), not_dead], name=path)
    return model


def faulty_run() -> mp.DiagnosisReport:
    model = build()
    with torch.no_grad():
        model.layer1.conv2.weight[0, 0, 0, 0] = float("nan")  # the injected fault
    x = example_input(model, 16, torch.Generator().manual_seed(1))
    with mp.Monitor(model, defaults=True) as mon:
        for _ in range(2):
            model(x)
            mon.step()
    return mon.report()


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1500) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        driver.get(html.resolve().as_uri())
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "verdict").is_displayed())
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")  # painted
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main(argv: list[str]) -> None:
    out = Path(next((a for a in argv if not a.startswith("--")), "."))
    out.mkdir(parents=True, exist_ok=True)
    report = faulty_run()
    report.print()
    (out / "report.json").write_text(report.to_json())
    report.to_html(out / "report.html")
    report.to_junit(out / "report.xml")
    if "--screenshot" in argv:
        screenshot(out / "report.html", out / "report.png")
    print(f"wrote {', '.join(str(out / n) for n in ('report.json', 'report.html', 'report.xml'))}")


if __name__ == "__main__":
    main(sys.argv[1:])
