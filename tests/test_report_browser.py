"""The report as a reader meets it: opened from disk in a real headless Chromium, offline."""

import contextlib
import json
import os
import shutil
import tempfile

import pytest

from reglab.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
)


@contextlib.contextmanager
def headless():
    """Headless Chromium, quit afterwards; its temporary files (profile, singleton socket) go in a
    folder of their own, removed afterwards, not loose in /tmp (a short path: a socket's is limited
    to 107 characters, which a test's tmp_path under pytest-xdist exceeds)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with tempfile.TemporaryDirectory(prefix="chromium-") as scratch:
        browser = webdriver.Chrome(service=Service(DRIVER, env={**os.environ, "TMPDIR": scratch}), options=options)
        try:
            yield browser
        finally:
            browser.quit()


def loads_cleanly(browser, page, title: str, figures: int) -> None:
    """``page`` opens with its title, ``figures`` decoded images, no console message and nothing fetched."""
    browser.get(page.as_uri())
    assert browser.title == title
    images = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) == figures and all(done and width > 100 and height > 100 for done, width, height in images), images
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = [event["params"]["request"]["url"] for event in events if event["method"] == "Network.requestWillBeSent"]
    assert page.as_uri() in urls and all(url == page.as_uri() or url.startswith("data:image/png;base64,") for url in urls)  # nothing fetched
    assert not [event for event in events if event["method"] == "Network.loadingFailed"]


def headings(browser) -> list[str]:
    return browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")


def test_run_report_loads_in_chromium_without_errors(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: instrunet, width: 0.25}\ntrain: {epochs: 2, batch_size: 64}\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    with headless() as browser:
        loads_cleanly(browser, tmp_path / "run" / "report.html", "Run report: run", 8)
        assert "Calibration (validation)" in headings(browser) and "Learnt weights" in headings(browser)


def test_sweep_report_loads_in_chromium_without_errors(tmp_path):
    """A multi-objective sweep's: its Pareto front drawn."""
    recipe = tmp_path / "s.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: linear}\ntrain: {epochs: 2}\nsearch:\n  sampler: grid\n"
                      "  metrics: [val_macro_f1, val_ece]\n"
                      "  space: {optim.lr: {choice: [0.01, 0.1]}}\n  cocktail: {augment.mix: {mixup_alpha: {choice: [0.4]}}}\n")  # fmt: skip
    assert main(["sweep", str(recipe), "--workers", "1", "--out", str(tmp_path / "sweep"), "--quiet"]) == 0
    with headless() as browser:
        loads_cleanly(browser, tmp_path / "sweep" / "report.html", "Sweep report: s", 4)
        assert headings(browser) == ["Configurations", "Pareto front", "The metric against each parameter", "Curves"]


def test_study_report_with_arms_side_by_side_loads_in_chromium_without_errors(tmp_path):
    recipe = tmp_path / "study.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: linear}\ntrain: {epochs: 2}\n"
                      "study: {arms: {softmax: {}, one_vs_all: {loss.name: ovr_bce}}, baseline: softmax, seeds: [0, 1]}\n")  # fmt: skip
    assert main(["study", str(recipe), "--workers", "1", "--out", str(tmp_path / "study"), "--quiet"]) == 0
    with headless() as browser:
        loads_cleanly(browser, tmp_path / "study" / "report.html", "Study report: study", 11)
        assert "Calibration and the probability of the true class, arm beside arm" in headings(browser)
        assert "Learnt weights, arm beside arm" in headings(browser)
