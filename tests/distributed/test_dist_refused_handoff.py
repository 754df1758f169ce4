"""A Kafka producer that refuses orders at once (its local queue full) under a purchase race,
in both Redis connection modes (issue 7, 2a).

A refusal at once is answered inside rd_kafka_produce(), on the thread that ran the
reservation's callback: an HTTP I/O thread (per-thread Redis connections, the default) or
the Redis I/O thread (--redis-shared-connections). Giving the units back there must not
wait for Redis: with shared connections the reply could only be read by the very thread
that waits (a deadlock: every later request hangs), by default the HTTP event loop stalls.

The producer is made to refuse with `--kafka-producer-config queue.buffering.max.messages=1`:
one order in flight at a time, every purchase arriving meanwhile is refused (503
UNAVAILABLE). Checked: every request is answered within the client timeout, and every unit
of a refused purchase is back (Redis, GET /products/{id} and the per-user records agree with
stock - accepted), and every accepted order reaches the database.
"""

from __future__ import annotations

import pytest

from dist_harness import Backends, Consumer, DistServer, wait_orders
from harness import Storm, assert_sale, tally

PRODUCT = 601
STOCK = 40
USERS = list(range(70_000, 70_400))
CLIENT_TIMEOUT_S = 8.0  # per request; a release that waits on Redis answers well within it


@pytest.mark.parametrize("mode", ["per-thread", "shared"])
def test_refused_handoff_answers_every_request_and_gives_every_unit_back(mode, tmp_path_factory):
    b = Backends()
    b.reset()
    extra = ["--kafka-producer-config", "queue.buffering.max.messages=1",
             # Orders linger in the producer's one-slot queue: purchases meanwhile are refused.
             "--kafka-linger-ms", "20"]
    if mode == "shared":
        extra.append("--redis-shared-connections")
    server = DistServer(tmp_path_factory.mktemp(f"api-{mode}"), b, extra_args=extra).start(timeout=60)
    consumer = Consumer(tmp_path_factory.mktemp(f"consumer-{mode}"), b).start()
    try:
        server.put_product(PRODUCT, STOCK, 3.0, limit_per_user=1, expect=(201,))
        plan = [(u, PRODUCT, 1) for u in USERS]
        outcomes = Storm(server.port, plan, connections=32, timeout=CLIENT_TIMEOUT_S).run(timeout=120)

        unanswered = [o for o in outcomes if o.http_status is None]
        assert not unanswered, (f"{len(unanswered)} of {len(outcomes)} requests not answered within "
                                f"{CLIENT_TIMEOUT_S} s, e.g. {unanswered[:3]}\n{server.log_tail()}")
        refused = [o for o in outcomes if o.http_status == 503]
        for o in refused:
            assert o.status == "UNAVAILABLE", f"a refused hand-off is definite: {o}"
        t = tally(o for o in outcomes if o.http_status != 503)
        assert not t.bad, t.bad[:5]
        assert refused, f"the producer refused nothing: the test did not exercise the path {t.by_status}"
        accepted = t.units.get(PRODUCT, 0)
        assert accepted <= STOCK

        # Every refused unit is back: Redis, the API and the per-user records agree.
        assert int(b.redis_cli("GET", f"item:{{{PRODUCT}}}:stock")) == STOCK - accepted
        assert server.remaining(PRODUCT) == STOCK - accepted
        buyers = set(t.accepted[oid].user for oid in t.accepted)
        for o in refused:
            if o.user not in buyers:
                assert b.redis_cli("HGET", f"item:{{{PRODUCT}}}:buyers", str(o.user)) in ("", "0"), o

        # The server still serves, and the units given back sell.
        more = [(u, PRODUCT, 1) for u in range(71_000, 71_000 + STOCK)]
        for u, _, _ in more:
            r = server.purchase(u, PRODUCT)
            if r.status == 200 and r.json()["status"] == "SOLD_OUT":
                break
            if r.status == 200:
                assert_sale(r, "ACCEPTED")
                t.accepted[r.json()["order_id"]] = None
        wait_orders(b, len(t.accepted), timeout=90, consumer=consumer)
        assert set(b.orders()) == set(t.accepted)
        assert server.remaining(PRODUCT) == STOCK - len(t.accepted)
    except BaseException:
        # A hung server would not stop gracefully either: don't let that hide the failure.
        server.kill9()
        consumer.kill9()
        raise
    server.stop()
    consumer.stop()
