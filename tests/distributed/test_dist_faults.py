"""Server faults in distributed mode: the Kafka broker stopped mid-sale (503 with nothing
reserved, /readyz says why, sales resume afterwards and nothing is lost), the broker frozen
with an order on the wire (503 UNKNOWN with the order id, the reservation kept, the order
lands once the broker thaws) and Redis restarted (AOF: the server reconnects, no oversell
across the restart)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from dist_harness import running_stack, wait_orders
from harness import Storm, assert_sale, tally, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory) as (b, (s,), consumer):
        yield b, s, consumer


def test_kafka_broker_down_refuses_with_503_and_restores_the_reservation(stack):
    b, s, consumer = stack
    s.put_product(501, 100, 5.0, limit_per_user=2, expect=(201,))
    accepted = [assert_sale(s.purchase(u, 501), "ACCEPTED")["order_id"] for u in range(1, 6)]
    b.control("kafka", "stop")
    try:
        refused: list = []

        def fire(u: int) -> None:
            refused.append((u, s.purchase(u, 501)))

        threads = [threading.Thread(target=fire, args=(u,)) for u in range(100, 110)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for u, r in refused:
            assert r.status == 503, f"user {u}: expected 503 while the broker is down, got {r!r}"
            assert r.header("Retry-After"), r
            # Definite: the message never left the producer, so the reservation was rolled back.
            assert r.json()["status"] == "UNAVAILABLE", r.json()
        # Nothing reserved: stock and per-user records restored.
        assert s.remaining(501) == 95
        assert b.redis_cli("HGET", "item:{501}:buyers", "100") in ("", "0")
        ready = s.call("GET", "/readyz")
        assert ready.status == 503 and ready.json()["checks"]["kafka"] != "ok", ready
    finally:
        b.control("kafka", "start")
    # Sales resume once the producer reconnects.
    def resumed() -> bool:
        r = s.purchase(200, 501)
        if r.status == 200 and r.json()["status"] == "ACCEPTED":
            accepted.append(r.json()["order_id"])
            return True
        return False

    wait_until(resumed, 90, "a purchase accepted after the broker came back", interval=1.0)
    for u in range(201, 206):
        accepted.append(assert_sale(s.purchase(u, 501), "ACCEPTED")["order_id"])
    wait_orders(b, len(accepted), timeout=120, consumer=consumer)
    assert set(accepted) == set(b.orders())
    assert s.remaining(501) == 100 - len(accepted)


def test_broker_frozen_after_the_send_answers_unknown_and_keeps_the_reservation(stack):
    b, s, consumer = stack
    base = b.order_count()  # earlier tests of the module waited for theirs
    s.put_product(502, 10, 5.0, limit_per_user=1, expect=(201,))
    assert_sale(s.purchase(1, 502), "ACCEPTED")  # producer connected, topic metadata known
    # SIGSTOP keeps the broker's sockets open: the produce request is written and never
    # answered, so librdkafka can only say "possibly persisted" when the hand-off timeout
    # (--kafka-timeout-ms 3000 in the harness) ends.
    b.signal_server("kafka", signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = s.purchase(2, 502)
        waited = time.monotonic() - t0
    finally:
        b.signal_server("kafka", signal.SIGCONT)
    assert r.status == 503, f"expected 503 while the broker is frozen, got {r!r}"
    body = r.json()
    assert body["status"] == "UNKNOWN", body
    assert r.header("Retry-After"), r
    order_id = body.get("order_id") or (body.get("data") or {}).get("order_id")
    assert order_id, f"an UNKNOWN answer names the order to query: {body}"
    assert waited >= 2.5, f"answered after {waited:.1f} s, before the 3 s hand-off timeout"
    # The reservation stays (the order may be in Kafka): 2 units out of 10 are held.
    assert s.remaining(502) == 8
    assert b.redis_cli("HGET", "item:{502}:buyers", "2") == "1"
    # The request was on the wire: once the broker thaws it is appended and persisted.
    wait_orders(b, base + 2, timeout=90, consumer=consumer)
    assert order_id in b.orders(), f"{order_id} not in the database: {sorted(b.orders())}"
    wait_until(lambda: s.call("GET", f"/orders/{order_id}").json().get("status") == "CONFIRMED",
               30, "GET /orders/{id} of the UNKNOWN order answers CONFIRMED")
    # Sales go on, and the user who got UNKNOWN holds the unit: limit reached.
    assert_sale(s.purchase(3, 502), "ACCEPTED")
    assert_sale(s.purchase(2, 502), "LIMIT_EXCEEDED")


def test_redis_restart_reconnects_without_oversell(stack):
    b, s, consumer = stack
    stock = 300
    s.put_product(510, stock, 1.0, limit_per_user=1, expect=(201,))
    before = b.order_count()
    plan = [(u, 510, 1) for u in range(50_000, 50_600)]
    storm = Storm(s.port, plan[:300], connections=16).start()
    time.sleep(0.3)
    b.control("redis", "restart")
    outcomes = storm.join(120)
    # Requests during the restart may fail with 503; every other answer is a sale outcome.
    wait_until(lambda: s.call("GET", "/readyz").status == 200, 30, "ready again after the restart")
    outcomes += Storm(s.port, plan[300:], connections=16).run(timeout=120)
    t = tally(o for o in outcomes if o.http_status != 503)
    assert not t.unanswered, t.unanswered[:3]
    # A script sent just before the restart may have run or not: answered 503 UNKNOWN, its
    # unit stays reserved (SPEC §1; `audit --repair` returns it after a grace period).
    unknown = sum(1 for o in outcomes if o.http_status == 503 and o.status == "UNKNOWN")
    accepted = t.units.get(510, 0)
    assert accepted <= stock, f"oversold: accepted {accepted} > stock {stock}"
    assert accepted + unknown >= stock, f"undersold: accepted {accepted} + unknown {unknown} < {stock}"
    assert s.remaining(510) == 0
    wait_orders(b, before + len(t.accepted), timeout=90, consumer=consumer)
    # The count above may include stragglers of other tests: wait for this product's own.
    wait_until(lambda: int(b.sql("SELECT count(*) FROM orders WHERE product_id = 510")[0][0])
               >= len(t.accepted), 90, "every accepted order of product 510 stored")
    sold = int(b.sql("SELECT sold FROM products WHERE product_id = 510")[0][0])
    assert sold == accepted
    failed = b.sql("SELECT count(*) FROM orders WHERE status = 'FAILED'")[0][0]
    assert failed == "0"


def test_redis_down_readyz_names_it_and_sales_resume(stack):
    b, s, consumer = stack
    s.put_product(520, 10, 1.0, limit_per_user=1, expect=(201,))
    before = b.order_count()
    b.control("redis", "stop")
    try:
        ready = s.call("GET", "/readyz")
        assert ready.status == 503, ready
        assert ready.json()["checks"]["redis"] != "ok" and ready.json()["checks"]["kafka"] == "ok", ready
        r = s.purchase(60_000, 520)
        assert r.status == 503 and r.header("Retry-After"), r
        assert s.call("GET", "/healthz").status == 200  # alive, just not ready
    finally:
        b.control("redis", "start")
    wait_until(lambda: s.call("GET", "/readyz").status == 200, 30, "ready again")
    ids = [assert_sale(s.purchase(u, 520), "ACCEPTED")["order_id"] for u in range(60_001, 60_004)]
    wait_orders(b, before + len(ids), timeout=60, consumer=consumer)
    assert set(ids) <= set(b.orders())
