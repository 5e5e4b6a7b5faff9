"""The panel and the portal in a real browser: headless Chromium, uvicorn on a free port, SQLite and PostgreSQL.

The ISP is the API tests' (tests/api_world.py): reseller1 and reseller2 are
siblings under the admin; alice is reseller1's customer, bob reseller2's, and
carol belongs to reseller1's sub-reseller sub1. reseller1 has a batch of
"Home 10M" cards. With RADBILL_DOCS_SCREENSHOTS=1, test_docs_screenshots
refreshes the README's screenshots in docs/.
"""

import os
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from billingd import cards
from billingd.api.app import create_app
from cli.context import radius_answer
from schema.settings import ApiSettings, Settings
from tests import api_world
from tests import billing_world as world
from tests.browser import LiveServer
from tests.conftest import free_port

pytestmark = pytest.mark.interop  # a browser and a server on a socket
PASSWORD = api_world.PASSWORD
DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE_BUDGET = 100 * 1024


@pytest.fixture
def isp(engine, tmp_path, clock):
    """The API's test ISP (every role with a password) and a batch of cards, served by the whole
    ``radbill api`` application on a free port."""
    api_world.build_isp(engine)
    with engine.begin() as connection:
        batch = cards.create_batch(
            connection,
            world.actor(connection, "reseller1"),
            2,
            cards.load_pin_key(tmp_path),
            package="Home 10M",
        )
    settings = Settings(billingd=world.SETTINGS, api=ApiSettings(state_dir=str(tmp_path)))
    with LiveServer(
        create_app(settings, engine, os.urandom(32), decide=radius_answer(settings), clock=clock), free_port()
    ) as server:
        server.pins = [card["pin"] for card in batch]
        yield server


