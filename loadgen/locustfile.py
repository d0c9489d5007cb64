"""A shopper's journey through the shop, for Locust.

Each simulated user browses the catalogue and its categories, looks up prices
(one by one and in bulk), fills a cart, places the order with an
Idempotency-Key (and sometimes retries it, as a flaky network would), reads the
order and the order history back, and cancels some orders.

Settings (environment variables):
  INVENTORY_URL, PRICING_URL, ORDER_URL   base URLs (default: the local stack)
  CANCEL_SHARE                            share of orders cancelled (default 0.2)
  MAX_FAILURE_RATIO                       the run fails (exit code 1) above this
                                          share of failed requests (default 0.2;
                                          the demo chaos alone fails ~4%)
Users, spawn rate and duration are Locust's own options (see scripts/loadgen.sh).
"""

import os
import random
import uuid

from locust import HttpUser, SequentialTaskSet, between, events, task

INVENTORY = os.environ.get("INVENTORY_URL", "http://localhost:7001").rstrip("/")
PRICING = os.environ.get("PRICING_URL", "http://localhost:7003").rstrip("/")
ORDER = os.environ.get("ORDER_URL", "http://localhost:7002").rstrip("/")
CANCEL_SHARE = float(os.environ.get("CANCEL_SHARE", "0.2"))
MAX_FAILURE_RATIO = float(os.environ.get("MAX_FAILURE_RATIO", "0.2"))

# Outcomes of the order flow that are answers, not failures.
ORDER_ANSWERS = {200, 201, 409}
# What the run saw of the resilience features.
OUTCOMES = {"live": 0, "fallback": 0, "pending_pricing": 0, "insufficient_stock": 0}


class ShopperJourney(SequentialTaskSet):
    def on_start(self):
        self.customer = f"load-{uuid.uuid4().hex[:8]}"
        self.items = []
        self.cart = {}
        self.order_id = None

    @task
    def browse_catalogue(self):
        with self.client.get(f"{INVENTORY}/items", name="GET /items", catch_response=True) as res:
            if res.status_code == 200:
                self.items = [i for i in res.json()["items"] if i["stock"] > 0]
                res.success()
        self.client.get(f"{INVENTORY}/categories", name="GET /categories")
        category = random.choice(["electronics", "furniture", "grocery"])
        self.client.get(f"{INVENTORY}/items?category={category}", name="GET /items?category")

    @task
    def look_up_prices(self):
        if not self.items:
            return
        picks = random.sample(self.items, k=min(3, len(self.items)))
        for item in picks:
            self.client.get(f"{PRICING}/price/{item['sku']}", name="GET /price/{sku}")
            self.client.get(f"{INVENTORY}/items/{item['sku']}", name="GET /items/{sku}")
        self.client.post(
            f"{PRICING}/price/bulk",
            json={"items": [{"sku": i["sku"], "quantity": random.randint(1, 12)} for i in picks]},
            name="POST /price/bulk",
        )

    @task
    def fill_cart(self):
        self.cart = {}
        for item in random.sample(self.items, k=min(random.randint(1, 3), len(self.items))):
            self.cart[item["sku"]] = random.randint(1, 2)

    @task
    def place_order(self):
        if not self.cart:
            return
        body = {
            "customer_id": self.customer,
            "items": [{"sku": s, "quantity": q} for s, q in self.cart.items()],
        }
        key = str(uuid.uuid4())
        for attempt in range(2 if random.random() < 0.1 else 1):  # 10% retry the same key
            with self.client.post(
                f"{ORDER}/orders",
                json=body,
                headers={"Idempotency-Key": key},
                name="POST /orders" if attempt == 0 else "POST /orders (retry)",
                catch_response=True,
            ) as res:
                if res.status_code in ORDER_ANSWERS:
                    res.success()
                    order = res.json()
                    if res.status_code == 409:
                        OUTCOMES["insufficient_stock"] += order.get("code") == "insufficient_stock"
                        self.order_id = None
                        continue
                    self.order_id = order["order_id"]
                    if attempt == 0:
                        OUTCOMES[order.get("pricing") or "live"] += 1
                        OUTCOMES["pending_pricing"] += order["status"] == "pending_pricing"
                else:
                    res.failure(f"{res.status_code}: {res.text[:200]}")

    @task
    def read_back(self):
        if self.order_id:
            self.client.get(f"{ORDER}/orders/{self.order_id}", name="GET /orders/{id}")
        self.client.get(f"{ORDER}/orders?customer_id={self.customer}", name="GET /orders?customer_id")

    @task
    def maybe_cancel(self):
        if self.order_id and random.random() < CANCEL_SHARE:
            self.client.post(
                f"{ORDER}/orders/{self.order_id}/cancel", json={}, name="POST /orders/{id}/cancel"
            )


class Shopper(HttpUser):
    host = ORDER
    wait_time = between(0.2, 1.0)
    tasks = [ShopperJourney]


@events.quitting.add_listener
def summary(environment, **_kwargs):
    total = environment.stats.total
    ratio = total.fail_ratio
    orders = OUTCOMES["live"] + OUTCOMES["fallback"]
    fallback_share = OUTCOMES["fallback"] / orders if orders else 0.0
    print(
        f"SUMMARY requests={total.num_requests} failures={total.num_failures} "
        f"failure_ratio={ratio:.3f} rps={total.total_rps:.1f} "
        f"p50_ms={total.get_response_time_percentile(0.5):.0f} "
        f"p99_ms={total.get_response_time_percentile(0.99):.0f} "
        f"orders={orders} fallback_share={fallback_share:.2f} "
        f"pending_pricing={OUTCOMES['pending_pricing']} "
        f"insufficient_stock={OUTCOMES['insufficient_stock']}"
    )
    # Locust fails the run on any failed request; the demo chaos fails some on
    # purpose, so the bar is the failure ratio instead.
    environment.process_exit_code = 0
    if ratio > MAX_FAILURE_RATIO:
        print(f"FAILED: failure ratio {ratio:.3f} is above MAX_FAILURE_RATIO={MAX_FAILURE_RATIO}")
        environment.process_exit_code = 1
