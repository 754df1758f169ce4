"""Admin changes racing across two `flashsale serve` instances (issue 7, item 2c).

Each admin change (PUT /admin/products/{id}, POST .../restock) must be ONE decision that Redis
and the database agree on: racing restocks of +a on one product must persist what Redis ends
at (not S+a twice), and a PUT refused with CONFLICT must not have been persisted. Afterwards
the database row, Redis' meta hash and GET /products/{id} on both instances agree, and
`flashsale audit` passes."""

from __future__ import annotations

import random
import threading
from typing import Any, Callable

import pytest

from dist_harness import running_stack, wait_orders
from harness import assert_sale, run_cli


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory, servers=2) as (b, (a, c), consumer):
        yield b, a, c, consumer


def _race(jobs: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Runs every job on its own thread, all released at once; their results in job order."""
    results: list[Any] = [None] * len(jobs)
    gate = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        gate.wait(10)
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert all(r is not None for r in results), "a racing request did not finish"
    return results


def _database_row(b, pid: int) -> dict[str, int]:
    (row,) = b.sql("SELECT stock, (price * 100)::bigint, limit_per_user FROM products "
                   f"WHERE product_id = {pid}")
    return {"stock": int(row[0]), "price": int(row[1]), "limit_per_user": int(row[2])}


def _redis_row(b, pid: int) -> dict[str, int]:
    stock, price, limit = b.redis_cli("HMGET", f"item:{{{pid}}}:meta", "stock", "price",
                                      "limit_per_user").splitlines()
    return {"stock": int(stock), "price": int(price), "limit_per_user": int(limit)}


def _api_row(inst, pid: int) -> dict[str, int]:
    p = inst.product(pid)
    return {"stock": p["stock"], "price": round(p["price"] * 100), "limit_per_user": p["limit_per_user"]}


def _assert_stores_agree(b, a, c, pid: int) -> dict[str, int]:
    redis_row = _redis_row(b, pid)
    assert _database_row(b, pid) == redis_row, f"product {pid}: database differs from redis"
    for inst in (a, c):
        assert _api_row(inst, pid) == redis_row, f"product {pid}: GET differs from redis"
    return redis_row


def test_racing_restocks_persist_the_stock_redis_ends_at(stack):
    b, a, c, _ = stack
    pid, initial = 401, 10
    a.put_product(pid, initial, 1.0, limit_per_user=5, expect=(201,))
    amounts = list(range(1, 21))
    answers = _race([lambda i=i: (a, c)[i % 2].restock(pid, amounts[i]) for i in range(20)])
    assert all(r.status == 200 for r in answers), [r for r in answers if r.status != 200][:3]
    row = _assert_stores_agree(b, a, c, pid)
    assert row["stock"] == initial + sum(amounts)


def test_racing_puts_restocks_and_sales_leave_the_stores_agreeing(stack):
    b, a, c, consumer = stack
    pid = 402
    a.put_product(pid, 30, 2.0, limit_per_user=50, expect=(201,))
    rng = random.Random(7)
    jobs: list[Callable[[], Any]] = []
    kinds: list[str] = []
    for i in range(20):
        inst = (a, c)[i % 2]
        if i % 2 == 0:
            # Stock around the units sold meanwhile: some of these are refused with CONFLICT.
            stock, price = rng.randint(0, 45), rng.choice([1.5, 2.0, 2.25, 3.0])
            jobs.append(lambda inst=inst, stock=stock, price=price: inst.put_product(
                pid, stock, price, limit_per_user=50, expect=(200, 409)))
            kinds.append("put")
        else:
            amount = rng.randint(1, 5)
            jobs.append(lambda inst=inst, amount=amount: inst.restock(pid, amount))
            kinds.append("restock")
    for u in range(12):
        jobs.append(lambda u=u: (a, c)[u % 2].purchase(9000 + u, pid, 1))
        kinds.append("purchase")
    answers = _race(jobs)
    accepted = 0
    for kind, r in zip(kinds, answers):
        if kind == "restock":
            assert r.status == 200, r
        elif kind == "purchase":
            assert r.status == 200, r
            accepted += r.json()["status"] == "ACCEPTED"
    wait_orders(b, accepted, consumer=consumer)
    _assert_stores_agree(b, a, c, pid)
    audit = a.audit()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_every_admin_change_after_the_race_still_agrees(stack):
    b, a, c, consumer = stack
    pid = 402
    # A plain PUT and a restock after the race: both stores move together from here on.
    sold = _redis_row(b, pid)["stock"] - a.remaining(pid)
    c.put_product(pid, sold + 3, 4.0, limit_per_user=2, expect=(200,))
    assert a.restock(pid, 2).status == 200
    row = _assert_stores_agree(b, a, c, pid)
    assert row == {"stock": sold + 5, "price": 400, "limit_per_user": 2}
    stored = b.order_count()
    assert_sale(a.purchase(9100, pid, 2), "ACCEPTED")
    # Landed before the next test's `audit --repair`, which refuses while the consumer group
    # has anything uncommitted (a slow consumer under ASan failed it).
    wait_orders(b, stored + 1, consumer=consumer)


def test_audit_reports_a_row_that_missed_its_write_and_repair_writes_it(stack):
    b, a, c, _ = stack
    pid = 403
    a.put_product(pid, 8, 1.25, limit_per_user=2, expect=(201,))
    assert a.restock(pid, 4).status == 200
    # As if the database write of the restock had failed (or the server died before it).
    b.sql(f"UPDATE products SET stock = 8 WHERE product_id = {pid}")
    audit = a.audit()
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert f"product {pid}: the database row differs from redis" in audit.stdout, audit.stdout
    repaired = run_cli(["audit", "--repair", *b.backend_args()], timeout=60, cwd=a.workdir)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"[repair] product {pid}: database row written from redis" in repaired.stdout
    row = _assert_stores_agree(b, a, c, pid)
    assert row["stock"] == 12
