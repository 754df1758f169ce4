"""The order lifecycle, embedded mode (README "Order lifecycle"; issue 9).

An accepted order of a product with a payment window must be paid before its pay_by, or it
expires and its units go back on sale: exactly once, whatever races at the deadline, whatever
crashes in between. Payments come from the shop's payment service, signed with HMAC-SHA256;
buyers cancel with the cancel_token of their ACCEPTED answer.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (PAYMENT_SECRET, Storm, db_orders, describe_cli, payment_signature, tally,
                     wait_until)

SECRET_ARGS = ["--payment-webhook-secret", PAYMENT_SECRET]


def _ms(text: str) -> int:
    from harness import parse_rfc3339
    return int(parse_rfc3339(text).timestamp() * 1000)


def _buy_all(srv, pid: int, users, connections: int = 32) -> dict[int, dict]:
    """Every user buys one unit of `pid`; returns user -> ACCEPTED body."""
    accepted: dict[int, dict] = {}
    lock = threading.Lock()

    def one(chunk):
        with srv.conn() as c:
            for u in chunk:
                r = c.purchase(u, pid, 1)
                assert r.status == 200, r
                body = r.json()
                if body["status"] == "ACCEPTED":
                    with lock:
                        accepted[u] = body

    users = list(users)
    chunks = [users[i::connections] for i in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(one, chunks))
    return accepted


def _held_units(db_path, pid: int) -> int:
    return sum(r["quantity"] for r in db_orders(db_path)
               if r["product_id"] == pid and r["status"] in ("PENDING", "CONFIRMED", "PAID"))


def test_payments_race_expiry_and_every_unit_comes_back_once(make_server):
    """1,000 orders with a 2 s window; 600 paid at random moments, 100 of them within ±50 ms of
    pay_by. Each order ends PAID xor EXPIRED; the units of the expired ones come back exactly
    once (remaining == stock − paid), each within 1 s of its pay_by; they sell again in a race,
    never past stock; audit passes."""
    srv = make_server(extra_args=SECRET_ARGS)
    pid, stock = 901, 1000
    srv.put_product(pid, stock, 3.5, limit_per_user=1, payment_window_s=2, expect=(201,))
    accepted = _buy_all(srv, pid, range(10_000, 10_000 + stock))
    assert len(accepted) == stock
    assert srv.remaining(pid) == 0
    orders = {b["order_id"]: b for b in accepted.values()}
    # pay_by as the server fixed it (journal or orders), read back through GET /orders/{id}.
    pay_by: dict[str, int] = {}
    with ThreadPoolExecutor(16) as pool:
        for oid, o in zip(orders, pool.map(lambda oid: srv.get_json(f"/orders/{oid}"), orders)):
            assert o["status"] in ("PENDING", "CONFIRMED"), o
            pay_by[oid] = _ms(o["pay_by"])
            assert pay_by[oid] == _ms(o["created_at"]) + 2000, o
    now_ms = int(time.time() * 1000)
    rng = random.Random(9)
    ids = sorted(orders)
    rng.shuffle(ids)
    # 500 clearly in time (at least 150 ms before pay_by), 100 around the deadline. A slow
    # build (sanitizers) may take most of the window placing the orders: only orders whose
    # deadline is still far enough ahead can be planned in time.
    early = [oid for oid in ids if pay_by[oid] - now_ms >= 400]
    assert len(early) >= 200, f"only {len(early)} orders have 400 ms of their window left"
    in_time = early[:500]
    rest = [oid for oid in ids if oid not in set(in_time) and pay_by[oid] - now_ms >= 100]
    near = rest[:100]
    plan = []
    for oid in in_time:
        plan.append((rng.uniform(now_ms, pay_by[oid] - 150), oid))
    for oid in near:
        plan.append((pay_by[oid] + rng.uniform(-50, 50), oid))
    plan.sort()
    answers: dict[str, tuple[int, float, dict]] = {}
    lock = threading.Lock()

    def pay(item):
        at_ms, oid = item
        delay = at_ms / 1000 - time.time()
        if delay > 0:
            time.sleep(delay)
        sent = time.time() * 1000
        r = srv.pay(oid, f"pay-{oid}", 3.5)
        with lock:
            answers[oid] = (r.status, sent, r.json())

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(pay, plan))
    paid = {oid for oid, (st, _, _) in answers.items() if st == 200}
    refused = {oid for oid, (st, _, _) in answers.items() if st != 200}
    for oid, (st, sent, body) in answers.items():
        assert st in (200, 409), (oid, st, body)
        if st == 409:
            assert body["status"] == "EXPIRED", body
            assert sent >= pay_by[oid] - 60, f"a payment sent {pay_by[oid] - sent:.0f} ms early was refused"
    assert set(in_time) <= paid, "payments sent well before pay_by must win"
    # Every deadline passed: every order is PAID xor EXPIRED, exactly as answered.
    last = max(pay_by.values())
    time.sleep(max(0.0, last / 1000 - time.time()) + 1.2)

    def settled():
        rows = {r["order_id"]: r for r in db_orders(srv.db_path) if r["product_id"] == pid}
        return rows if all(r["status"] in ("PAID", "EXPIRED") for r in rows.values()) else None

    rows = wait_until(settled, 10, "every order PAID or EXPIRED")
    assert len(rows) == stock
    assert {oid for oid, r in rows.items() if r["status"] == "PAID"} == paid
    assert refused <= {oid for oid, r in rows.items() if r["status"] == "EXPIRED"}
    expired = [r for r in rows.values() if r["status"] == "EXPIRED"]
    lags = sorted(r["closed_at"] - r["pay_by"] for r in expired)
    assert lags[0] >= 0 and lags[-1] <= 1000, f"close lag (ms) p50 {lags[len(lags) // 2]} max {lags[-1]}"
    for r in rows.values():
        assert r["units_returned"] == 1, r
    # Units: back exactly once, and counted.
    wait_until(lambda: srv.remaining(pid) == stock - len(paid), 5, "units of expired orders back")
    m = srv.metrics()
    assert m.total("flashsale_units_returned_total") == len(expired)
    assert m.total("flashsale_orders_closed_total", reason="expired") == len(expired)
    assert m.total("flashsale_orders_paid_total") == len(paid)
    # Late payment after EXPIRED: 409, stays EXPIRED, nothing sold twice.
    late = expired[0]["order_id"]
    r = srv.pay(late, "too-late", 3.5)
    assert r.status == 409 and r.json()["status"] == "EXPIRED", r
    # The reopened units sell again in a race, never past stock; buyers of expired orders may
    # buy again (their per-user record was given back too).
    again_users = [rows[oid]["user_id"] for oid in list(refused)[:50]] + list(range(50_000, 52_000))
    storm = Storm(srv.port, [(u, pid, 1) for u in again_users], connections=64).start()
    storm.join()
    t = tally(storm.outcomes)
    assert not t.bad and not t.unanswered, t
    assert len(t.accepted) == stock - len(paid), t.by_status
    assert srv.remaining(pid) == 0
    wait_until(lambda: _held_units(srv.db_path, pid) == stock, 10, "held units == stock")
    cp = srv.audit()
    assert cp.returncode == 0, describe_cli(cp)


def test_signature_table_and_idempotent_payment(make_server):
    srv = make_server(extra_args=SECRET_ARGS)
    pid = 902
    srv.put_product(pid, 10, 12.25, limit_per_user=2, payment_window_s=60, expect=(201,))
    body = srv.purchase(1, pid, 2).json()
    oid = body["order_id"]
    wait_until(lambda: srv.get_json(f"/orders/{oid}")["status"] == "CONFIRMED", 10, "order lands")
    good = json.dumps({"payment_ref": "ref-1", "amount": 24.5}).encode()
    now = int(time.time())
    cases = {
        "missing": dict(signature=""),
        "wrong": dict(signature=f"t={now},v1={'0' * 64}"),
        "wrong secret": dict(secret="not-the-secret"),
        "body changed after signing": dict(signature=payment_signature(PAYMENT_SECRET, good),
                                           body=good.replace(b"24.5", b"0.01")),
        "6 minutes old": dict(t=now - 360),
        "6 minutes ahead": dict(t=now + 360),
        "no t": dict(signature=f"v1={'0' * 64}"),
    }
    for name, kw in cases.items():
        r = srv.pay(oid, "ref-1", 24.5, **kw)
        assert r.status == 401, (name, r)
        assert r.json()["status"] == "INVALID_SIGNATURE", (name, r)
    assert srv.get_json(f"/orders/{oid}")["status"] == "CONFIRMED"
    assert srv.metrics().total("flashsale_payment_rejected_total", reason="signature") == len(cases)
    # A signed but invalid body: 422 naming the field; a wrong amount: 409; nothing changes.
    r = srv.pay(oid, "", 24.5)
    assert r.status == 422 and r.json()["detail"][0]["loc"] == ["body", "payment_ref"], r
    r = srv.pay(oid, "ref-1", 24.0)
    assert r.status == 409 and r.json()["status"] == "CONFIRMED", r
    # The good call, then its replay (same ref, even a fresh signature): the same 200, paid once.
    first = srv.pay(oid, "ref-1", 24.5)
    assert first.status == 200 and first.json()["status"] == "PAID", first
    sig = payment_signature(PAYMENT_SECRET, good)
    replay = srv.pay(oid, "ref-1", 24.5, body=good, signature=sig)
    again = srv.pay(oid, "ref-1", 24.5, body=good, signature=sig)
    for r in (replay, again):
        assert r.status == 200 and r.json()["data"] == first.json()["data"], r
    other = srv.pay(oid, "ref-2", 24.5)
    assert other.status == 409 and other.json()["status"] == "PAID", other
    assert srv.metrics().total("flashsale_orders_paid_total") == 1
    assert srv.get_json(f"/orders/{oid}")["paid_at"] == first.json()["data"]["paid_at"]
    # Unknown order: 404.
    assert srv.pay("0" * 24, "ref-x", 1).status == 404


def test_pay_route_needs_a_secret(make_server):
    srv = make_server()
    r = srv.pay("0" * 24, "ref", 1)
    assert r.status == 403 and r.json()["status"] == "FORBIDDEN", r


def test_cancel_by_buyer_and_by_shop_gives_units_back(make_server):
    srv = make_server(extra_args=SECRET_ARGS)
    pid = 903
    srv.put_product(pid, 2, 5, limit_per_user=1, payment_window_s=600, expect=(201,))
    a = srv.call("POST", "/purchase", {"user_id": 1, "product_id": pid, "amount": 1},
                 {"Idempotency-Key": "buy-1"}).json()
    b = srv.purchase(2, pid).json()
    assert a["status"] == b["status"] == "ACCEPTED"
    assert len(a["cancel_token"]) == 32 and a["cancel_token"] != b["cancel_token"]
    # The Idempotency-Key replay carries the same token; GET /orders/{id} never shows it.
    replay = srv.call("POST", "/purchase", {"user_id": 1, "product_id": pid, "amount": 1},
                      {"Idempotency-Key": "buy-1"}).json()
    assert replay["cancel_token"] == a["cancel_token"]
    assert "cancel_token" not in srv.get_json(f"/orders/{a['order_id']}")
    assert srv.purchase(3, pid).json()["status"] == "SOLD_OUT"
    for oid in (a["order_id"], b["order_id"]):
        wait_until(lambda: srv.get_json(f"/orders/{oid}")["status"] == "CONFIRMED", 10, "landed")
    # Another order's token, a made-up one, no body: refused, nothing changes.
    for body in ({"cancel_token": b["cancel_token"]}, {"cancel_token": "f" * 32}):
        r = srv.call("POST", f"/orders/{a['order_id']}/cancel", body)
        assert r.status == 403 and r.json()["status"] == "INVALID_CANCEL_TOKEN", r
    r = srv.call("POST", f"/orders/{a['order_id']}/cancel", {})
    assert r.status == 422, r
    assert srv.call("POST", f"/orders/{a['order_id']}/cancel", None, srv.auth("wrong")).status == 403
    assert srv.get_json(f"/orders/{a['order_id']}")["status"] == "CONFIRMED"
    # The buyer cancels; the shop cancels the other one.
    r = srv.call("POST", f"/orders/{a['order_id']}/cancel", {"cancel_token": a["cancel_token"]})
    assert r.status == 200 and r.json()["status"] == "CANCELLED", r
    assert r.json()["data"]["closed_at"] is not None
    r = srv.call("POST", f"/orders/{b['order_id']}/cancel", None, srv.auth())
    assert r.status == 200 and r.json()["status"] == "CANCELLED", r
    # Twice: 409 with the status; paying a cancelled order: 409.
    r = srv.call("POST", f"/orders/{a['order_id']}/cancel", {"cancel_token": a["cancel_token"]})
    assert r.status == 409 and r.json()["status"] == "CANCELLED", r
    r = srv.pay(a["order_id"], "late", 5)
    assert r.status == 409 and r.json()["status"] == "CANCELLED", r
    # Units back (the sold-out flag and L1 too): the same buyer and a new one buy again.
    wait_until(lambda: srv.remaining(pid) == 2, 5, "cancelled units back")
    assert srv.purchase(1, pid).json()["status"] == "ACCEPTED"
    assert srv.purchase(3, pid).json()["status"] == "ACCEPTED"
    assert srv.metrics().total("flashsale_orders_closed_total", reason="cancelled") == 2
    cp = srv.audit()
    assert cp.returncode == 0, describe_cli(cp)


def test_without_a_window_orders_stay_confirmed(make_server):
    srv = make_server(extra_args=SECRET_ARGS)
    srv.put_product(904, 5, 1, expect=(201,))
    assert srv.product(904)["payment_window_s"] is None
    oid = srv.purchase(1, 904).json()["order_id"]
    o = wait_until(lambda: (o := srv.get_json(f"/orders/{oid}"))["status"] == "CONFIRMED" and o, 10, "landed")
    assert o["pay_by"] is None and o["paid_at"] is None and o["closed_at"] is None
    r = srv.pay(oid, "ref", 1)
    assert r.status == 409 and r.json()["status"] == "CONFIRMED", r
    time.sleep(0.5)
    assert srv.get_json(f"/orders/{oid}")["status"] == "CONFIRMED"
    # Bad windows are refused with the field named.
    r = srv.call("PUT", "/admin/products/905", {"stock": 1, "price": 1, "payment_window_s": 0}, srv.auth())
    assert r.status == 422 and r.json()["detail"][0]["loc"] == ["body", "payment_window_s"], r


@pytest.mark.parametrize("fault", ["closer_before_give_back", "closer_after_give_back"])
def test_kill9_in_the_closer_returns_units_exactly_once(make_server, fault):
    """The process dies (SIGKILL, by the fault point) after the database closed orders and
    before (or after) the stock store got their units back; restarted without the fault, the
    units are back exactly once."""
    srv = make_server(extra_args=SECRET_ARGS, extra_env={"FLASHSALE_FAULT": fault})
    pid, stock = 906, 40
    srv.put_product(pid, stock, 2, limit_per_user=1, payment_window_s=1, expect=(201,))
    accepted = _buy_all(srv, pid, range(1, stock + 1), connections=8)
    assert len(accepted) == stock
    paid = list(accepted.values())[:10]
    for b in paid:
        r = srv.pay(b["order_id"], "p-" + b["order_id"], 2)
        assert r.status == 200, r
    rc = srv.wait(15)
    assert rc == -9, f"expected the fault point to SIGKILL the server, exit {rc}\n{srv.log_tail()}"
    srv.extra_env.pop("FLASHSALE_FAULT")
    srv.start()
    assert srv.remaining(pid) == stock - len(paid)
    rows = [r for r in db_orders(srv.db_path) if r["product_id"] == pid]
    assert sorted(r["status"] for r in rows) == ["EXPIRED"] * (stock - 10) + ["PAID"] * 10
    assert all(r["units_returned"] == 1 for r in rows)
    # Nothing is given back a second time by the restarted closer.
    time.sleep(0.5)
    assert srv.remaining(pid) == stock - len(paid)
    assert srv.metrics().total("flashsale_units_returned_total") == 0
    cp = srv.audit()
    assert cp.returncode == 0, describe_cli(cp)
