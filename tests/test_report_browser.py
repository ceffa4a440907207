"""The report as a reader meets it: opened from disk in a real headless Chromium, offline."""

import json
import shutil

import pytest

from reglab.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
)


def open_headless():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_run_report_loads_in_chromium_without_errors(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: instrunet, width: 0.25}\ntrain: {epochs: 2, batch_size: 64}\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    browser = open_headless()
    try:
        browser.get((tmp_path / "run" / "report.html").as_uri())
        assert browser.title == "Run report: run"
        images = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
        assert len(images) == 8 and all(done and width > 100 and height > 100 for done, width, height in images), images
        errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
        urls = [event["params"]["request"]["url"] for event in events if event["method"] == "Network.requestWillBeSent"]
        page = (tmp_path / "run" / "report.html").as_uri()
        assert page in urls and all(url == page or url.startswith("data:image/png;base64,") for url in urls)  # nothing fetched
        assert not [event for event in events if event["method"] == "Network.loadingFailed"]
        headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
        assert "Calibration (validation)" in headings and "Learnt weights" in headings
    finally:
        browser.quit()
