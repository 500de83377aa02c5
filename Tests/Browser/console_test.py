"""The operator console in headless Chromium, against a running Emporium (scripts/browser-tests.sh
starts one with its own database and vhost). Six tests, in order, each printing PASS or FAIL;
exit status 1 when any fails. Every wait has a deadline; nothing sleeps and then asserts."""

import json
import os
import time
import uuid

from selenium.webdriver.common.by import By

from browser_support import (ADMIN_EMAIL, ADMIN_PASSWORD, BASE, DEADLINE, SHOTS, api, cli, customer, place_order, run, shot,
                             sql, text, wait)


def sign_in(driver, email, password):
    driver.delete_all_cookies()
    driver.get(BASE + "/admin/login")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()


def confirm(driver):
    """Clicks through the console's confirmation step."""
    wait(driver, lambda d: d.find_elements(By.ID, "confirm"), "the confirmation page")
    driver.find_element(By.ID, "confirm").click()


def mark_page(driver):
    driver.execute_script("window.__notReloaded = true;")


def not_reloaded(driver):
    return driver.execute_script("return window.__notReloaded === true;")


# --- the six tests -------------------------------------------------------------------------

STATE = {}


def test_1_overview_shows_the_database(driver):
    sign_in(driver, ADMIN_EMAIL, ADMIN_PASSWORD)
    wait(driver, lambda d: d.find_elements(By.ID, "orders-total"), "the overview")
    assert driver.current_url.rstrip("/").endswith("/admin"), driver.current_url
    # The database's counts, read now; the page's, read now; equal (no order is in flight).
    assert text(driver, "#orders-total") == sql("SELECT count(*) FROM orders"), (text(driver, "#orders-total"), sql("SELECT count(*) FROM orders"))
    for status in ("CONFIRMED", "CANCELLED", "PENDING"):
        cell = text(driver, '#orders-by-status td[data-status="%s"]' % status)
        assert cell == sql("SELECT count(*) FROM orders WHERE status = '%s'" % status), (status, cell)
    assert text(driver, "#postgres-ready") == "ready" and text(driver, "#rabbitmq-ready") == "ready"
    wait(driver, lambda d: text(d, "#live-state") == "live", "the live feed to connect")
    # An order placed now shows in the figures without a reload.
    mark_page(driver)
    _, token = customer()
    before = int(text(driver, "#orders-total"))
    place_order(token)
    wait(driver, lambda d: int(text(d, "#orders-total") or 0) == before + 1, "the overview's order count to rise")
    assert not_reloaded(driver)
    shot(driver, "overview")


def test_2_new_order_appears_live_and_confirms_live(driver):
    driver.get(BASE + "/admin/orders")
    wait(driver, lambda d: text(d, "#live-state") == "live", "the live feed on the orders page")
    mark_page(driver)
    email, token = customer()
    order_id = place_order(token)
    STATE["order"] = order_id
    row = 'tr[data-order-id="%s"]' % order_id
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the new order in the list")
    # The heading's count follows the rows (it stayed at its first value before).
    wait(driver, lambda d: text(d, "#order-count") == "(%s)" % sql("SELECT count(*) FROM orders"), "the heading's count to include the new order")
    assert not_reloaded(driver), "the list was reloaded"
    # The rows are re-rendered as events arrive: read and click through the wait, which
    # retries an element replaced under it.
    wait(driver, lambda d: email in d.find_element(By.CSS_SELECTOR, row).text, "the customer's email in the row")
    shot(driver, "orders")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, row + " a").click() or True, "a click on the order")
    wait(driver, lambda d: d.find_elements(By.ID, "order-status"), "the order page")
    first = text(driver, "#order-status")
    # The fake provider takes 3 s per charge: the page opens before the order is paid.
    assert first in ("PENDING", "AWAITING_PAYMENT"), "the order was %s when its page opened" % first
    mark_page(driver)
    wait(driver, lambda d: text(d, "#order-status") == "CONFIRMED", "the order to turn CONFIRMED on its page")
    assert not_reloaded(driver), "the order page was reloaded"
    timeline = text(driver, "#timeline")
    assert "PENDING" in timeline and "CONFIRMED" in timeline, timeline


