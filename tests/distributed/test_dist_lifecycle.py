"""Order lifecycle in distributed mode (issue 9): `flashsale consume` runs the closer.

On the real Redis, Kafka and PostgreSQL of the `servers` fixture:
- a sale with a 2 s payment window across two `serve` instances, ~60% of the orders paid
  through the signed webhook at random moments (some within +-50 ms of pay_by): every order
  ends PAID xor EXPIRED, Redis' remaining + units held == stock, the reopened units sell
  again without oversell, `flashsale audit` passes;
- two consume processes closing at once: units given back == units of the closed orders
  exactly (no order closed twice), Redis stock exact;
- kill -9 of consume at the closer's fault points (before / after the Redis write), restart:
  units back exactly once, audit passes;
- a `serve` killed with orders reserved in Redis but never handed to Kafka: the closer
  returns them by itself within the hand-off timeout + a few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dist_harness import Backends, Consumer, DistServer, wait_orders
from harness import Storm, tally, wait_until

SECRET = "whsec-dist-lifecycle-test"
PRICE = 2.5
# consume's hand-off timeout: --kafka-timeout-ms as serve's (DistServer: 3000) + margin.
CONSUME_ARGS = ["--kafka-timeout-ms", "3000", "--stranded-margin-ms", "1000"]


def signed_pay(server: DistServer, order_id: str, ref: str, amount: float) -> Any:
    body = json.dumps({"payment_ref": ref, "amount": amount}).encode()
    t = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return server.call("POST", f"/orders/{order_id}/pay", body,
                       {"Content-Type": "application/json", "Flashsale-Signature": f"t={t},v1={mac}"})


def put_product(server: DistServer, pid: int, stock: int, window_s: int | None,
                limit_per_user: int = 1) -> None:
    body: dict[str, Any] = {"stock": stock, "price": PRICE, "limit_per_user": limit_per_user}
    if window_s is not None:
        body["payment_window_s"] = window_s
    r = server.call("PUT", f"/admin/products/{pid}", body, server.auth())
    assert r.status in (200, 201), r


def redis_remaining(b: Backends, pid: int) -> int:
    return int(b.redis_cli("GET", f"item:{{{pid}}}:stock"))


def statuses(b: Backends, pid: int) -> dict[str, tuple[str, int]]:
    rows = b.sql(f"SELECT order_id, status, quantity FROM orders WHERE product_id = {pid}")
    return {r[0]: (r[1], int(r[2])) for r in rows}


def held_units(orders: dict[str, tuple[str, int]]) -> int:
    return sum(q for st, q in orders.values() if st in ("PENDING", "CONFIRMED", "PAID"))


def pay_deadlines(b: Backends, pid: int) -> dict[str, float]:
    rows = b.sql("SELECT order_id, (extract(epoch FROM pay_by) * 1000)::bigint FROM orders "
                 f"WHERE product_id = {pid}")
    return {r[0]: int(r[1]) / 1000.0 for r in rows}


def settled(b: Backends, pid: int, stock: int) -> bool:
    """No order awaits payment and Redis holds exactly what the held orders do not."""
    orders = statuses(b, pid)
    if any(st in ("PENDING", "CONFIRMED") for st, _ in orders.values()):
        return False
    return redis_remaining(b, pid) + held_units(orders) == stock


def closer_totals(consumer: Consumer) -> tuple[int, int]:
    """(expired + cancelled orders, units) given back, from each run's final summary line."""
    orders = units = 0
    for m in re.finditer(r"closer: (\d+) expired and (\d+) cancelled orders given back \((\d+) units\)"
                         r", \d+ stranded reservations returned, since start", consumer.output()):
        orders += int(m.group(1)) + int(m.group(2))
        units += int(m.group(3))
    return orders, units


def race(servers: list[DistServer], pid: int, users: list[int]) -> Any:
    """Every user buys one unit, the users split across `servers`, all at once."""
    storms = [Storm(s.port, [(u, pid, 1) for u in users[i::len(servers)]], connections=24)
              for i, s in enumerate(servers)]
    for s in storms:
        s.start()
    outcomes = [o for s in storms for o in s.join(120)]
    t = tally(outcomes)
    assert not t.bad and not t.unanswered, (t.bad[:3], t.unanswered[:3])
    return t


@pytest.fixture
def backends() -> Backends:
    b = Backends()
    b.reset()
    return b


