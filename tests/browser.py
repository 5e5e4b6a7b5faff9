"""A real browser against a real server: Debian's headless Chromium driven by Selenium, uvicorn on a free port.

Nothing is downloaded: Selenium is told where the system chromedriver and
Chromium are, and Selenium Manager is kept offline. Each browser gets a fresh
profile directory. A test that fails leaves a screenshot in
``var/screenshots/`` (its path is printed in the failure report).
"""

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
import uvicorn

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = next(
    (Path(p) for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()),
    Path("/usr/bin/chromium"),
)
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--lang=en-US",
)


def require_browser() -> None:
    """Skip (fail in CI) when the Debian packages chromium and chromium-driver are missing."""
    missing = [str(path) for path in (CHROMEDRIVER, CHROMIUM) if not path.exists()]
    if missing:
        message = (
            f"headless browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1 in a thread of the test process."""

    def __init__(self, app, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_chromium(width: int = 1280, height: int = 900):
    """A fresh headless Chromium (its own profile directory, removed by ``quit_chromium``)."""
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="radbill-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.radbill_profile = profile
    driver.implicitly_wait(0)
    return driver


def quit_chromium(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.radbill_profile, ignore_errors=True)


def save_screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so the ``chromium`` fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def chromium(request):
    """A fresh headless Chromium; a screenshot of its page when the test fails."""
    require_browser()
    driver = start_chromium()
    yield driver
    try:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            path = save_screenshot(driver, request.node.name.replace("/", "_"))
            report.sections.append(("screenshot", f"saved {path}"))
            print(f"\nscreenshot of the failed page: {path}")
    finally:
        quit_chromium(driver)
