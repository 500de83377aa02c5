"""What the browser tests share: the API and database helpers, waits with deadlines,
screenshots, the network log check, and the runner. Each test file runs its tests in order,
printing PASS or FAIL for each; the exit status is 1 when any failed."""

import json
import os
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["BASE_URL"]
OUTPUT = os.environ["OUTPUT"]
CLI = os.environ["EMPORIUM_BIN"]
DATABASE_URL = os.environ["DATABASE_URL"]
ADMIN_EMAIL = os.environ["SEED_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["SEED_ADMIN_PASSWORD"]
DEADLINE = 45  # seconds any single wait may take


# --- helpers -------------------------------------------------------------------------------

def api(method, path, body=None, token=None, headers=None):
    """A JSON request to the API; returns (status, parsed body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, (json.loads(text) if text.startswith("{") else text)


def sql(query):
    """One value from the test's database (psql, as the tests' fixtures do)."""
    out = subprocess.run(["psql", "-qtAX", DATABASE_URL, "-c", query], check=True, capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


def cli(*args):
    out = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


def customer():
    """A new customer over the API; their access token."""
    email = "shopper.%s@example.com" % uuid.uuid4().hex[:10]
    status, body = api("POST", "/api/v1/auth/register",
                       {"email": email, "password": "a long passphrase", "first_name": "Ann", "last_name": "Lee"})
    assert status == 201, (status, body)
    status, body = api("POST", "/api/v1/auth/login", {"email": email, "password": "a long passphrase"})
    assert status == 200, (status, body)
    return email, body["access_token"]


def place_order(token):
    status, products = api("GET", "/api/v1/products")
    assert status == 200 and products["items"], products
    product = next(p for p in products["items"] if p["stock"] > 2)
    status, body = api("POST", "/api/v1/cart/items", {"product_id": product["id"], "quantity": 1}, token)
    assert status in (200, 201), (status, body)
    status, order = api("POST", "/api/v1/orders", {
        "payment_method": "tok_visa",
        "shipping_address": {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}},
        token, {"Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, (status, order)
    return order["id"].lower()


def wait(driver, condition, what):
    try:
        # A page being replaced (a form's redirect, a live re-render) leaves stale elements:
        # that is "not yet", not a failure.
        return WebDriverWait(driver, DEADLINE, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: condition(d))
    except TimeoutException:
        shot(driver, "failed-" + what.replace(" ", "-")[:40])
        raise AssertionError("timed out after %d s waiting for %s (page %s)" % (DEADLINE, what, driver.current_url))


def text(driver, css):
    """The text of the first element matching `css`, or None; an element replaced while it is
    read (a live re-render) is read again."""
    for _ in range(5):
        elements = driver.find_elements(By.CSS_SELECTOR, css)
        if not elements:
            return None
        try:
            return elements[0].text.strip()
        except StaleElementReferenceException:
            continue
        except WebDriverException as error:
            # The same race as a stale element, reported by chromedriver in its own words
            # when the page is replaced mid-read (seen in a CI run on the replay form).
            if "does not belong to the document" in str(error):
                continue
            raise
    return None


SHOTS = []


def shot(driver, name):
    path = os.path.join(OUTPUT, name + ".png")
    driver.save_screenshot(path)
    SHOTS.append(path)




FOREIGN = set()


def collect_network(driver):
    """Done-when 4: every request any page made went to the API itself (read after each test,
    so the browser's log buffer never drops entries)."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not (url.startswith(BASE + "/") or url.startswith("data:")):
                FOREIGN.add(url)



def make_driver(javascript=True, size=(1200, 900)):
    """Headless Chromium (Debian's) through its chromedriver, logging network requests."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=%d,%d" % size,
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--disable-default-apps", "--disable-sync"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(DEADLINE)
    driver.set_script_timeout(DEADLINE)
    return driver


def run(name, tests, network_check=True):
    """Runs `tests` (functions of a driver) in order on one browser; exits 1 on any failure."""
    os.makedirs(OUTPUT, exist_ok=True)
    driver = make_driver()
    failures = 0
    try:
        for test in tests:
            started = time.time()
            try:
                test(driver)
                collect_network(driver)
                print("PASS %s (%.1f s)" % (test.__name__, time.time() - started), flush=True)
            except Exception:
                failures += 1
                print("FAIL %s (%.1f s)\n%s" % (test.__name__, time.time() - started, traceback.format_exc()), flush=True)
        if network_check:
            collect_network(driver)
            if FOREIGN:
                failures += 1
                print("FAIL pages fetched from outside the API: %s" % sorted(FOREIGN), flush=True)
            else:
                print("PASS no page fetched anything outside the API", flush=True)
    finally:
        driver.quit()
    total = len(tests) + (1 if network_check else 0)
    print("%s: %d passed, %d failed; screenshots in %s" % (name, total - failures, failures, OUTPUT))
    sys.exit(1 if failures else 0)