def test_3_ship_and_deliver_from_the_order_page(driver):
    order_id = STATE["order"]
    admin_id = sql("SELECT id FROM users WHERE lower(email) = lower('%s')" % ADMIN_EMAIL)
    driver.get(BASE + "/admin/orders/" + order_id)
    wait(driver, lambda d: d.find_elements(By.ID, "ship"), "the Ship button")
    driver.find_element(By.ID, "ship").click()
    wait(driver, lambda d: "Ship order" in (text(d, "#question") or ""), "the question to ship the order")
    confirm(driver)
    wait(driver, lambda d: text(d, "#order-status") == "SHIPPED", "SHIPPED")
    wait(driver, lambda d: d.find_elements(By.ID, "deliver"), "the Deliver button")
    driver.find_element(By.ID, "deliver").click()
    confirm(driver)
    wait(driver, lambda d: text(d, "#order-status") == "DELIVERED", "DELIVERED")
    timeline = text(driver, "#timeline")
    assert "SHIPPED" in timeline and "DELIVERED" in timeline, timeline
    audit = text(driver, "#audit")
    assert "order.shipped" in audit and "order.delivered" in audit, audit
    assert audit.count(admin_id) >= 2, "the admin's id %s is not on both entries: %s" % (admin_id, audit)
    assert sql("SELECT count(*) FROM audit_log WHERE object_id = '%s' AND actor_id = '%s'" % (order_id, admin_id)) == "2"
    shot(driver, "order")


def test_4_dead_letter_replay_from_the_page(driver):
    order_id = STATE["order"]
    # A bad message: an event whose payload the payment worker cannot read, sent through the
    # outbox like any other event, so it reaches the queue as a real publisher's would.
    bad = str(uuid.uuid4())
    sql("""INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload)
           SELECT '%s', event_type, exchange, routing_key, order_id,
                  jsonb_set(jsonb_set(payload, '{id}', to_jsonb('%s'::text)), '{data}', '{"bogus": true}'::jsonb)
           FROM outbox WHERE order_id = '%s' AND event_type = 'payment.requested' LIMIT 1""" % (bad, bad, order_id))
    driver.get(BASE + "/admin/dead-letters?order=" + order_id)
    row = 'tr[data-message-id="%s"]' % bad

    def listed(d):
        if d.find_elements(By.CSS_SELECTOR, row):
            return True
        d.refresh()
        return False
    wait(driver, listed, "the bad message in the dead letters")
    assert "payment.requested" in driver.find_element(By.CSS_SELECTOR, row).text
    shot(driver, "dead-letters")
    driver.find_element(By.CSS_SELECTOR, row + " a").click()
    wait(driver, lambda d: d.find_elements(By.ID, "body"), "the dead letter's page")
    assert '"bogus"' in text(driver, "#body")
    shot(driver, "dead-letter")
    driver.back()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the list again")
    driver.find_element(By.CSS_SELECTOR, row + ' input[type="checkbox"]').click()
    driver.find_element(By.ID, "dry-run").click()
    wait(driver, lambda d: d.find_elements(By.ID, "replay-summary"), "the dry run")
    assert "would replay 1 message(s)" in text(driver, "#replay-summary"), text(driver, "#replay-summary")
    status, out, err = cli("dlq", "list", "--json", "--order", order_id)
    assert status == 0, err
    assert [l["message_id"] for l in json.loads(out)] == [bad], out  # the dry run changed nothing
    driver.find_element(By.ID, "replay").click()
    wait(driver, lambda d: "replayed 1 message(s)" in (text(d, "#replay-summary") or ""), "the replay")
    # The CLI agrees: the message went back, failed again (its payload is still bad) and is
    # dead again, now with one replay in its lineage.
    deadline = time.time() + DEADLINE
    while True:
        status, out, err = cli("dlq", "list", "--json", "--order", order_id)
        letters = json.loads(out) if status == 0 else []
        if letters and letters[0]["message_id"] == bad and letters[0]["replay_count"] == 1:
            break
        assert time.time() < deadline, "the CLI never showed the replayed letter: %s %s" % (out, err)
        time.sleep(0.5)
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'dlq.replay' AND object_id = '%s'" % order_id) == "1"


