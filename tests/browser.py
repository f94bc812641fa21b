"""Headless Chromium for the tests of a page, `rnngen serve`'s or an exported one (a pytest plugin of conftest.py):
Debian's `chromium` and `chromium-driver`, which CI installs; without them those tests are skipped, saying so."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = "needs a browser: apt-get install chromium chromium-driver"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium (a selenium `webdriver.Chrome`) for a test module."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--window-size=1000,800", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    if os.geteuid() == 0:  # Chromium refuses to run as root inside its sandbox
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
