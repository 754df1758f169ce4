"""Idempotency-Key (SPEC §4): a retry with the same key returns the first answer and never
reserves twice — sequentially, racing, after sell-out, and after a restart; the same key with a
different body is 422; keys are at most 128 printable ASCII characters.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from harness import (HttpConn, assert_422, assert_sale, build_request,
                     pipelined_keyed_purchases, purchase_body, wait_orders_confirmed)


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory()


def _key() -> str:
    return "idem-" + uuid.uuid4().hex


def test_sequential_retries_reserve_once(srv):
    pid = 501
    srv.put_product(pid, 100, 4.2, limit_per_user=5, expect=(201,))
    key = _key()
    first = assert_sale(srv.purchase(1, pid, 2, key=key), "ACCEPTED")
    for attempt in range(5):
        again = srv.purchase(1, pid, 2, key=key)
        assert again.status == 200 and again.json() == first, (
            f"retry #{attempt + 1} with the same key must return the first answer {first}; got {again!r}")
    assert srv.remaining(pid) == 98, "retries reserved again"
    orders = srv.get_json("/users/1/orders")
    assert [o["order_id"] for o in orders] == [first["order_id"]], orders
    # Without a key, the same body is a new purchase.
    other = assert_sale(srv.purchase(1, pid, 2), "ACCEPTED")
    assert other["order_id"] != first["order_id"]
    assert srv.remaining(pid) == 96


def test_racing_retries_reserve_once(srv):
    pid = 502
    srv.put_product(pid, 100, 4.2, limit_per_user=50, expect=(201,))
    for round_no in range(3):
        key = _key()
        n = 20
        barrier = threading.Barrier(n)
        answers: list = [None] * n
        conns = [HttpConn(srv.port) for _ in range(n)]
        req = build_request("POST", "/purchase", purchase_body(2, pid, 1),
                            [("Content-Type", "application/json"), ("Idempotency-Key", key)])

        def fire(i: int) -> None:
            try:
                barrier.wait(10)
                conns[i].send(req)
                answers[i] = conns[i].read_response()
            except Exception as e:  # recorded and asserted below
                answers[i] = e

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for c in conns:
            c.close()
        errors = [a for a in answers if not hasattr(a, "status")]
        assert not errors, f"round {round_no}: transport errors {errors[:3]}"
        bodies = [a.json() for a in answers]
        statuses = {a.status for a in answers}
        assert statuses == {200}, f"round {round_no}: racing retries got HTTP {statuses}: {answers[:3]}"
        assert all(b == bodies[0] for b in bodies), (
            f"round {round_no}: racing retries with one key got different answers: "
            f"{sorted({str(b) for b in bodies})[:5]}")
        assert bodies[0]["status"] == "ACCEPTED", bodies[0]
    assert srv.remaining(pid) == 97, "racing retries reserved more than once per key"
    assert len(srv.get_json("/users/2/orders")) == 3


def test_replay_after_sell_out_returns_first_answer(srv):
    pid = 503
    srv.put_product(pid, 1, 4.2, limit_per_user=1, expect=(201,))
    key = _key()
    first = assert_sale(srv.purchase(3, pid, 1, key=key), "ACCEPTED")
    assert_sale(srv.purchase(4, pid, 1), "SOLD_OUT")
    assert_sale(srv.purchase(5, pid, 1), "SOLD_OUT")  # by now the L1 flag is surely set
    again = srv.purchase(3, pid, 1, key=key)
    assert again.status == 200 and again.json() == first, (
        f"replay after sell-out must return the first ACCEPTED answer {first}; got {again!r}")
    assert_sale(srv.purchase(3, pid, 1), "SOLD_OUT", "same body without the key is a new purchase")


def test_same_key_different_body_is_422(srv):
    pid = 504
    srv.put_product(pid, 100, 4.2, limit_per_user=5, expect=(201,))
    key = _key()
    first = assert_sale(srv.purchase(6, pid, 1, key=key), "ACCEPTED")
    for user, product, amount in [(6, pid, 2), (7, pid, 1), (6, 505, 1)]:
        r = srv.purchase(user, product, amount, key=key)
        assert r.status == 422, f"same key, different body ({user}, {product}, {amount}) must be 422: {r!r}"
        assert isinstance(r.json().get("detail"), list), f"422 must use the FastAPI shape: {r!r}"
    assert srv.remaining(pid) == 99, "a conflicting key reserved stock"
    assert srv.get_json("/users/7/orders") == []
    again = srv.purchase(6, pid, 1, key=key)
    assert again.status == 200 and again.json() == first, f"the original body still replays: {again!r}"


@pytest.mark.parametrize("key", ["k" * 129, "k" * 1000, "bad\tkey", "bad\x7fkey", "caf\xe9"],
                         ids=["129-chars", "1000-chars", "tab", "DEL", "non-ascii"])
def test_invalid_keys_are_refused(srv, key):
    pid = 506
    srv.put_product(pid, 100, 4.2, limit_per_user=100, expect=(200, 201))
    before = srv.remaining(pid)
    with srv.conn() as c:
        try:
            c.send(build_request("POST", "/purchase", purchase_body(8, pid, 1),
                                 [("Content-Type", "application/json"), ("Idempotency-Key", key)]))
            r = c.read_response()
        except Exception as e:
            raise AssertionError(f"key {key!r}: no response ({e!r})") from e
    assert r.status in (400, 422), f"Idempotency-Key {key[:40]!r}... (len {len(key)}) must be refused: {r!r}"
    assert srv.remaining(pid) == before, f"invalid key {key[:40]!r} reserved stock"


def test_key_of_128_printable_chars_is_accepted(srv):
    pid = 507
    srv.put_product(pid, 100, 4.2, limit_per_user=5, expect=(201,))
    key = ("".join(chr(c) for c in range(0x21, 0x7f)) * 2)[:128]
    assert len(key) == 128
    first = assert_sale(srv.purchase(9, pid, 1, key=key), "ACCEPTED", "a 128-char printable key")
    again = srv.purchase(9, pid, 1, key=key)
    assert again.json() == first, again
    assert srv.remaining(pid) == 99


def test_keys_are_scoped_by_value_not_by_user(srv):
    # Two different keys from one user are two purchases; the limit still applies.
    pid = 508
    srv.put_product(pid, 100, 4.2, limit_per_user=2, expect=(201,))
    a = assert_sale(srv.purchase(10, pid, 1, key=_key()), "ACCEPTED")
    b = assert_sale(srv.purchase(10, pid, 1, key=_key()), "ACCEPTED")
    assert a["order_id"] != b["order_id"]
    assert_sale(srv.purchase(10, pid, 1, key=_key()), "LIMIT_EXCEEDED")
    assert srv.remaining(pid) == 98


def test_key_survives_kill9_and_restart(make_server):
    srv = make_server()
    pid = 509
    srv.put_product(pid, 10, 4.2, limit_per_user=3, expect=(201,))
    key = _key()
    first = assert_sale(srv.purchase(11, pid, 1, key=key), "ACCEPTED")
    srv.kill9()
    srv.start()
    again = srv.purchase(11, pid, 1, key=key)
    assert again.status == 200 and again.json() == first, (
        f"after kill -9 and restart the key must still replay {first}; got {again!r}")
    assert srv.remaining(pid) == 9
    wait_orders_confirmed(srv.db_path, [first["order_id"]])
    srv.restart()
    again = srv.purchase(11, pid, 1, key=key)
    assert again.status == 200 and again.json() == first, f"after SIGTERM restart: {again!r}"
    assert srv.remaining(pid) == 9


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_key_store_is_bounded_and_answers_let_go_keys_from_their_order(make_server, monkeypatch):
    # Issue 7 (2j), scaled down: a 1 MiB cap (~4,000 keys). 6,000 accepted keys overflow it
    # (the oldest are let go), then 60,000 unique keys on a sold-out product (uncapped:
    # ~14 MB more resident) must not grow the server; the first accepted key still replays
    # its order, from the orders table.
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB by default), so
    # resident growth would measure how much the server allocated, not what it holds. A
    # 1 MB quarantine makes the figure mean what it means in a release build (where this
    # test runs too) and still catches a use of memory freed moments before.
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "quarantine_size_mb=1")
    srv = make_server(extra_args=["--idempotency-memory-mib", "1"])
    stocked, sold_out = 520, 521
    srv.put_product(stocked, 10_000, 4.2, limit_per_user=1, expect=(201,))
    srv.put_product(sold_out, 1, 4.2, expect=(201,))
    assert_sale(srv.purchase(1, sold_out, 1), "ACCEPTED")

    accepted = pipelined_keyed_purchases(srv.port, [(u, stocked, f"acc-{u}") for u in range(1, 6001)])
    assert all(a["status"] == "ACCEPTED" for a in accepted)
    first = accepted[0]
    rss_before = _rss_bytes(srv.proc.pid)
    refused = pipelined_keyed_purchases(srv.port, [(u, sold_out, _key()) for u in range(100_000, 160_000)])
    assert all(a["status"] == "SOLD_OUT" for a in refused)
    grown = _rss_bytes(srv.proc.pid) - rss_before
    assert grown < 6 * 1024 * 1024, f"60,000 refused keys grew the server by {grown} bytes (cap 1 MiB)"

    again = srv.purchase(1, stocked, 1, key="acc-1")
    assert again.status == 200 and again.json() == first, (
        f"an accepted key let go from memory must replay its order {first}; got {again!r}")
    assert srv.remaining(stocked) == 10_000 - 6000
    # The same key with another body is still a mismatch, from the order record too.
    assert_422(srv.purchase(2, stocked, 1, key="acc-3"), ["Idempotency-Key"], where="header")
