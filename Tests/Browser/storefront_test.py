"""The storefront in headless Chromium, against a running Emporium (scripts/browser-tests.sh
starts one with its own database and vhost; the fake provider takes 3 s per charge, so an
order page is open before its order is paid). Six tests, in order."""

import os
import uuid

from selenium.webdriver.common.by import By

from browser_support import BASE, SHOTS, make_driver, run, shot, sql, text, wait

STATE = {}
PASSWORD = "a long passphrase"


def sign_up(driver, next_path=None):
    """Creates an account through the sign-up form; returns its email."""
    email = "shop.%s@example.com" % uuid.uuid4().hex[:10]
    driver.get(BASE + "/signup" + ("?next=" + next_path if next_path else ""))
    driver.find_element(By.ID, "first_name").send_keys("Ann")
    driver.find_element(By.ID, "last_name").send_keys("Lee")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signup-submit").click()
    wait(driver, lambda d: d.find_elements(By.ID, "signout"), "the signed-in header")
    return email


def sign_in(driver, email):
    driver.delete_all_cookies()
    driver.get(BASE + "/signin")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin-submit").click()
    wait(driver, lambda d: d.find_elements(By.ID, "signout"), "the signed-in header")


def product_id(sku):
    return sql("SELECT id FROM products WHERE sku = '%s'" % sku)


def add_to_cart(driver, sku, quantity=1):
    driver.get(BASE + "/products/" + product_id(sku))
    box = driver.find_element(By.ID, "quantity")
    box.clear()
    box.send_keys(str(quantity))
    driver.find_element(By.ID, "add-to-cart").click()
    wait(driver, lambda d: d.find_elements(By.ID, "notice"), "the added-to-cart notice")


def fill_address(driver):
    new = driver.find_elements(By.ID, "address-new")
    if new:
        new[0].click()
    for field, value in (("line1", "1 Main St"), ("postal_code", "10115"), ("city", "Berlin"), ("country", "DE")):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)


def user_orders(email):
    return sql("SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email = '%s'" % email)


def test_1_visitor_searches_signs_up_buys_and_watches(driver):
    driver.delete_all_cookies()
    driver.get(BASE + "/")
    wait(driver, lambda d: d.find_elements(By.ID, "products"), "the home page")
    shot(driver, "shop-home")
    box = driver.find_element(By.ID, "q")
    box.send_keys("fountain pen")
    box.submit()
    wait(driver, lambda d: "Fountain pen" in (text(d, "#products") or ""), "the search result")
    shot(driver, "shop-search")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Fountain pen").click()
    wait(driver, lambda d: d.find_elements(By.ID, "add-to-cart"), "the product page")
    shot(driver, "shop-product")
    # Signed out, adding to the cart asks to sign in first; the visitor signs up instead.
    driver.find_element(By.ID, "add-to-cart").click()
    wait(driver, lambda d: "/signin" in d.current_url, "the sign-in page")
    shot(driver, "shop-signin")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Create an account").click()
    wait(driver, lambda d: d.find_elements(By.ID, "signup-form"), "the sign-up page")
    shot(driver, "shop-signup")
    email = sign_up(driver, next_path=driver.current_url.split("next=")[-1] if "next=" in driver.current_url else None)
    STATE["email"] = email
    add_to_cart(driver, "PEN-001", 1)
    add_to_cart(driver, "NOTE-001", 2)
    driver.get(BASE + "/cart")
    rows = driver.find_elements(By.CSS_SELECTOR, "#cart-lines tbody tr")
    assert len(rows) == 2, [r.text for r in rows]
    assert text(driver, "#cart-total") == "54.70 EUR", text(driver, "#cart-total")  # 34.90 + 2 × 9.90
    shot(driver, "shop-cart")
    driver.find_element(By.ID, "to-checkout").click()
    wait(driver, lambda d: d.find_elements(By.ID, "place-order"), "the checkout")
    fill_address(driver)
    shot(driver, "shop-checkout")
    driver.find_element(By.ID, "place-order").click()
    wait(driver, lambda d: d.find_elements(By.ID, "order-status"), "the order page")
    first = text(driver, "#order-status")
    assert first in ("PENDING", "AWAITING_PAYMENT"), "the order was %s when its page opened" % first
    driver.execute_script("window.__notReloaded = true;")
    wait(driver, lambda d: text(d, "#order-status") == "CONFIRMED", "CONFIRMED on the order page")
    assert driver.execute_script("return window.__notReloaded === true;"), "the order page was reloaded"
    assert "Confirmed" in text(driver, "#status-text")
    STATE["order"] = driver.current_url.rstrip("/").split("/")[-1]
    shot(driver, "shop-order")
    driver.get(BASE + "/orders")
    assert STATE["order"] in driver.page_source
    shot(driver, "shop-orders")


