"""Distributed mode with SQLite as the database of record (`--database sqlite:PATH`, SPEC §2):
Redis + Kafka as usual, `flashsale consume` writing the SQLite file the server reads."""

from __future__ import annotations

import pytest

from dist_harness import running_stack
from harness import assert_sale, db_query, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "orders.db"
    with running_stack(tmp_path_factory, database_url=f"sqlite:{db}") as (b, (s,), consumer):
        yield b, s, consumer, db


def test_orders_land_in_sqlite_and_read_back_confirmed(stack):
    b, s, consumer, db = stack
    s.put_product(601, 3, 4.25, limit_per_user=1, expect=(201,))
    ids = [assert_sale(s.purchase(u, 601), "ACCEPTED")["order_id"] for u in (1, 2, 3)]
    assert_sale(s.purchase(4, 601), "SOLD_OUT")
    wait_until(lambda: len(db_query(db, "SELECT order_id FROM orders WHERE status = 'CONFIRMED'")) == 3,
               30, "3 CONFIRMED orders in SQLite")
    rows = {r["order_id"] for r in db_query(db, "SELECT order_id FROM orders")}
    assert rows == set(ids)
    assert s.get_json(f"/orders/{ids[0]}")["status"] == "CONFIRMED"
    audit = s.audit()
    assert audit.returncode == 0, audit.stdout + audit.stderr
