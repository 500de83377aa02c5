#!/usr/bin/env python3
"""The bench's peer row: a django-oscar shop with django-oscar-api, measured the way Emporium's
phase (c') measures whole purchases: closed loop, each client adding three products to its
basket over the REST API and then checking out, for a fixed time.

  oscar_peer.py setup          migrate the peer database (PEER_DATABASE_URL), add a country,
                               a partner and 100 products in stock; prints their ids as JSON
  oscar_peer.py load URL N S   N clients for S seconds against the shop at URL; prints JSON:
                               {"orders": placed, "errors": n, "seconds": s, "per_second": r}

Run with the peer virtualenv's Python, from this directory (bench.py does both, and serves the
shop with gunicorn); nothing here is Emporium's code."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oscar_settings")


def setup():
    import django
    from decimal import Decimal

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from oscar.core.loading import get_model

    Country = get_model("address", "Country")
    Partner = get_model("partner", "Partner")
    Product = get_model("catalogue", "Product")
    ProductClass = get_model("catalogue", "ProductClass")
    StockRecord = get_model("partner", "StockRecord")
    Country.objects.update_or_create(iso_3166_1_a2="DE", defaults={
        "iso_3166_1_a3": "DEU", "iso_3166_1_numeric": "276", "name": "Germany", "printable_name": "Germany", "is_shipping_country": True})
    kind, _ = ProductClass.objects.get_or_create(name="Bench", defaults={"requires_shipping": True, "track_stock": True})
    partner, _ = Partner.objects.get_or_create(name="Bench partner")
    ids = []
    for index in range(100):
        product, created = Product.objects.get_or_create(upc=f"BENCH-{index}", defaults={
            "title": f"Bench item {index}", "product_class": kind, "structure": "standalone", "is_public": True})
        if created:
            StockRecord.objects.create(product=product, partner=partner, partner_sku=f"BENCH-{index}", price=Decimal("10.00"),
                                       price_currency="EUR", num_in_stock=100_000_000)
        ids.append(product.id)
    print(json.dumps({"products": ids}))


def load(url, clients, seconds, products):
    import random

    import requests

    address = {"first_name": "Bench", "last_name": "User", "line1": "1 Bench Street", "line4": "Berlin", "postcode": "10115",
               "country": f"{url}/api/countries/DE/"}
    stop_at = time.monotonic() + seconds
    counts = {"orders": 0, "errors": 0}
    lock = threading.Lock()

    def client(number):
        session = requests.Session()
        while time.monotonic() < stop_at:
            try:
                basket = None
                for product in random.sample(products, 3):
                    answer = session.post(f"{url}/api/basket/add-product/", json={"url": f"{url}/api/products/{product}/", "quantity": 1}, timeout=30)
                    answer.raise_for_status()
                    basket = answer.json()["url"]
                answer = session.post(f"{url}/api/checkout/", json={"basket": basket, "guest_email": f"bench-{number}@example.com",
                                                                   "shipping_address": address}, timeout=30)
                answer.raise_for_status()
                with lock:
                    counts["orders"] += 1
            except (requests.RequestException, KeyError, ValueError) as error:
                with lock:
                    counts["errors"] += 1
                    if counts["errors"] <= 3:
                        print(f"oscar_peer: {error}", file=sys.stderr)

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    print(json.dumps({"orders": counts["orders"], "errors": counts["errors"], "seconds": round(elapsed, 1),
                      "per_second": round(counts["orders"] / elapsed, 2)}))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "setup":
        setup()
    elif len(sys.argv) == 6 and sys.argv[1] == "load":
        load(sys.argv[2].rstrip("/"), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))
    else:
        print("usage: oscar_peer.py setup | oscar_peer.py load URL CLIENTS SECONDS PRODUCT_IDS_JSON", file=sys.stderr)
        sys.exit(64)
