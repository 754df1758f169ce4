# Locust scenario of the seed project: simulated shoppers hammering POST /purchase.
#
# Each simulated user picks a user_id in 0..199 once, at start, then every 0.5-2.5 s
# buys 1 unit of a random product in 10000000..10009999 (the default mock catalog of
# `flashsale serve`).  Only HTTP 200 and 400 count as success: every sale outcome
# (ACCEPTED, SOLD_OUT, LIMIT_EXCEEDED, ...) is HTTP 200; anything else (404, 422,
# 5xx, connection errors) is a failure.
#
# Web UI (then open http://localhost:8089, enter users / spawn rate, "Start swarming"):
#     locust -f scripts/mock_user_orders.py
#
# Headless (what scripts/load_test.sh runs against a fresh server):
#     locust -f scripts/mock_user_orders.py --headless -u 200 -r 50 -t 30s --host http://127.0.0.1:8000
#
# The target defaults to http://127.0.0.1:8000; --host (or the web UI field) overrides it.

import random

from locust import HttpUser, between, task

USER_ID_MIN, USER_ID_MAX = 0, 199
PRODUCT_ID_MIN, PRODUCT_ID_MAX = 10000000, 10009999


class FlashSaleUser(HttpUser):
    host = "http://127.0.0.1:8000"
    wait_time = between(0.5, 2.5)

    def on_start(self):
        self.user_id = random.randint(USER_ID_MIN, USER_ID_MAX)

    @task
    def purchase(self):
        payload = {
            "user_id": self.user_id,
            "product_id": random.randint(PRODUCT_ID_MIN, PRODUCT_ID_MAX),
            "amount": 1,
        }
        with self.client.post("/purchase", json=payload, name="/purchase",
                              catch_response=True) as response:
            if response.status_code in (200, 400):
                response.success()
            else:
                detail = response.error if response.status_code == 0 else (response.text or "")[:200]
                response.failure(f"HTTP {response.status_code}: {detail}")