def test_paid_or_expired_across_two_instances(backends, tmp_path_factory):
    b = backends
    pid, stock = 901, 400
    servers = [DistServer(tmp_path_factory.mktemp(f"api{i}"), b,
                          extra_args=["--payment-webhook-secret", SECRET]).start(timeout=60)
               for i in range(2)]
    consumer = Consumer(tmp_path_factory.mktemp("consumer"), b, CONSUME_ARGS).start()
    try:
        put_product(servers[0], pid, stock, window_s=2)
        t = race(servers, pid, list(range(10_000, 10_600)))
        accepted = list(t.accepted)
        assert t.units[pid] == stock, t.by_status
        wait_orders(b, len(accepted), timeout=30, consumer=consumer)
        deadlines = pay_deadlines(b, pid)
        assert set(deadlines) == set(accepted)

        # ~60% paid at random moments, a tenth of those within +-50 ms of pay_by.
        rng = random.Random(9)
        to_pay = rng.sample(accepted, int(len(accepted) * 0.6))
        plan = []
        for i, oid in enumerate(to_pay):
            due = deadlines[oid]
            at = due + rng.uniform(-0.05, 0.05) if i % 10 == 0 else rng.uniform(time.time(), due + 0.4)
            plan.append((at, oid))
        answers: dict[str, tuple[float, float, int, Any]] = {}
        lock = threading.Lock()

        def pay(at: float, oid: str) -> None:
            time.sleep(max(0.0, at - time.time()))
            sent = time.time()
            r = signed_pay(servers[hash(oid) % 2], oid, f"ref-{oid}", PRICE)
            with lock:
                answers[oid] = (sent, time.time(), r.status, r.json())

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda p: pay(*p), sorted(plan)))

        for oid, (sent, done, status, body) in answers.items():
            assert status in (200, 409), (oid, status, body)
            if done < deadlines[oid] - 0.1:
                assert status == 200, f"paid before pay_by but refused: {oid} {body}"
            if sent > deadlines[oid] + 0.1:
                assert status == 409, f"paid after pay_by but accepted: {oid} {body}"
            if status == 409:
                assert body.get("status") == "EXPIRED", body

        wait_until(lambda: settled(b, pid, stock), 20, "every order closed or paid, units back",
                   interval=0.3)
        orders = statuses(b, pid)
        paid = {oid for oid, (st, _) in orders.items() if st == "PAID"}
        assert paid == {oid for oid, a in answers.items() if a[2] == 200}
        assert all(st in ("PAID", "EXPIRED") for st, _ in orders.values()), set(orders.values())
        expired_units = sum(q for st, q in orders.values() if st == "EXPIRED")
        assert expired_units == stock - len(paid) > 0
        assert redis_remaining(b, pid) == expired_units
        for s in servers:
            assert s.remaining(pid) == expired_units

        # The reopened units sell again, in a race on both instances, never oversold.
        t2 = race(servers, pid, list(range(20_000, 20_000 + 2 * expired_units)))
        assert t2.units.get(pid, 0) == expired_units, t2.by_status
        assert redis_remaining(b, pid) == 0
        wait_orders(b, len(accepted) + len(t2.accepted), timeout=30, consumer=consumer)
        # Those expire too (nobody pays): everything back once more, exactly.
        wait_until(lambda: settled(b, pid, stock), 20, "the second wave closed", interval=0.3)
        assert redis_remaining(b, pid) == stock - len(paid)
        audit = servers[0].audit()
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        for s in servers:
            s.stop()
        consumer.stop()
    orders_closed, units = closer_totals(consumer)
    assert (orders_closed, units) == (stock - len(paid) + len(t2.accepted),) * 2, consumer.log_tail()


def test_two_consumers_close_each_order_once(backends, tmp_path_factory):
    b = backends
    pid, stock = 902, 300
    server = DistServer(tmp_path_factory.mktemp("api"), b).start(timeout=60)
    consumers = [Consumer(tmp_path_factory.mktemp(f"consumer{i}"), b, CONSUME_ARGS).start()
                 for i in range(2)]
    try:
        put_product(server, pid, stock, window_s=2)
        t = race([server], pid, list(range(30_000, 30_000 + stock)))
        assert t.units[pid] == stock
        wait_orders(b, stock, timeout=30, consumer=consumers[0])
        # Landed orders left Redis' in-flight index (the consumer's post-persist hook).
        wait_until(lambda: b.redis_cli("ZCARD", f"item:{{{pid}}}:inflight") == "0", 5,
                   "landed orders out of the in-flight index")
        wait_until(lambda: settled(b, pid, stock), 20, "every order expired, units back",
                   interval=0.3)
        orders = statuses(b, pid)
        assert {st for st, _ in orders.values()} == {"EXPIRED"}
        assert redis_remaining(b, pid) == stock
        assert b.redis_cli("HLEN", f"item:{{{pid}}}:buyers") in ("0", "")
        audit = server.audit()
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        server.stop()
        for c in consumers:
            c.stop()
    totals = [closer_totals(c) for c in consumers]
    # Each order handed to exactly one closer: the two counts add up to the orders, no more.
    assert sum(o for o, _ in totals) == stock, totals
    assert sum(u for _, u in totals) == stock, totals


