"""A buyer's order list in distributed mode (issue 7, 2h): the instance that accepted an order
lists it at once as PENDING, before `flashsale consume` has stored it, newest first among the
stored ones; once stored, every instance lists it exactly once, CONFIRMED. The same for the
order behind an Idempotency-Key replay."""

from __future__ import annotations

import pytest

from dist_harness import Consumer, running_stack
from harness import assert_sale, wait_until

USER = 7


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # No consumer at start: orders stay in flight until a test starts one.
    with running_stack(tmp_path_factory, servers=2, consumer=False) as (b, servers, _):
        yield b, servers, tmp_path_factory


def listed(server, user: int = USER) -> list[tuple[str, str]]:
    return [(o["order_id"], o["status"]) for o in server.get_json(f"/users/{user}/orders")]


def test_the_accepting_instance_lists_its_pending_orders_at_once(stack):
    b, (s1, s2), tmp = stack
    for pid in (501, 502, 503):
        s1.put_product(pid, 5, 12.5, limit_per_user=1, expect=(201,))

    # One order stored by the consumer before the in-flight ones.
    stored = assert_sale(s1.purchase(USER, 501), "ACCEPTED")["order_id"]
    consumer = Consumer(tmp.mktemp("c1"), b, extra=["--workers", "1"]).start()
    try:
        wait_until(lambda: s1.get_json(f"/orders/{stored}")["status"] == "CONFIRMED", 30,
                   "first order CONFIRMED")
    finally:
        assert consumer.stop() == 0

    # No consumer runs now: these two stay in Kafka, PENDING.
    plain = assert_sale(s1.purchase(USER, 502), "ACCEPTED")["order_id"]
    keyed = assert_sale(s1.purchase(USER, 503, key="inflight-503"), "ACCEPTED")["order_id"]
    replay = assert_sale(s1.purchase(USER, 503, key="inflight-503"), "ACCEPTED")["order_id"]
    assert replay == keyed
    assert s1.get_json(f"/orders/{plain}")["status"] == "PENDING"

    expected = [(keyed, "PENDING"), (plain, "PENDING"), (stored, "CONFIRMED")]
    assert listed(s1) == expected, "newest first, in-flight orders included, each once"
    by_id = {o["order_id"]: o for o in s1.get_json(f"/users/{USER}/orders")}
    for order_id, _ in expected:
        assert by_id[order_id] == s1.get_json(f"/orders/{order_id}"), "same fields as GET /orders/{id}"
    assert by_id[plain]["product_id"] == 502 and by_id[plain]["amount"] == 1
    assert by_id[plain]["price"] == 12.5

    # Once stored, every instance lists each order once, CONFIRMED.
    consumer = Consumer(tmp.mktemp("c2"), b, extra=["--workers", "1"]).start()
    try:
        confirmed = [(keyed, "CONFIRMED"), (plain, "CONFIRMED"), (stored, "CONFIRMED")]
        wait_until(lambda: listed(s2) == confirmed, 30, "every order CONFIRMED on the other instance")
        assert listed(s1) == confirmed
    finally:
        assert consumer.stop() == 0
