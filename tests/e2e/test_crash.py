"""Durability across kill -9 and SIGTERM in the middle of races (SPEC §2 "Durability", §6.3).

What a client was told ACCEPTED must be in the database exactly once; what was sold never
exceeds stock, no user ever exceeds a limit, across any number of crashes and restarts; the
stock a restarted server reports is exactly stock − units in the database; `flashsale audit`
passes at the end. Requests that got no answer (in flight at the kill) may or may not have
been sold: they are allowed in the database only as orders the server really journalled.
"""

from __future__ import annotations

import random
import signal
import time
from collections import defaultdict

import pytest

from harness import (Storm, describe_cli, db_orders, random_plan, systematic_plan, tally, wait_orders_confirmed,
                     wait_until)

# product_id: (stock, limit_per_user)
# Big enough that every kill round lands while units are still for sale.
PRODUCTS = {301: (2400, 3), 302: (1800, 2), 303: (1500, 5), 304: (1200, 2), 305: (900, 1), 306: (300, 1),
            307: (60, 2)}
USERS = list(range(5000, 6000))
KILLS = 4


def _create_products(srv) -> None:
    for pid, (stock, limit) in PRODUCTS.items():
        srv.put_product(pid, stock, 2.5, limit_per_user=limit, expect=(201,))