@pytest.mark.parametrize("fault", ["closer_before_give_back", "closer_after_give_back"])
def test_closer_killed_at_fault_point_returns_units_once(fault, backends, tmp_path_factory):
    b = backends
    pid, stock = 903, 120
    server = DistServer(tmp_path_factory.mktemp("api"), b).start(timeout=60)
    consumer = Consumer(tmp_path_factory.mktemp("consumer"), b, CONSUME_ARGS)
    os.environ["FLASHSALE_FAULT"] = fault
    try:
        consumer.start()
    finally:
        del os.environ["FLASHSALE_FAULT"]
    try:
        # The window must outlast the landing of every order: the closer dies at the first
        # expiry, and nothing lands after that (a 1 s window lost that race under ASan).
        put_product(server, pid, stock, window_s=8)
        t = race([server], pid, list(range(40_000, 40_000 + stock + 50)))
        assert t.units[pid] == stock
        wait_orders(b, stock, timeout=30, consumer=consumer)
        # At the first expiry the closer dies at the fault point.
        wait_until(lambda: not consumer.alive(), 20, "consume killed at the fault point")
        # SIGKILL by the fault point (its log line may not reach the file before it).
        assert consumer.proc is not None and consumer.proc.returncode == -9, consumer.log_tail()
        # Orders whose pay_by passed were closed (the rest waits, CONFIRMED); killed before
        # the Redis write nothing is back, after it the first claimed batch is.
        orders = statuses(b, pid)
        expired = sum(q for st, q in orders.values() if st == "EXPIRED")
        assert expired > 0 and {st for st, _ in orders.values()} <= {"EXPIRED", "CONFIRMED"}
        before = redis_remaining(b, pid)
        if fault == "closer_before_give_back":
            assert before == 0
        else:
            assert 0 < before <= expired, (before, expired)
        consumer.start()  # no fault now
        wait_until(lambda: settled(b, pid, stock), 20, "units back after the restart", interval=0.3)
        time.sleep(1.5)  # a second give-back would show now
        assert redis_remaining(b, pid) == stock
        assert server.remaining(pid) == stock
        audit = server.audit()
        assert audit.returncode == 0, audit.stdout + audit.stderr
        # The buyers may buy again: every unit sells once more, no oversell.
        t2 = race([server], pid, list(range(40_000, 40_000 + stock + 50)))
        assert t2.units[pid] == stock
    finally:
        server.stop()
        consumer.stop()


def test_stranded_reservations_come_back_without_operator(backends, tmp_path_factory):
    b = backends
    pid, stock = 904, 300
    good = DistServer(tmp_path_factory.mktemp("api-good"), b).start(timeout=60)
    # Orders linger 2.5 s in this instance's producer: killed before that, its reservations
    # are in Redis but their hand-off never happened.
    doomed = DistServer(tmp_path_factory.mktemp("api-doomed"), b,
                        extra_args=["--kafka-producer-config", "linger.ms=2500"]).start(timeout=60)
    consumer = Consumer(tmp_path_factory.mktemp("consumer"), b, CONSUME_ARGS).start()
    busy_pid = 905
    stop_busy = threading.Event()
    busy_accepted: list[int] = []

    def keep_busy() -> None:
        # Orders of another product all along: one partition never goes quiet, so the
        # consumer's polls are never empty (the idle partitions' safe times must advance
        # anyway).
        with good.conn() as c:
            u = 80_000
            while not stop_busy.is_set():
                r = c.purchase(u, busy_pid)
                assert r.status == 200 and r.json()["status"] == "ACCEPTED", r
                busy_accepted.append(u)
                u += 1
                time.sleep(0.005)

    busy = threading.Thread(target=keep_busy, daemon=True)
    try:
        put_product(good, pid, stock, window_s=None)
        put_product(good, busy_pid, 1_000_000, window_s=None)
        busy.start()
        time.sleep(1.0)
        doomed_storm = Storm(doomed.port, [(u, pid, 1) for u in range(50_000, 50_200)],
                             connections=32, timeout=10).start()
        good_storm = Storm(good.port, [(u, pid, 1) for u in range(60_000, 60_400)],
                           connections=16).start()
        time.sleep(1.0)
        doomed.kill9()
        killed_at = time.time()
        good_outcomes = good_storm.join(60)
        doomed_outcomes = doomed_storm.join(30)
        t = tally(good_outcomes)
        assert not t.bad and not t.unanswered
        doomed_accepted = tally(doomed_outcomes).units.get(pid, 0)
        assert doomed_accepted == 0, "an order of the doomed instance was handed off"
        accepted = t.units.get(pid, 0)
        wait_orders(b, len(t.accepted), timeout=30, consumer=consumer)
        stranded = stock - accepted - redis_remaining(b, pid)
        assert stranded > 0, "the test stranded no reservation"

        # consume's hand-off timeout is 3 s + 1 s margin; its sweep runs every second.
        def back() -> bool:
            orders = statuses(b, pid)
            return redis_remaining(b, pid) + held_units(orders) == stock

        wait_until(back, 10, f"{stranded} stranded units back", interval=0.2)
        took = time.time() - killed_at
        assert took < 4 + 5, took
        assert busy.is_alive(), "the background orders stopped early"
        stop_busy.set()
        busy.join(10)
        assert len(busy_accepted) > 100
        assert set(statuses(b, pid)) == set(t.accepted)
        assert b.redis_cli("ZCARD", f"item:{{{pid}}}:inflight") == "0"
        assert good.remaining(pid) == stock - accepted
        time.sleep(1.5)
        assert redis_remaining(b, pid) == stock - accepted  # returned once, not twice
        audit = good.audit()
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "stranded reservations:" in consumer.output(), consumer.log_tail()
    finally:
        stop_busy.set()
        good.stop()
        consumer.stop()