def test_2_double_submit_places_one_order(driver):
    email = STATE["email"]
    before = int(user_orders(email))
    add_to_cart(driver, "MUG-001", 1)
    driver.get(BASE + "/checkout")
    wait(driver, lambda d: d.find_elements(By.ID, "place-order"), "the checkout")
    fill_address(driver)
    # Two submits of the same form at once, as a double click sends them.
    urls = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const form = document.getElementById('checkout-form');
        const send = () => fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form)), credentials: 'same-origin'});
        Promise.all([send(), send()]).then(rs => done(rs.map(r => r.status + ' ' + r.url))).catch(e => done(String(e)));""")
    assert isinstance(urls, list) and len(urls) == 2, urls
    assert urls[0] == urls[1] and urls[0].startswith("200 ") and "/orders/" in urls[0], urls
    assert int(user_orders(email)) == before + 1, (before, user_orders(email))


def test_3_declined_card(driver):
    email = STATE["email"]
    stock = int(sql("SELECT stock FROM products WHERE sku = 'BAG-001'"))
    add_to_cart(driver, "BAG-001", 1)
    driver.get(BASE + "/checkout")
    wait(driver, lambda d: d.find_elements(By.ID, "place-order"), "the checkout")
    fill_address(driver)
    driver.find_element(By.ID, "card-declined").click()
    driver.find_element(By.ID, "place-order").click()
    wait(driver, lambda d: d.find_elements(By.ID, "order-status"), "the order page")
    wait(driver, lambda d: text(d, "#order-status") == "CANCELLED", "CANCELLED on the order page")
    assert "declined" in text(driver, "#status-text"), text(driver, "#status-text")
    order = driver.current_url.rstrip("/").split("/")[-1]
    assert sql("SELECT cancellation_reason FROM orders WHERE id = '%s'" % order) == "payment_failed"
    # The stock comes back once the stock worker has released the reservation.
    wait(driver, lambda d: int(sql("SELECT stock FROM products WHERE sku = 'BAG-001'")) == stock, "the stock back")
    assert email


def test_4_another_customer_cannot_see_the_order(driver):
    order = STATE["order"]
    driver.delete_all_cookies()
    sign_up(driver)
    driver.get(BASE + "/orders/" + order)
    assert text(driver, "#problem") == "order not found", text(driver, "#problem")
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/orders/%s/events', {credentials: 'same-origin'}).then(r => done(r.status)).catch(e => done(String(e)));""" % order)
    assert status == 404, status
    assert order not in driver.page_source or "order not found" in driver.page_source


def test_5_without_javascript(driver):
    plain = make_driver(javascript=False)
    try:
        email = sign_up(plain)
        plain.get(BASE + "/search?q=notebook")
        wait(plain, lambda d: "Dotted notebook" in (text(d, "#products") or ""), "the search without JavaScript")
        add_to_cart(plain, "NOTE-001", 1)
        plain.get(BASE + "/cart")
        quantity = plain.find_element(By.CSS_SELECTOR, "#cart-lines input[name=quantity]")
        quantity.clear()
        quantity.send_keys("3")
        plain.find_element(By.CSS_SELECTOR, "#cart-lines button.secondary").click()
        wait(plain, lambda d: text(d, "#cart-total") == "29.70 EUR", "the updated cart")
        plain.get(BASE + "/checkout")
        fill_address(plain)
        plain.find_element(By.ID, "place-order").click()
        wait(plain, lambda d: d.find_elements(By.ID, "order-status"), "the order page")
        order = plain.current_url.rstrip("/").split("/")[-1]

        def confirmed_after_reload(d):
            d.refresh()
            return text(d, "#order-status") == "CONFIRMED"
        wait(plain, confirmed_after_reload, "CONFIRMED after a reload")
        assert int(user_orders(email)) == 1
        assert sql("SELECT status FROM orders WHERE id = '%s'" % order) == "CONFIRMED"
    finally:
        plain.quit()


def test_6_screenshots_at_desktop_and_phone_width(driver):
    sign_in(driver, STATE["email"])
    add_to_cart(driver, "TEE-001", 1)
    pages = [("shop-home", "/"), ("shop-search", "/search?q=pen"), ("shop-product", "/products/" + product_id("PEN-001")),
             ("shop-cart", "/cart"), ("shop-checkout", "/checkout"), ("shop-orders", "/orders"), ("shop-order", "/orders/" + STATE["order"])]
    for width, height, suffix in ((1200, 900, ""), (390, 844, "-phone")):
        driver.set_window_size(width, height)
        for name, path in pages:
            driver.get(BASE + path)
            wait(driver, lambda d: d.find_elements(By.ID, "main"), name)
            shot(driver, name + suffix)
        driver.delete_all_cookies()
        for name, path in (("shop-signin", "/signin"), ("shop-signup", "/signup")):
            driver.get(BASE + path)
            wait(driver, lambda d: d.find_elements(By.ID, "main"), name)
            shot(driver, name + suffix)
        sign_in(driver, STATE["email"])
    driver.set_window_size(1200, 900)
    # The phone layout fits: nothing wider than the screen.
    driver.set_window_size(390, 844)
    driver.get(BASE + "/products/" + product_id("PEN-001"))
    overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
    assert overflow <= 0, "the product page is %d px wider than a phone" % overflow
    driver.set_window_size(1200, 900)
    names = {os.path.basename(p)[:-4] for p in SHOTS}
    for name, _ in pages + [("shop-signin", ""), ("shop-signup", "")]:
        assert name in names and name + "-phone" in names, name


def main():
    run("storefront browser tests", [
        test_1_visitor_searches_signs_up_buys_and_watches, test_2_double_submit_places_one_order, test_3_declined_card,
        test_4_another_customer_cannot_see_the_order, test_5_without_javascript, test_6_screenshots_at_desktop_and_phone_width],
        network_check=False)


if __name__ == "__main__":
    main()