def _check_db(srv, told_accepted: dict, context: str) -> dict[int, int]:
    """Invariants on the database file alone. Returns units sold per product."""
    rows = db_orders(srv.db_path)
    ids = [r["order_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"{context}: duplicate order ids in the db"
    by_id = {r["order_id"]: r for r in rows}
    missing = [oid for oid in told_accepted if oid not in by_id]
    assert not missing, (f"{context}: {len(missing)} orders answered ACCEPTED are not in the database, "
                         f"e.g. {missing[:5]}")
    for oid, o in told_accepted.items():
        r = by_id[oid]
        assert (r["user_id"], r["product_id"], r["quantity"]) == (o.user, o.product, o.amount), (
            f"{context}: db row {r} differs from the accepted request {o}")
    failed = [r for r in rows if r["status"] == "FAILED"]
    assert not failed, f"{context}: FAILED orders in the db (stock store lost writes): {failed[:5]}"
    bad_status = [r for r in rows if r["status"] not in ("PENDING", "CONFIRMED")]
    assert not bad_status, f"{context}: unexpected order statuses {bad_status[:5]}"
    units: dict[int, int] = defaultdict(int)
    user_units: dict[tuple, int] = defaultdict(int)
    for r in rows:
        units[r["product_id"]] += r["quantity"]
        user_units[(r["user_id"], r["product_id"])] += r["quantity"]
    oversold = {pid: (units[pid], s) for pid, (s, _) in PRODUCTS.items() if units[pid] > s}
    assert not oversold, f"{context}: oversold (units in db, stock): {oversold}"
    over_limit = {k: v for k, v in user_units.items() if k[1] in PRODUCTS and v > PRODUCTS[k[1]][1]}
    assert not over_limit, f"{context}: users over the limit in the db: {dict(list(over_limit.items())[:10])}"
    return dict(units)


def _check_server_matches_db(srv, units: dict[int, int], context: str) -> None:
    for pid, (stock, limit) in PRODUCTS.items():
        p = srv.product(pid)
        want = stock - units.get(pid, 0)
        assert (p["stock"], p["remaining"], p["limit_per_user"]) == (stock, want, limit), (
            f"{context}: restarted server reports {p} for product {pid}; the db holds "
            f"{units.get(pid, 0)} units sold of {stock}, so remaining must be {want}")


@pytest.mark.parametrize("journal_sync", ["full", "normal"])
def test_kill9_during_races_loses_and_oversells_nothing(make_server, journal_sync):
    # SPEC §2: both journal modes survive kill -9 (only "full" also survives power loss).
    rng = random.Random(9)
    srv = make_server(extra_args=["--journal-sync", journal_sync])
    _create_products(srv)
    told: dict = {}            # order_id -> Outcome, across every round
    told_units: dict = defaultdict(int)
    told_user_units: dict = defaultdict(int)
    unanswered = 0

    def absorb(outcomes, context):
        nonlocal unanswered
        t = tally(outcomes)
        bad_statuses = t.bad
        assert not bad_statuses, f"{context}: unexpected answers {[(o.http_status, o.body) for o in bad_statuses[:5]]}"
        dup = [oid for oid in t.accepted if oid in told] + t.duplicate_ids
        assert not dup, f"{context}: order ids handed out twice (across restarts?): {dup[:5]}"
        for oid, o in t.accepted.items():
            told[oid] = o
            told_units[o.product] += o.amount
            told_user_units[(o.user, o.product)] += o.amount
        unanswered += len(t.unanswered)
        over = {pid: told_units[pid] for pid, (s, _) in PRODUCTS.items() if told_units[pid] > s}
        assert not over, f"{context}: clients were told ACCEPTED for more units than stock: {over}"
        over_limit = {k: v for k, v in told_user_units.items() if v > PRODUCTS[k[1]][1]}
        assert not over_limit, f"{context}: users told ACCEPTED over the limit: {dict(list(over_limit.items())[:5])}"
        return t

    for round_no in range(KILLS):
        context = f"kill -9 #{round_no + 1}"
        plan = random_plan(list(PRODUCTS), USERS, 40_000, rng)
        storm = Storm(srv.port, plan, connections=64).start()
        # Kill at a random point of progress (not of wall-clock time, so a faster machine
        # does not turn the kill into one after the sell-out), plus a random few ms.
        target = rng.randint(200, 1200)
        wait_until(lambda: storm.accepted_units >= target, 30, f"{context}: {target} units accepted",
                   interval=0.005)
        time.sleep(rng.uniform(0, 0.05))
        sent_at_kill = storm.sent
        srv.kill9()
        outcomes = storm.join(30)
        t = absorb(outcomes, context)
        assert sent_at_kill < len(plan), f"{context}: storm finished before the kill; test too weak"
        units = _check_db(srv, told, context + " (server dead)")
        total = sum(s for s, _ in PRODUCTS.values())
        assert sum(units.values()) < total, f"{context}: everything sold before the kill; test too weak"
        srv.start()
        _check_server_matches_db(srv, units, context + " restart")
        print(f"{context}: {len(t.accepted)} accepted this round, {len(told)} total, db units {units}")

    # Final round: demand that must sell every remaining unit, then everything settles.
    plan = systematic_plan(PRODUCTS, USERS, rng, extra_big=False)
    t = absorb(Storm(srv.port, plan, connections=64).run(timeout=150), "final round")
    assert not t.unanswered, f"final round: unanswered requests {t.unanswered[:3]}"
    units = _check_db(srv, told, "final round")
    assert units == {pid: s for pid, (s, _) in PRODUCTS.items()}, (
        f"after the final round every product must be sold out exactly; db units {units}")
    for pid in PRODUCTS:
        p = srv.product(pid)
        assert (p["remaining"], p["sold_out"]) == (0, True), p
    wait_orders_confirmed(srv.db_path, [r["order_id"] for r in db_orders(srv.db_path)], timeout=20)
    rc = srv.stop()
    assert rc == 0, f"SIGTERM exit code {rc}\n{srv.log_tail()}"
    audit = srv.audit()
    assert audit.returncode == 0, "audit after the crash rounds:\n" + describe_cli(audit)
    assert audit.stdout.strip(), "audit printed nothing; it must print each invariant\n" + describe_cli(audit)


def test_sigterm_during_race_exits_0_and_persists_every_accepted_order(make_server):
    rng = random.Random(15)
    srv = make_server()
    _create_products(srv)
    plan = random_plan(list(PRODUCTS), USERS, 40_000, rng)
    storm = Storm(srv.port, plan, connections=64).start()
    wait_until(lambda: storm.sent >= 100, 10, "first purchases", interval=0.01)
    time.sleep(0.2)
    srv.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = srv.wait(20)
    took = time.monotonic() - t0
    assert rc == 0, f"SIGTERM during a race: exit code {rc}\n{srv.log_tail()}"
    assert took < 15, f"graceful shutdown took {took:.1f}s"
    t = tally(storm.join(30))
    assert storm.sent < len(plan), "storm finished before SIGTERM; test too weak"
    assert t.accepted, "no order accepted before SIGTERM; test too weak"
    bad = [o for o in t.bad if o.http_status != 503]
    assert not bad, f"unexpected answers during shutdown: {[(o.http_status, o.body) for o in bad[:5]]}"
    units = _check_db(srv, t.accepted, "after SIGTERM")

    # Restarted: the same stock picture, and the consumer confirms whatever was still PENDING.
    srv.start()
    _check_server_matches_db(srv, units, "restart after SIGTERM")
    wait_orders_confirmed(srv.db_path, [r["order_id"] for r in db_orders(srv.db_path)], timeout=20)
    for oid, o in list(t.accepted.items())[:50]:
        r = srv.get_json(f"/orders/{oid}")
        assert (r["order_id"], r["user_id"], r["product_id"], r["amount"], r["status"]) == (
            oid, o.user, o.product, o.amount, "CONFIRMED"), r
    audit = srv.audit()
    assert audit.returncode == 0, "audit beside the restarted server:\n" + describe_cli(audit)


def test_admin_changes_survive_kill9(make_server):
    srv = make_server()
    srv.put_product(390, 10, 1.5, limit_per_user=2, starts_at="2020-01-01T00:00:00Z",
                    ends_at="2099-01-01T00:00:00Z", expect=(201,))
    srv.put_product(391, 5, 2.0, expect=(201,))
    assert srv.restock(391, 7).status == 200
    srv.put_product(390, 12, 1.25, limit_per_user=3, starts_at="2021-01-01T00:00:00Z",
                    ends_at="2098-01-01T00:00:00Z", expect=(200,))
    assert srv.purchase(1, 390, 3).status == 200
    before = {pid: srv.product(pid) for pid in (390, 391)}
    assert before[390]["remaining"] == 9 and before[391]["stock"] == 12, before
    srv.kill9()
    srv.start()
    after = {pid: srv.product(pid) for pid in (390, 391)}
    assert after == before, f"admin changes acknowledged before kill -9 were lost: {before} -> {after}"
