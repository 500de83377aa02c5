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
# What the browser sent and got back since the last test ended (one line per request,
# response, redirect or failed load), for a failing test's diagnosis; bounded.
TRAFFIC = []
TRAFFIC_LINES = 30
REQUESTED = {}  # request id -> address, to name a failed load


def collect_network(driver):
    """Done-when 4: every request any page made went to the API itself (read after each test,
    so the browser's log buffer never drops entries). Also keeps the test's traffic with the
    statuses it got, which a failure prints."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not (url.startswith(BASE + "/") or url.startswith("data:")):
                FOREIGN.add(url)
            if url.startswith("data:"):
                continue
            redirect = params.get("redirectResponse")
            if redirect:
                TRAFFIC.append("<- %s %s (redirect)" % (redirect.get("status"), redirect.get("url")))
            TRAFFIC.append("-> %s %s" % (params["request"]["method"], url))
            REQUESTED[params.get("requestId")] = url
        elif method == "Network.responseReceived":
            response = params["response"]
            if not response["url"].startswith("data:"):
                TRAFFIC.append("<- %s %s" % (response.get("status"), response["url"]))
        elif method == "Network.loadingFailed":
            url = REQUESTED.get(params.get("requestId"), "request %s" % params.get("requestId"))
            TRAFFIC.append("xx %s (%s%s)" % (url, params.get("errorText"), ", canceled" if params.get("canceled") else ""))
    del TRAFFIC[:-TRAFFIC_LINES]


def diagnosis(driver, since):
    """What a failed test left behind, the page last (where a log's tail shows it): what the API
    logged above info since the test began, the test's last requests with what they got
    (static files left out), and the page (address, title, heading, any problem shown).
    Never raises: the browser may be what failed."""
    lines = []
    page = []
    try:
        collect_network(driver)
        page.append("page: %s (title %r)" % (driver.current_url, driver.title))
        for css in ("h1", "[role=alert]", "#pay-problem"):
            shown = text(driver, css)
            if shown:
                page.append("  %s: %s" % (css, shown[:300]))
    except Exception as error:  # the browser itself may be gone
        page.append("page: unreadable (%s)" % ((str(error).strip().splitlines() or [type(error).__name__])[0][:200]))
    api_log = os.environ.get("API_LOG")
    if api_log and os.path.exists(api_log):
        noted = []
        with open(api_log, errors="replace") as log:
            for line in log:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("level") not in ("trace", "debug", "info") and str(record.get("ts", "")) >= since:
                    noted.append("  " + line.strip()[:400])
        lines.append("the API's log above info since the test began:")
        lines += noted[-8:] or ["  (nothing)"]
    requests = [line for line in TRAFFIC if "/static/" not in line and not line.endswith("/favicon.ico")]
    lines.append("the browser's last requests (-> sent, <- answered, xx failed):")
    lines += ["  " + line for line in requests[-14:]] or ["  (none recorded)"]
    return "\n".join(lines + page)


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
    """Runs `tests` (functions of a driver) in order on one browser; exits 1 on any failure.
    A failure prints its traceback and where it left the browser (``diagnosis``), and adds
    a summary to OUTPUT/failures.txt, which scripts/browser-tests.sh prints last."""
    os.makedirs(OUTPUT, exist_ok=True)
    driver = make_driver()
    failures = []
    try:
        for test in tests:
            started = time.time()
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
            del TRAFFIC[:]
            REQUESTED.clear()
            try:
                test(driver)
                collect_network(driver)
                print("PASS %s (%.1f s)" % (test.__name__, time.time() - started), flush=True)
            except Exception as error:
                found = diagnosis(driver, since)
                print("FAIL %s (%.1f s)\n%s%s" % (test.__name__, time.time() - started, traceback.format_exc(), found), flush=True)
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
                failures.append("FAIL %s: %s\n%s" % (test.__name__, reason, found))
        if network_check:
            collect_network(driver)
            if FOREIGN:
                failures.append("FAIL pages fetched from outside the API: %s" % sorted(FOREIGN))
                print(failures[-1], flush=True)
            else:
                print("PASS no page fetched anything outside the API", flush=True)
    finally:
        driver.quit()
    total = len(tests) + (1 if network_check else 0)
    print("%s: %d passed, %d failed; screenshots in %s" % (name, total - len(failures), len(failures), OUTPUT))
    if failures:
        with open(os.path.join(OUTPUT, "failures.txt"), "a") as summary:
            summary.write("".join("[%s] %s\n" % (name, failure) for failure in failures))
    sys.exit(1 if failures else 0)
