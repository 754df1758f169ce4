"""No oversell, no undersell, no user over the limit, under 128 racing keep-alive connections
(SPEC §6.1, §6.2), and every accepted order reaches the database CONFIRMED (§6.3).

Demand is built so that a correct server *must* sell every unit: each of 200 users sends
limit+1 one-unit requests per product (plus one 2-3 unit request), and users*limit >= stock.
So "accepted units == stock" is exact, not a statistical hope, whatever the interleaving.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest

from harness import (HttpConn, Storm, assert_sale, parse_rfc3339, price_matches, systematic_plan, tally,
                     wait_orders_confirmed)

# product_id: (stock, limit_per_user); stock spans 1..500, limits 1..3.
PRODUCTS = {
    101: (1, 1), 102: (2, 3), 103: (7, 2), 104: (33, 1), 105: (64, 3),
    106: (128, 2), 107: (199, 1), 108: (256, 2), 109: (400, 3), 110: (500, 3),
}
PRICES = {pid: round(1 + pid * 0.37, 2) for pid in PRODUCTS}
USERS = list(range(1000, 1200))  # 200 users: limits bite, yet users*limit >= stock everywhere
CONNECTIONS = 128


@pytest.fixture(scope="module")
def srv(server_factory):
    s = server_factory()
    for pid, (stock, limit) in PRODUCTS.items():
        s.put_product(pid, stock, PRICES[pid], limit_per_user=limit, expect=(201,))
    return s


@pytest.fixture(scope="module")
def storm(srv):
    """Runs the big race once; the tests below examine its results from different angles."""
    for pid, (stock, limit) in PRODUCTS.items():
        assert len(USERS) * limit >= stock, "test bug: demand cannot sell this product out"
    plan = systematic_plan(PRODUCTS, USERS, random.Random(20251125))
    plan += [(u, 999_000 + u % 3, 1) for u in USERS[:64]]  # some unknown products in the mix
    random.Random(7).shuffle(plan)
    before = srv.metrics().total("flashsale_orders_accepted_total")
    outcomes = Storm(srv.port, plan, connections=CONNECTIONS).run(timeout=150)
    t = tally(outcomes)
    t.metrics_accepted = srv.metrics().total("flashsale_orders_accepted_total") - before
    return plan, outcomes, t


def test_every_request_got_a_well_formed_answer(storm):
    plan, outcomes, t = storm
    assert len(outcomes) == len(plan), f"{len(plan) - len(outcomes)} requests never sent/answered"
    assert not t.unanswered, (f"{len(t.unanswered)} requests got no answer, e.g. "
                              f"{[(o.user, o.product, o.amount, o.error) for o in t.unanswered[:5]]}")
    assert not t.bad, f"{len(t.bad)} malformed/unexpected answers, e.g. {[(o.http_status, o.body) for o in t.bad[:5]]}"
    unknown = [o for o in outcomes if o.product not in PRODUCTS]
    assert all(o.http_status == 404 and o.status == "UNKNOWN_PRODUCT" for o in unknown), unknown[:3]


def test_accepted_units_equal_stock_exactly(storm):
    _, _, t = storm
    diffs = {pid: (t.units.get(pid, 0), stock) for pid, (stock, _) in PRODUCTS.items()
             if t.units.get(pid, 0) != stock}
    assert not diffs, f"accepted units != stock for (accepted, stock): {diffs}; outcome counts {t.by_status}"


def test_accepted_metric_matches_answers(storm):
    _, _, t = storm
    assert t.metrics_accepted == len(t.accepted), (
        f"flashsale_orders_accepted_total grew by {t.metrics_accepted}, clients got {len(t.accepted)} ACCEPTED")


def test_no_user_over_the_limit(storm):
    _, _, t = storm
    over = {k: v for k, v in t.user_units.items() if v > PRODUCTS[k[1]][1]}
    assert not over, f"(user, product) -> units over the limit: {dict(list(over.items())[:10])}"


def test_order_ids_unique(storm):
    _, _, t = storm
    assert not t.duplicate_ids, f"order ids handed out twice: {t.duplicate_ids[:10]}"


def test_outcome_semantics(storm):
    _, outcomes, t = storm
    by_user_product = defaultdict(set)
    for oid, o in t.accepted.items():
        by_user_product[(o.user, o.product)].add(oid)
    for o in outcomes:
        if o.product not in PRODUCTS:
            continue
        stock, limit = PRODUCTS[o.product]
        if o.status == "INSUFFICIENT_STOCK":
            assert o.amount > 1, f"INSUFFICIENT_STOCK for a one-unit request: {o}"
        if o.status == "LIMIT_EXCEEDED" and o.order_id is not None:
            assert o.order_id in by_user_product[(o.user, o.product)], (
                f"LIMIT_EXCEEDED names order {o.order_id}, which is not one of user {o.user}'s "
                f"accepted orders for product {o.product}: {o}")
        if o.status == "LIMIT_EXCEEDED" and o.amount <= limit:
            assert by_user_product[(o.user, o.product)], (
                f"LIMIT_EXCEEDED for {o.amount} unit(s) (limit {limit}) although user {o.user} "
                f"holds nothing of product {o.product}: {o}")
        if o.status == "ACCEPTED":
            assert o.body.get("code") == 200 and o.body.get("data") is True, o


def test_products_report_sold_out(srv, storm):
    for pid, (stock, limit) in PRODUCTS.items():
        p = srv.product(pid)
        assert (p["stock"], p["remaining"], p["sold_out"], p["limit_per_user"]) == (stock, 0, True, limit), (
            f"product {pid} after the race: {p}")
        assert_sale(srv.purchase(USERS[0] + 5000, pid), "SOLD_OUT", f"product {pid} after the race")


def test_database_has_every_order_confirmed(srv, storm):
    _, _, t = storm
    rows = wait_orders_confirmed(srv.db_path, t.accepted, timeout=15)
    ours = {oid: r for oid, r in rows.items() if r["product_id"] in PRODUCTS}
    extra = set(ours) - set(t.accepted)
    assert not extra, f"orders in the db that no client was told about: {sorted(extra)[:10]}"
    units = defaultdict(int)
    for oid, o in t.accepted.items():
        r = rows[oid]
        assert (r["user_id"], r["product_id"], r["quantity"]) == (o.user, o.product, o.amount), (
            f"db row {r} does not match the accepted request {o}")
        assert price_matches(r["price"], PRICES[o.product]), f"db price {r['price']!r} for {o.product}: {r}"
        units[r["product_id"]] += r["quantity"]
    assert dict(units) == {pid: s for pid, (s, _) in PRODUCTS.items()}, f"db units per product {dict(units)}"


def test_get_order_agrees_with_database(srv, storm):
    _, _, t = storm
    wait_orders_confirmed(srv.db_path, t.accepted, timeout=15)
    ids = sorted(t.accepted)
    problems: list[str] = []

    def check(chunk: list[str]) -> None:
        with HttpConn(srv.port) as c:
            for oid in chunk:
                r = c.request("GET", f"/orders/{oid}")
                o = t.accepted[oid]
                if r.status != 200:
                    problems.append(f"GET /orders/{oid}: {r!r}")
                    continue
                b = r.json()
                want = {"order_id": oid, "user_id": o.user, "product_id": o.product, "amount": o.amount,
                        "status": "CONFIRMED"}
                got = {k: b.get(k) for k in want}
                if got != want or b.get("price") != PRICES[o.product]:
                    problems.append(f"GET /orders/{oid} = {b}, expected {want} price {PRICES[o.product]}")
                try:
                    parse_rfc3339(b.get("created_at"))
                except AssertionError as e:
                    problems.append(f"GET /orders/{oid}: {e}")

    threads = [threading.Thread(target=check, args=(ids[i::16],)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not problems, f"{len(problems)} order reads disagree, e.g.:\n" + "\n".join(problems[:10])


def test_user_orders_newest_first(srv, storm):
    _, _, t = storm
    wait_orders_confirmed(srv.db_path, t.accepted, timeout=15)
    mine = defaultdict(set)
    for oid, o in t.accepted.items():
        mine[o.user].add(oid)
    busiest = sorted(mine, key=lambda u: -len(mine[u]))[:15]
    for user in busiest + [USERS[0] + 9999]:
        orders = srv.get_json(f"/users/{user}/orders")
        assert isinstance(orders, list), orders
        got = [o["order_id"] for o in orders]
        assert len(got) == len(set(got)), f"user {user}: duplicates in {got}"
        assert set(got) == mine.get(user, set()), (
            f"user {user}: GET /users/{user}/orders lists {sorted(got)}, accepted were {sorted(mine.get(user, set()))}")
        times = [parse_rfc3339(o["created_at"]) for o in orders]
        assert times == sorted(times, reverse=True), f"user {user}: not newest first: {[o['created_at'] for o in orders]}"
        assert all(o["user_id"] == user for o in orders), orders


def test_one_user_racing_on_many_connections_gets_only_the_limit(srv):
    pid, limit = 150, 2
    srv.put_product(pid, 1000, 3.0, limit_per_user=limit, expect=(201,))
    plan = [(777, pid, 1)] * 256
    t = tally(Storm(srv.port, plan, connections=64).run(timeout=60))
    assert not t.unanswered and not t.bad, (t.unanswered[:3], t.bad[:3])
    assert t.units == {pid: limit}, f"one user racing on 64 connections got {t.units} units, limit {limit}"
    assert t.by_status == {"ACCEPTED": limit, "LIMIT_EXCEEDED": 256 - limit}, t.by_status
    assert srv.remaining(pid) == 1000 - limit


def test_insufficient_stock_then_exact_sell_out(srv):
    # Stock 10, everybody wants 3: three orders fit, one unit is left, and it stays sellable.
    pid = 151
    srv.put_product(pid, 10, 5.0, limit_per_user=10, expect=(201,))
    plan = [(2000 + i, pid, 3) for i in range(200)]
    t = tally(Storm(srv.port, plan, connections=64).run(timeout=60))
    assert not t.unanswered and not t.bad, (t.unanswered[:3], t.bad[:3])
    assert t.units == {pid: 9}, f"amount-3 race on stock 10 accepted {t.units}"
    assert t.by_status == {"ACCEPTED": 3, "INSUFFICIENT_STOCK": 197}, t.by_status
    assert srv.remaining(pid) == 1
    assert_sale(srv.purchase(3000, pid, 2), "INSUFFICIENT_STOCK")
    assert_sale(srv.purchase(3000, pid, 1), "ACCEPTED", "the last unit must be sellable (no undersell)")
    assert_sale(srv.purchase(3001, pid, 1), "SOLD_OUT")
    p = srv.product(pid)
    assert (p["remaining"], p["sold_out"]) == (0, True), p


def test_order_is_readable_right_after_accept(srv):
    # SPEC §5: GET /orders/{id} answers (PENDING or CONFIRMED) before the consumer ran.
    pid = 152
    srv.put_product(pid, 100, 2.0, limit_per_user=1, expect=(201,))
    with HttpConn(srv.port) as c:
        for u in range(4000, 4050):
            oid = assert_sale(c.purchase(u, pid), "ACCEPTED")["order_id"]
            r = c.request("GET", f"/orders/{oid}")
            assert r.status == 200, f"order {oid} not readable right after ACCEPTED: {r!r}"
            body = r.json()
            assert body["status"] in ("PENDING", "CONFIRMED") and body["user_id"] == u, body
            mine = c.request("GET", f"/users/{u}/orders")
            assert mine.status == 200 and [o["order_id"] for o in mine.json()] == [oid], (
                f"user {u}'s orders right after ACCEPTED: {mine!r}")


def test_restocks_racing_purchases_neither_oversell_nor_strand_stock(srv):
    # Restocks land while 64 connections buy and the product keeps selling out: a stale L1
    # sold-out flag (set by a SOLD_OUT racing a RESTOCKED) would strand units; a lost update
    # would oversell. Afterwards a sequential sweep must sell exactly what is left.
    pid, initial, restocks, step = 160, 50, 25, 10
    srv.put_product(pid, initial, 1.0, limit_per_user=1, expect=(201,))
    plan = [(10_000 + i, pid, 1) for i in range(3000)]
    storm = Storm(srv.port, plan, connections=64).start()
    restock_errors: list = []

    def restocker() -> None:
        for _ in range(restocks):
            r = srv.restock(pid, step)
            if r.status != 200:
                restock_errors.append(r)
            time.sleep(0.004)

    th = threading.Thread(target=restocker)
    th.start()
    th.join(60)
    t = tally(storm.join(60))
    assert not restock_errors, restock_errors[:3]
    assert not t.unanswered and not t.bad, (t.unanswered[:3], t.bad[:3])
    total = initial + restocks * step
    sold = t.units.get(pid, 0)
    assert sold <= total, f"oversold: {sold} units accepted of {total}"
    with HttpConn(srv.port) as c:
        for i in range(total + 5):
            body = c.purchase(20_000 + i, pid).json()
            if body.get("status") != "ACCEPTED":
                assert body.get("status") == "SOLD_OUT", body
                break
            sold += 1
    p = srv.product(pid)
    assert (p["stock"], p["remaining"]) == (total, 0) and sold == total, (
        f"after restocks racing purchases and a sweep: sold {sold} of {total}, product {p} "
        f"(units left but SOLD_OUT answered = stale sold-out flag)")
