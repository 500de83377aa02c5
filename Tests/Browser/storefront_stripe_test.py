"""The storefront's checkout with Stripe, in headless Chromium: an Emporium with
PAYMENT_PROVIDER=stripe and a publishable key (scripts/browser-tests.sh starts one), localstripe
playing Stripe's API, its Stripe.js (the card field and the 3-D Secure prompt) and its signed
webhooks. The order moves only on Stripe's webhook. Five tests, in order."""

import base64
import json
import os
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By

from selenium.webdriver.common.keys import Keys

from browser_support import BASE, run, shot, sql, text, wait
from storefront_test import add_to_cart, fill_address, sign_in, sign_up

STRIPE = os.environ["LOCALSTRIPE_URL"]
SECRET_KEY = os.environ["STRIPE_SECRET_KEY"]
STATE = {}


def stripe_api(path):
    """A GET from localstripe's API with the stack's secret key."""
    request = urllib.request.Request(STRIPE + path)
    request.add_header("Authorization", "Basic " + base64.b64encode((SECRET_KEY + ":").encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode())


def network(driver):
    """Requests the browser sent since the last call: (url, body)."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            sent.append((request["url"], request.get("postData", "")))
    return sent


def checkout_to_pay_page(driver, sku):
    """A new customer puts `sku` in the cart and checks out paying by card: the pay page."""
    driver.delete_all_cookies()
    email = sign_up(driver)
    add_to_cart(driver, sku, 1)
    driver.get(BASE + "/checkout")
    wait(driver, lambda d: d.find_elements(By.ID, "place-order"), "the checkout")
    assert driver.find_element(By.ID, "pay-by-card").is_selected(), "paying by card is not the checkout's choice"
    assert not driver.find_elements(By.ID, "payment_method"), "the checkout still asks for a payment method id"
    fill_address(driver)
    driver.find_element(By.ID, "place-order").click()
    wait(driver, lambda d: d.current_url.endswith("/pay"), "the pay page")
    order = driver.current_url.rstrip("/").split("/")[-2]
    # While the items are reserved the page reloads itself; then Stripe's card field appears.
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#card-element input"), "Stripe's card field")
    return email, order


def type_card(driver, number):
    for placeholder, value in (("number", number), ("exp_month", "12"), ("exp_year", "30"), ("cvc", "123"), ("postal_code", "10115")):
        driver.find_element(By.CSS_SELECTOR, "#card-element input[placeholder='%s']" % placeholder).send_keys(value)


def answer_bank(driver, confirm):
    """Stripe.js's 3-D Secure prompt (localstripe's): confirm or fail it."""
    label = "Complete authentication" if confirm else "Fail authentication"
    button = wait(driver, lambda d: d.find_elements(By.XPATH, "//button[text()='%s']" % label), "the bank's 3-D Secure prompt")
    shot(driver, "shop-pay-3ds")
    button[0].click()


def intents_of(order):
    return [i for i in stripe_api("/v1/payment_intents?limit=100")["data"] if (i.get("metadata") or {}).get("order_id") == order]


def test_1_card_with_3d_secure_pays_and_the_webhook_confirms(driver):
    network(driver)
    email, order = checkout_to_pay_page(driver, "PEN-001")
    STATE["email"] = email
    assert sql("SELECT status FROM orders WHERE id = '%s'" % order) == "AWAITING_PAYMENT"
    shot(driver, "shop-pay")
    type_card(driver, "4000002500003155")
    driver.find_element(By.ID, "pay-button").click()
    answer_bank(driver, True)  # the card is set up with Stripe...
    answer_bank(driver, True)  # ...and the payment confirmed with the bank
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/orders/" + order), "the order page")
    wait(driver, lambda d: text(d, "#order-status") == "CONFIRMED", "CONFIRMED on the order page (Stripe's webhook)")
    shot(driver, "shop-pay-confirmed")
    assert sql("SELECT count(*) FROM payments WHERE order_id = '%s' AND status = 'SUCCEEDED' AND provider = 'stripe'" % order) == "1"
    succeeded = [i for i in intents_of(order) if i["status"] == "succeeded"]
    assert len(succeeded) == 1 and succeeded[0]["amount"] == int(sql("SELECT total_cents FROM orders WHERE id = '%s'" % order)), succeeded
    # The card number went to Stripe, never to the shop.
    sent = network(driver)
    to_shop = [url for url, body in sent if url.startswith(BASE + "/") and "4000002500003155" in (url + body)]
    to_stripe = [url for url, body in sent if url.startswith(STRIPE + "/") and "4000002500003155" in body]
    assert not to_shop, to_shop
    assert to_stripe, "no request carried the card to Stripe: %s" % [u for u, _ in sent]


def test_2_card_refused_by_stripe_then_another_card(driver):
    _, order = checkout_to_pay_page(driver, "NOTE-001")
    type_card(driver, "4000000000000002")  # declined when Stripe checks it
    driver.find_element(By.ID, "pay-button").click()
    wait(driver, lambda d: d.find_element(By.ID, "pay-problem").is_displayed(), "the card's refusal on the page")
    assert "declined" in text(driver, "#pay-problem").lower(), text(driver, "#pay-problem")
    shot(driver, "shop-pay-refused")
    assert sql("SELECT status FROM orders WHERE id = '%s'" % order) == "AWAITING_PAYMENT"
    assert not [i for i in intents_of(order) if i["status"] == "succeeded"]
    driver.refresh()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#card-element input"), "Stripe's card field again")
    type_card(driver, "4242424242424242")
    driver.find_element(By.ID, "pay-button").click()
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/orders/" + order), "the order page")
    wait(driver, lambda d: text(d, "#order-status") == "CONFIRMED", "CONFIRMED on the order page")
    assert len([i for i in intents_of(order) if i["status"] == "succeeded"]) == 1


def test_3_failed_3d_secure_then_another_card_charges_once(driver):
    _, order = checkout_to_pay_page(driver, "MUG-001")
    type_card(driver, "4000002760003184")  # always asks the customer
    driver.find_element(By.ID, "pay-button").click()
    answer_bank(driver, True)   # set up...
    answer_bank(driver, False)  # ...but the payment is not confirmed with the bank
    wait(driver, lambda d: d.find_element(By.ID, "pay-problem").is_displayed(), "the bank's refusal on the page")
    assert "did not confirm" in text(driver, "#pay-problem"), text(driver, "#pay-problem")
    assert sql("SELECT status FROM orders WHERE id = '%s'" % order) == "AWAITING_PAYMENT"
    # The same form, another card: the same PaymentIntent is paid once.
    for box in driver.find_elements(By.CSS_SELECTOR, "#card-element input"):
        box.send_keys(Keys.CONTROL, "a")  # select all, delete: the field's input events fire
        box.send_keys(Keys.BACKSPACE)
    type_card(driver, "4242424242424242")
    driver.find_element(By.ID, "pay-button").click()
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/orders/" + order), "the order page")
    wait(driver, lambda d: text(d, "#order-status") == "CONFIRMED", "CONFIRMED on the order page")
    intents = intents_of(order)
    assert len(intents) == 1 and intents[0]["status"] == "succeeded", [(i["id"], i["status"]) for i in intents]
    assert sql("SELECT count(*) FROM payments WHERE order_id = '%s' AND status = 'SUCCEEDED'" % order) == "1"


def test_4_card_declined_at_the_charge_cancels_and_gives_the_stock_back(driver):
    stock = int(sql("SELECT stock FROM products WHERE sku = 'BAG-001'"))
    _, order = checkout_to_pay_page(driver, "BAG-001")
    type_card(driver, "4000000000000341")  # set up fine, declined when charged
    driver.find_element(By.ID, "pay-button").click()
    wait(driver, lambda d: d.current_url.rstrip("/").endswith("/orders/" + order), "the order page")
    wait(driver, lambda d: text(d, "#order-status") == "CANCELLED", "CANCELLED on the order page (Stripe's webhook)")
    assert "declined" in text(driver, "#status-text"), text(driver, "#status-text")
    assert sql("SELECT cancellation_reason FROM orders WHERE id = '%s'" % order) == "payment_failed"
    wait(driver, lambda d: int(sql("SELECT stock FROM products WHERE sku = 'BAG-001'")) == stock, "the stock back")


def test_5_the_pay_page_is_the_owners_and_only_it_allows_stripe(driver):
    email, order = checkout_to_pay_page(driver, "PEN-001")
    # The owner's page, with its CSRF token, sending something that is not Stripe's pm_ id.
    refused = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('input[name=csrf]').value;
        fetch(location.pathname, {method: 'POST', body: new URLSearchParams({csrf, payment_method: 'tok_visa'}), credentials: 'same-origin'})
          .then(r => r.json().then(j => done([r.status, j.message]))).catch(e => done(String(e)));""")
    assert refused[0] == 422 and "pm_" in refused[1], refused
    # A malformed order id in the script's call is a 404 in JSON, not a page.
    malformed = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('input[name=csrf]').value;
        fetch('/orders/not-an-order/pay/setup', {method: 'POST', body: new URLSearchParams({csrf}), credentials: 'same-origin'})
          .then(r => done([r.status, r.headers.get('Content-Type') || ''])).catch(e => done(String(e)));""")
    assert malformed[0] == 404 and "json" in malformed[1], malformed
    cookies = "; ".join("%s=%s" % (c["name"], c["value"]) for c in driver.get_cookies())

    def fetch(path, data=None):
        request = urllib.request.Request(BASE + path, data=data)
        request.add_header("Cookie", cookies)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)

    status, headers = fetch("/orders/%s/pay" % order)
    policy = headers.get("Content-Security-Policy", "")
    assert status == 200 and STRIPE in policy and "frame-ancestors 'none'" in policy, (status, policy)
    assert headers.get("Cache-Control") == "no-store", headers
    status, headers = fetch("/orders/%s" % order)
    assert status == 200 and STRIPE not in headers.get("Content-Security-Policy", ""), headers
    # A confirm without the form's CSRF token is refused and charges nothing.
    status, _ = fetch("/orders/%s/pay" % order, data=b"payment_method=pm_forged")
    assert status == 403, status
    # The order page offers to pay while the order waits for its payment.
    driver.get(BASE + "/orders/" + order)
    wait(driver, lambda d: d.find_elements(By.ID, "pay-link"), "the Pay now link")
    # Another customer: the pay page is a 404 and its setup call is refused.
    driver.delete_all_cookies()
    sign_up(driver)
    driver.get(BASE + "/orders/%s/pay" % order)
    wait(driver, lambda d: "404" in (text(d, "h1") or ""), "a 404 for another customer's pay page")
    refused = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('input[name=csrf]').value;
        fetch('/orders/%s/pay/setup', {method: 'POST', body: new URLSearchParams({csrf}), credentials: 'same-origin'})
          .then(r => done(r.status)).catch(e => done(String(e)));""" % order)
    assert refused == 404, refused
    assert all(i["status"] != "succeeded" for i in intents_of(order))
    # Back as the owner, at a phone's width: the pay page fits.
    sign_in(driver, email)
    driver.set_window_size(390, 844)
    try:
        driver.get(BASE + "/orders/%s/pay" % order)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#card-element input"), "Stripe's card field on a phone")
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), "the pay page scrolls sideways"
        shot(driver, "shop-pay-phone")
    finally:
        driver.set_window_size(1200, 900)


def main():
    run("storefront with Stripe browser tests", [
        test_1_card_with_3d_secure_pays_and_the_webhook_confirms, test_2_card_refused_by_stripe_then_another_card,
        test_3_failed_3d_secure_then_another_card_charges_once, test_4_card_declined_at_the_charge_cancels_and_gives_the_stock_back,
        test_5_the_pay_page_is_the_owners_and_only_it_allows_stripe],
        network_check=False)


if __name__ == "__main__":
    main()
