"""Screenshot of a report page, as the README shows it: ``python docs/screenshot.py REPORT.html OUT.png``.
Needs Chromium, chromedriver and selenium (the test extras)."""

import shutil
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main() -> None:
    page, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(page.as_uri())
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1200, min(height + 40, 6000))
        browser.save_screenshot(str(out))
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