def wait_for(driver, css: str):
    return WebDriverWait(driver, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def click_and_load(driver, button) -> None:
    """Click, then wait for the next page to replace this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(page))
    wait_for(driver, "main h1")


def log_in(driver, url: str, login: str, password: str) -> None:
    driver.get(url)
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(password)
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]"))


def submit(driver, action: str) -> None:
    """Press the button of the form that posts to ``action`` (the path after the host)."""
    click_and_load(
        driver, driver.find_element(By.CSS_SELECTOR, f"form[action='{action}'] button[type=submit]")
    )


def flash_text(driver) -> str:
    return " ".join(element.text for element in driver.find_elements(By.CSS_SELECTOR, ".flash"))


def transferred_bytes(driver) -> int:
    """What the page cost on the wire: the document and every resource it loaded (compressed sizes)."""
    return driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".reduce((sum, entry) => sum + entry.transferSize, 0);"
    )


def test_reseller_adds_renews_and_sees_the_customer_on_the_dashboard(isp, chromium):
    log_in(chromium, f"{isp.url}/panel/login", "reseller1", PASSWORD)
    assert chromium.find_element(By.CSS_SELECTOR, "main h1").text == "Dashboard"
    click_and_load(chromium, chromium.find_element(By.LINK_TEXT, "Customers"))
    click_and_load(chromium, chromium.find_element(By.LINK_TEXT, "Add a customer"))
    chromium.find_element(By.ID, "username").send_keys("dave")
    chromium.find_element(By.ID, "password").send_keys("dave-secret")
    chromium.find_element(By.ID, "name").send_keys("Dave Rahman")
    chromium.find_element(By.ID, "phone").send_keys("01710000000")
    submit(chromium, "/panel/customers/new")
    assert "Customer dave added." in flash_text(chromium)
    assert chromium.current_url.endswith("/panel/customers/dave")
    first_expiry = chromium.find_element(By.ID, "expires").text

    chromium.find_element(
        By.CSS_SELECTOR, "form[action='/panel/customers/dave/renew'] input[name=cash]"
    ).click()
    submit(chromium, "/panel/customers/dave/renew")
    assert "Renewed" in flash_text(chromium)
    renewed_expiry = chromium.find_element(By.ID, "expires").text
    assert renewed_expiry > first_expiry  # "YYYY-MM-DD HH:MM" sorts as it reads: 30 more days

    click_and_load(chromium, chromium.find_element(By.LINK_TEXT, "Dashboard"))
    collections = chromium.find_element(By.ID, "collections").text
    assert "dave" in collections and "Dave Rahman" in collections and "500.00" in collections
    active = chromium.find_element(By.CSS_SELECTOR, "a[href='/panel/customers?status=active']").text
    assert active == "3"  # alice, dave and sub1's carol; reseller2's bob is not counted
    wait_for(chromium, "svg.chart")  # htmx loads today's charges and the chart after the page
    assert transferred_bytes(chromium) < PAGE_BUDGET

    chromium.get(f"{isp.url}/panel/customers")
    chromium.find_element(By.ID, "q").send_keys("rahman")
    # htmx swaps the rows in as one types (no page load); a row read mid-swap is stale.
    WebDriverWait(chromium, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda driver: "alice" not in driver.find_element(By.ID, "customer-rows").text
    )
    assert "dave" in chromium.find_element(By.ID, "customer-rows").text


def test_a_sibling_reseller_cannot_open_the_customer_by_url(isp, chromium):
    log_in(chromium, f"{isp.url}/panel/login", "reseller2", PASSWORD)
    chromium.get(f"{isp.url}/panel/customers/alice")
    heading = wait_for(chromium, "main h1").text
    assert heading == "Not found"
    assert "R1-0001" not in chromium.page_source  # nothing of alice's leaks
    assert "alice" not in chromium.find_element(By.ID, "main").text.replace(
        "customer alice is not visible", ""
    )
    chromium.get(f"{isp.url}/panel/customers")
    rows = wait_for(chromium, "#customer-rows").text
    assert "bob" in rows and "alice" not in rows


def test_a_subscriber_redeems_a_card_and_sees_the_new_expiry(isp, chromium):
    chromium.set_window_size(412, 915)  # a phone
    log_in(chromium, f"{isp.url}/portal/login", "alice", "pw")
    before = chromium.find_element(By.ID, "expires").text
    chromium.find_element(By.ID, "pin").send_keys(isp.pins[0])
    submit(chromium, "/portal/redeem")
    assert "Card accepted." in flash_text(chromium)
    after = chromium.find_element(By.ID, "expires").text
    assert after > before
    assert transferred_bytes(chromium) < PAGE_BUDGET
    chromium.find_element(By.ID, "pin").send_keys(isp.pins[0])
    submit(chromium, "/portal/redeem")  # a card works once
    assert chromium.find_element(By.ID, "expires").text == after
    assert flash_text(chromium)


def test_a_form_without_its_csrf_token_is_refused(isp, chromium):
    log_in(chromium, f"{isp.url}/panel/login", "reseller1", PASSWORD)
    chromium.get(f"{isp.url}/panel/customers/alice")
    wait_for(chromium, "#expires")
    before = chromium.find_element(By.ID, "expires").text
    chromium.execute_script(
        "document.querySelector(\"form[action='/panel/customers/alice/renew'] input[name=csrf_token]\").remove();"
    )
    chromium.find_element(
        By.CSS_SELECTOR, "form[action='/panel/customers/alice/renew'] input[name=cash]"
    ).click()
    submit(chromium, "/panel/customers/alice/renew")
    assert chromium.find_element(By.CSS_SELECTOR, "main h1").text == "This form has expired"
    chromium.get(f"{isp.url}/panel/customers/alice")
    assert wait_for(chromium, "#expires").text == before  # nothing was renewed


@pytest.mark.skipif(not os.environ.get("RADBILL_DOCS_SCREENSHOTS"), reason="set RADBILL_DOCS_SCREENSHOTS=1")
def test_docs_screenshots(isp, engine, chromium, database_url):
    """The README's pictures: a month of reseller1's sales, its dashboard and a customer; the portal on a phone."""
    if not database_url.startswith("sqlite"):
        pytest.skip("one set of pictures is enough")
    names = ["rahim", "karim", "salma", "nusrat", "tanvir", "farhana", "imran", "shirin", "jamal", "runa"]
    with engine.begin() as connection:
        for index, name in enumerate(names):
            world.add_customer_of(connection, "reseller1", name, world.on(-27 + 3 * index), package="Lite 5M")
    chromium.set_window_size(1100, 1250)
    log_in(chromium, f"{isp.url}/panel/login", "reseller1", PASSWORD)
    wait_for(chromium, "svg.chart")
    DOCS.mkdir(exist_ok=True)
    chromium.save_screenshot(str(DOCS / "panel-dashboard.png"))
    chromium.get(f"{isp.url}/panel/customers/alice")
    wait_for(chromium, "#expires")
    chromium.save_screenshot(str(DOCS / "panel-customer.png"))
    chromium.set_window_size(412, 915)
    log_in(chromium, f"{isp.url}/portal/login", "alice", "pw")
    chromium.save_screenshot(str(DOCS / "portal.png"))