def test_5_csrf_roles_and_sellers(driver):
    order_id = STATE["order"]
    # A form post without the session's CSRF token is refused, even with the session cookie.
    driver.get(BASE + "/admin/orders/" + order_id)
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/admin/orders/%s/status', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'action=CANCELLED&confirm=yes'})
          .then(r => done(r.status)).catch(e => done(String(e)));""" % order_id)
    assert status == 403, status
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/admin/orders/%s/status', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=%s&action=CANCELLED&confirm=yes'})
          .then(r => done(r.status)).catch(e => done(String(e)));""" % (order_id, "0" * 64))
    assert status == 403, status
    assert sql("SELECT status FROM orders WHERE id = '%s'" % order_id) == "DELIVERED"
    # A CUSTOMER cannot sign in to the console, and without a session /admin is the sign-in page.
    email, _ = customer()
    sign_in(driver, email, "a long passphrase")
    wait(driver, lambda d: "cannot use the console" in (text(d, ".problem") or ""), "the customer's refusal")
    driver.get(BASE + "/admin/orders")
    assert "/admin/login" in driver.current_url, driver.current_url
    assert not driver.find_elements(By.ID, "orders")
    shot(driver, "login")
    # A SELLER sees only their own products, and another's product is not there for them.
    seller = "seller.%s@example.com" % uuid.uuid4().hex[:8]
    status, out, err = cli("user", "create", "--email", seller, "--password", "seller passphrase", "--role", "SELLER")
    assert status == 0, err
    sign_in(driver, seller, "seller passphrase")
    wait(driver, lambda d: d.find_elements(By.ID, "products"), "the seller's products page")
    assert "No products." in text(driver, "#products")
    driver.find_element(By.ID, "new-product").click()
    wait(driver, lambda d: d.find_elements(By.ID, "product-form"), "the new product form")
    sku = "SELL-" + uuid.uuid4().hex[:6].upper()
    driver.find_element(By.ID, "name").send_keys("Seller's lamp")
    driver.find_element(By.ID, "sku").send_keys(sku)
    driver.find_element(By.ID, "price").send_keys("19.90")
    stock = driver.find_element(By.ID, "stock")
    stock.clear()
    stock.send_keys("7")
    shot(driver, "product-form")
    driver.find_element(By.ID, "save").click()
    wait(driver, lambda d: "Edit Seller's lamp" in (text(d, "h1") or ""), "the created product")
    driver.get(BASE + "/admin/products")
    rows = driver.find_elements(By.CSS_SELECTOR, "#products tbody tr")
    assert len(rows) == 1 and sku in rows[0].text, [r.text for r in rows]
    total_products = int(sql("SELECT count(*) FROM products"))
    assert total_products > 1, total_products
    other = sql("SELECT id FROM products WHERE sku <> '%s' LIMIT 1" % sku)
    driver.get(BASE + "/admin/products/" + other)
    assert text(driver, "#problem") == "product not found", text(driver, "#problem")
    driver.get(BASE + "/admin/orders")
    assert "for admins" in (text(driver, "#problem") or ""), text(driver, "#problem")
    assert not driver.find_elements(By.ID, "orders")


def test_6_screenshots_of_every_page(driver):
    sign_in(driver, ADMIN_EMAIL, ADMIN_PASSWORD)
    wait(driver, lambda d: d.find_elements(By.ID, "orders-total"), "the overview")
    for name, path, marker in [
        ("products", "/admin/products", "products"),
        ("categories", "/admin/categories", "category-tree"),
        ("users", "/admin/users", "users"),
    ]:
        driver.get(BASE + path)
        wait(driver, lambda d: d.find_elements(By.ID, marker), name)
        shot(driver, name)
    # The overview and the order again, now that the shop has orders, shipped and dead-lettered
    # (these two are the README's screenshots), the order page at full height.
    driver.set_window_size(1200, 1250)
    driver.get(BASE + "/admin")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart rect"), "bars in the orders-per-minute chart")
    shot(driver, "overview")
    driver.set_window_size(1200, 1900)
    driver.get(BASE + "/admin/orders/" + STATE["order"])
    wait(driver, lambda d: text(d, "#order-status") == "DELIVERED", "the delivered order")
    shot(driver, "order")
    driver.set_window_size(1200, 900)
    expected = {"overview", "orders", "order", "dead-letters", "dead-letter", "login", "product-form", "products", "categories", "users"}
    taken = {os.path.basename(p)[:-4] for p in SHOTS}
    assert expected <= taken, expected - taken
    for path in SHOTS:
        assert os.path.getsize(path) > 5_000, path


def main():
    run("console browser tests", [
        test_1_overview_shows_the_database, test_2_new_order_appears_live_and_confirms_live,
        test_3_ship_and_deliver_from_the_order_page, test_4_dead_letter_replay_from_the_page,
        test_5_csrf_roles_and_sellers, test_6_screenshots_of_every_page])


if __name__ == "__main__":
    main()
