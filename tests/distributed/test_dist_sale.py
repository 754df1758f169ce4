"""Two `flashsale serve` instances on one Redis + Kafka + PostgreSQL (SPEC §2, §6):
a race across both sells exactly the stock, no user exceeds the limit across both, an
Idempotency-Key retried on the other instance reserves once, SOLD_OUT reaches the other
instance's L1 through Kafka (no Redis round trip), and a restock reopens both."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from dist_harness import running_stack, wait_orders
from harness import Storm, assert_sale, systematic_plan, tally

PRODUCTS = {301: (40, 1), 302: (150, 3), 303: (7, 2)}
USERS = list(range(5000, 5080))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory, servers=2) as (b, (a, c), consumer):
        yield b, a, c, consumer


def test_race_across_two_instances_sells_exactly_the_stock(stack):
    b, a, c, consumer = stack
    for pid, (stock, limit) in PRODUCTS.items():
        a.put_product(pid, stock, 2.5, limit_per_user=limit, expect=(201,))
    plan = systematic_plan(PRODUCTS, USERS, random.Random(42))
    half = len(plan) // 2
    storms = [Storm(a.port, plan[:half], connections=32), Storm(c.port, plan[half:], connections=32)]
    results: list = [None, None]

    def run(i: int) -> None:
        results[i] = storms[i].run(timeout=120)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    t = tally(results[0] + results[1])
    assert not t.unanswered and not t.bad, f"bad answers: {t.bad[:5]} unanswered: {t.unanswered[:5]}"
    assert not t.duplicate_ids
    for pid, (stock, limit) in PRODUCTS.items():
        assert t.units.get(pid, 0) == stock, f"product {pid}: accepted {t.units.get(pid, 0)} != stock {stock}"
        for inst in (a, c):
            assert inst.remaining(pid) == 0
    over = {k: v for k, v in t.user_units.items() if v > PRODUCTS[k[1]][1]}
    assert not over, f"users over the limit across instances: {over}"
    # Every accepted order lands in PostgreSQL once, CONFIRMED.
    wait_orders(b, len(t.accepted), consumer=consumer)
    stored = b.orders()
    assert set(stored) == set(t.accepted), "database orders differ from accepted orders"
    assert all(o["status"] == "CONFIRMED" for o in stored.values())
    sold = {int(r[0]): int(r[1]) for r in b.sql("SELECT product_id, sold FROM products")}
    for pid, (stock, _) in PRODUCTS.items():
        assert sold[pid] == stock
    # GET /orders/{id} answers from either instance.
    oid = next(iter(t.accepted))
    for inst in (a, c):
        assert inst.get_json(f"/orders/{oid}")["status"] == "CONFIRMED"
    audit = a.audit()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_idempotency_key_retried_on_the_other_instance_reserves_once(stack):
    b, a, c, _ = stack
    a.put_product(311, 10, 1.0, limit_per_user=5, expect=(201,))
    key = "k-" + uuid.uuid4().hex
    first = a.purchase(6001, 311, 1, key=key)
    body = assert_sale(first, "ACCEPTED")
    again = c.purchase(6001, 311, 1, key=key)
    assert assert_sale(again, "ACCEPTED")["order_id"] == body["order_id"]
    assert a.remaining(311) == 9
    # Racing retries of a new key, spread over both instances: one reservation.
    key2 = "k-" + uuid.uuid4().hex
    answers: list = []

    def fire(inst) -> None:
        answers.append(inst.purchase(6002, 311, 2, key=key2))

    threads = [threading.Thread(target=fire, args=((a, c)[i % 2],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = {assert_sale(r, "ACCEPTED")["order_id"] for r in answers}
    assert len(ids) == 1, f"racing retries got different orders: {ids}"
    assert a.remaining(311) == 7
    # The same key with another body is refused.
    assert c.purchase(6002, 311, 1, key=key2).status == 422


def test_sold_out_reaches_the_other_instance_l1_and_restock_reopens_both(stack):
    b, a, c, _ = stack
    a.put_product(321, 1, 3.0, limit_per_user=1, expect=(201,))
    assert_sale(c.purchase(7001, 321), "ACCEPTED")  # c takes the last unit: SOLD_OUT broadcast
    m0 = a.metrics()
    l1_before = m0.total("flashsale_l1_hits_total")
    calls_before = m0.total("flashsale_stock_store_calls_total")

    # a never asked Redis about 321: its first answer must come from L1, set by the news
    # that c published on product_status_change_topic (a few hundred ms on loopback).
    time.sleep(2.5)
    assert_sale(a.purchase(7002, 321), "SOLD_OUT")
    m1 = a.metrics()
    assert m1.total("flashsale_l1_hits_total") == l1_before + 1, "SOLD_OUT did not come from L1"
    assert m1.total("flashsale_stock_store_calls_total") == calls_before, "a asked Redis"
    # Restock through a: RESTOCKED clears both L1s (c set its own L1 from the broadcast too).
    assert_sale(c.purchase(7003, 321), "SOLD_OUT")
    r = a.restock(321, 2)
    assert r.status == 200, r
    time.sleep(2.0)
    assert_sale(c.purchase(7004, 321), "ACCEPTED")
    assert_sale(a.purchase(7005, 321), "ACCEPTED")
    assert_sale(a.purchase(7006, 321), "SOLD_OUT")


def test_readyz_names_every_backend(stack):
    _, a, _, _ = stack
    ready = a.get_json("/readyz")
    assert ready["ready"] is True
    assert set(ready["checks"]) == {"redis", "kafka", "database"}
    assert all(v == "ok" for v in ready["checks"].values()), ready
