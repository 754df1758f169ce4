"""The order path of distributed mode: PENDING while in flight, CONFIRMED once `flashsale
consume` ran; kill -9 of the consumer mid-stream loses and duplicates nothing; PostgreSQL
down makes the consumer wait and retry; poison messages go to the DLQ without blocking;
an order the database refuses goes to the DLQ while the rest of its batch lands; `consume
--drain` with several workers persists what the topic holds and exits."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from dist_harness import Consumer, running_stack, wait_orders
from harness import Storm, assert_sale, describe_cli, run_cli, tally, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory, consumer=False) as (b, (s,), _):
        yield b, s, tmp_path_factory


def test_order_is_pending_until_the_consumer_runs(stack):
    b, s, tmp = stack
    s.put_product(401, 5, 12.5, expect=(201,))
    body = assert_sale(s.purchase(1, 401), "ACCEPTED")
    order = s.get_json(f"/orders/{body['order_id']}")
    assert order["status"] == "PENDING", order
    assert (order["user_id"], order["product_id"], order["amount"]) == (1, 401, 1)
    assert order["price"] == 12.5
    consumer = Consumer(tmp.mktemp("c1"), b, extra=["--workers", "1"]).start()  # default: 2
    try:
        wait_until(lambda: s.get_json(f"/orders/{body['order_id']}")["status"] == "CONFIRMED", 30,
                   "order CONFIRMED")
        assert [o["order_id"] for o in s.get_json("/users/1/orders")] == [body["order_id"]]
    finally:
        assert consumer.stop() == 0


def test_kill9_of_the_consumer_mid_stream_loses_and_duplicates_nothing(stack):
    b, s, tmp = stack
    products = {410 + i: (300, 1) for i in range(6)}
    for pid, (stock, limit) in products.items():
        s.put_product(pid, stock, 1.0, limit_per_user=limit, expect=(201,))
    plan = [(u, pid, 1) for pid in products for u in range(20_000, 20_300)]
    random.Random(3).shuffle(plan)
    # Two workers (the default; two members of the group in one process): kill -9 takes both
    # down at once.
    consumer = Consumer(tmp.mktemp("c2"), b, extra=["--batch-size", "100", "--workers", "2"]).start()
    storm = Storm(s.port, plan, connections=32).start()
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and kills < 3:
        time.sleep(0.7)
        if b.order_count() > 200 * (kills + 1):
            consumer.kill9()
            kills += 1
            consumer.start()
    outcomes = storm.join(150)
    t = tally(outcomes)
    assert not t.unanswered and not t.bad, (t.unanswered[:3], t.bad[:3])
    assert kills >= 1, "the consumer was never killed mid-stream (too fast?)"
    expected = len(t.accepted) + 1  # + the order of the previous test
    wait_orders(b, expected, timeout=90, consumer=consumer)
    assert consumer.stop() == 0
    stored = b.orders()
    assert set(t.accepted) <= set(stored)
    assert len(stored) == expected, "duplicate or unexpected orders in the database"
    dup = b.sql("SELECT order_id FROM orders GROUP BY order_id HAVING count(*) > 1")
    assert not dup
    for pid, (stock, _) in products.items():
        assert t.units.get(pid, 0) == stock


def test_postgres_down_the_consumer_waits_and_every_order_lands_once(stack):
    b, s, tmp = stack
    s.put_product(420, 50, 2.0, limit_per_user=1, expect=(201,))
    consumer = Consumer(tmp.mktemp("c3"), b).start()
    before = b.order_count()
    b.control("postgres", "stop")
    try:
        accepted = []
        for u in range(30_000, 30_040):
            accepted.append(assert_sale(s.purchase(u, 420), "ACCEPTED")["order_id"])
        ready = s.call("GET", "/readyz")
        assert ready.status == 503 and ready.json()["checks"]["database"] != "ok", ready
        time.sleep(3)  # the consumer retries meanwhile
        assert consumer.alive(), consumer.log_tail()
    finally:
        b.control("postgres", "start")
    wait_orders(b, before + len(accepted), timeout=60, consumer=consumer)
    stored = b.orders()
    assert set(accepted) <= set(stored)
    assert len(stored) == before + len(accepted)
    assert "retrying" in consumer.output()
    assert consumer.stop() == 0


def test_poison_messages_go_to_the_dlq_and_the_partition_keeps_flowing(stack):
    b, s, tmp = stack
    s.put_product(430, 10, 1.0, limit_per_user=1, expect=(201,))
    consumer = Consumer(tmp.mktemp("c4"), b).start()
    before = b.order_count()
    # Same key as the product's orders: same partition as the good ones that follow.
    b.produce_raw("product_orders", "430", b"{not json")
    unknown = {"order_id": "0" * 24, "item_id": 999999, "user_id": 1, "quantity": 1, "price": 1.0,
               "time": 1764000000000}
    b.produce_raw("product_orders", "430", json.dumps(unknown).encode())
    ids = [assert_sale(s.purchase(u, 430), "ACCEPTED")["order_id"] for u in range(40_000, 40_005)]
    wait_orders(b, before + len(ids), timeout=60, consumer=consumer)
    assert set(ids) <= set(b.orders())
    wait_until(lambda: len(b.consume_all("product_orders.dlq")) >= 2, 30, "2 DLQ messages")
    dlq = b.consume_all("product_orders.dlq")
    payloads = [m["payload"] for m in dlq]
    assert "{not json" in payloads
    assert json.dumps(unknown) in payloads
    for m in dlq:
        headers = m.get("headers") or []
        names = headers[0::2]
        assert {"error", "source_partition", "source_offset"} <= set(names), m
    assert consumer.stop() == 0


def test_an_order_the_database_refuses_goes_to_the_dlq_and_the_others_land(stack):
    b, s, tmp = stack
    s.put_product(435, 100, 1.0, limit_per_user=5, expect=(201,))
    before = b.order_count()

    def order(n: int, price: float) -> bytes:
        return json.dumps({"order_id": f"{0xdb0000 + n:024x}", "item_id": 435, "user_id": 60_000 + n,
                           "quantity": 1, "price": price, "time": 1764000000000 + n}).encode()

    # One batch (produced before the consumer starts, same key: same partition, in order) whose
    # 4th order PostgreSQL refuses: 10^13 is past NUMERIC(14,2) (SQLSTATE 22003). Before the fix
    # the consumer retried that batch forever and nothing behind it landed.
    for n in range(8):
        b.produce_raw("product_orders", "435", order(n, 10_000_000_000_000.0 if n == 3 else 1.0))
    consumer = Consumer(tmp.mktemp("c5"), b, extra=["--workers", "1"]).start()
    try:
        good = [f"{0xdb0000 + n:024x}" for n in range(8) if n != 3]
        wait_orders(b, before + len(good), timeout=60, consumer=consumer)
        later = assert_sale(s.purchase(60_100, 435), "ACCEPTED")["order_id"]  # the partition flows
        wait_orders(b, before + len(good) + 1, timeout=60, consumer=consumer)
        stored = b.orders()
        assert set(good) | {later} <= set(stored)
        assert f"{0xdb0000 + 3:024x}" not in stored
        refused = order(3, 10_000_000_000_000.0).decode()

        def parked() -> list[dict]:
            return [m for m in b.consume_all("product_orders.dlq") if m["payload"] == refused]

        wait_until(lambda: parked(), 30, "the refused order in the DLQ")
        letter = parked()[0]
        headers = dict(zip(letter["headers"][0::2], letter["headers"][1::2]))
        assert "numeric field overflow" in headers["error"], headers
        assert headers["source_offset"].isdigit(), headers
    finally:
        assert consumer.stop() == 0


def test_drain_with_two_workers_persists_the_backlog_once_and_exits(stack):
    b, s, tmp = stack
    products = {440 + i: 50 for i in range(6)}  # keys spread over the 6 partitions
    for pid, stock in products.items():
        s.put_product(pid, stock, 3.0, limit_per_user=1, expect=(201,))
    before = b.order_count()
    ids = [assert_sale(s.purchase(u, pid), "ACCEPTED")["order_id"]
           for pid in products for u in range(50_000, 50_040)]
    # The group's committed offsets stand after the earlier tests' consumers: the backlog is
    # exactly these orders.
    cp = run_cli(["consume", "--drain", "--workers", "2", "--batch-size", "50",
                  "--log-dir", str(tmp.mktemp("drain")), *b.backend_args()], timeout=120)
    assert cp.returncode == 0, describe_cli(cp)
    out = cp.stdout + cp.stderr
    assert f"drained {len(ids)} orders" in out, describe_cli(cp)
    assert "(2 workers)" in out, describe_cli(cp)
    stored = b.orders()
    assert len(stored) == before + len(ids), "missing or duplicate orders"
    assert all(stored[i]["status"] == "CONFIRMED" for i in ids)
