"""Idempotency-Keys in distributed mode (issue 7, 2j), scaled down: with a 1 MiB cap
(`--idempotency-memory-mib 1`: 2,621 keys at 400 B each) Redis keeps at most that many
finished answers however many unique keys arrive, refusals are let go before accepted
answers, and an accepted key let go still replays its order, from PostgreSQL."""

from __future__ import annotations

import uuid

from dist_harness import DistServer, running_stack, wait_orders
from harness import HttpConn, assert_422, assert_sale, pipelined_keyed_purchases

MAX_KEYS = (1 << 20) // 400


def _idem_keys(b) -> int:
    return int(b.redis_cli("EVAL", "return #redis.call('KEYS', 'idem:*')", "0"))


def test_key_store_is_bounded_and_answers_let_go_keys_from_their_order(tmp_path_factory):
    with running_stack(tmp_path_factory, servers=0) as (b, _, consumer):
        srv = DistServer(tmp_path_factory.mktemp("capped"), b,
                         extra_args=["--idempotency-memory-mib", "1"]).start(timeout=60)
        try:
            stocked, sold_out = 331, 332
            srv.put_product(stocked, 10_000, 1.0, limit_per_user=1, expect=(201,))
            srv.put_product(sold_out, 1, 1.0, expect=(201,))
            assert_sale(srv.purchase(1, sold_out, 1), "ACCEPTED")

            accepted = pipelined_keyed_purchases(srv.port, [(u, stocked, f"acc-{u}") for u in range(1, 3001)])
            assert all(a["status"] == "ACCEPTED" for a in accepted)
            refused = pipelined_keyed_purchases(srv.port, [(u, sold_out, "r-" + uuid.uuid4().hex)
                                                 for u in range(100_000, 120_000)])
            assert all(a["status"] == "SOLD_OUT" for a in refused)
            indexed = (int(b.redis_cli("ZCARD", "idem-index:refused")) +
                       int(b.redis_cli("ZCARD", "idem-index:accepted")))
            assert indexed <= MAX_KEYS, f"{indexed} indexed answers, cap {MAX_KEYS}"
            keys = _idem_keys(b)
            assert keys <= MAX_KEYS, f"23,000 keyed purchases left {keys} keys in Redis, cap {MAX_KEYS}"
            assert b.redis_cli("EXISTS", "idem:acc-1") == "0", "the oldest accepted key was not let go"

            wait_orders(b, 3001, consumer=consumer)
            again = srv.purchase(1, stocked, 1, key="acc-1")
            assert again.status == 200 and again.json() == accepted[0], (
                f"an accepted key let go from Redis must replay {accepted[0]}; got {again!r}")
            assert srv.remaining(stocked) == 10_000 - 3000
            assert_422(srv.purchase(2, stocked, 1, key="acc-3"), ["Idempotency-Key"], where="header")
        finally:
            srv.stop()
