"""The waiting room in distributed mode (issue 10): two `serve` instances share one queue in Redis.

On the real Redis, Kafka and PostgreSQL of the `servers` fixture:
- 5,000 users join one product across both instances before the sale: positions unique and
  gap-free; tickets are admitted in position order; over 10 s of sale the admission rate read
  from flashsale_queue_admitted_total summed over both instances is within +-10 % of
  admit_per_s, although half of the admitted users never buy (the others buy with their pass,
  through either instance);
- a purchase table on the shared product: no pass, a forged pass, another user's pass -> 403 and
  nothing reserved in Redis; a valid pass buys; the database gets exactly the accepted orders.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from dist_harness import Backends, Consumer, DistServer, wait_orders
from harness import HttpConn, wait_until

SECRET = "dist-waiting-room-secret"
ARGS = ["--waiting-room-secret", SECRET, "--queue-places-per-address", "0"]


def put_room(server: DistServer, pid: int, stock: int, admit_per_s: int, starts_in_s: float,
             pass_ttl_s: int = 30) -> None:
    starts = datetime.now(timezone.utc) + timedelta(seconds=starts_in_s)
    body = {"stock": stock, "price": 3, "limit_per_user": 1,
            "starts_at": starts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "waiting_room": {"admit_per_s": admit_per_s, "pass_ttl_s": pass_ttl_s}}
    r = server.call("PUT", f"/admin/products/{pid}", body, server.auth())
    assert r.status in (200, 201), r


def admitted_total(servers: list[DistServer]) -> float:
    return sum(s.metrics().total("flashsale_queue_admitted_total") for s in servers)


def queue_status(conn: HttpConn, ticket: str) -> dict:
    r = conn.request("GET", f"/queue/{ticket}")
    assert r.status == 200, r
    return r.json()


def buy(conn: HttpConn, user: int, pid: int, pass_: str | None) -> Any:
    hdrs = [("Content-Type", "application/json")]
    if pass_ is not None:
        hdrs.append(("X-Flashsale-Pass", pass_))
    body = json.dumps({"user_id": user, "product_id": pid, "amount": 1}).encode()
    return conn.request("POST", "/purchase", body, hdrs)


def test_shared_queue_across_two_instances(tmp_path_factory):
    b = Backends()
    b.reset()
    pid, users, rate = 911, 5000, 50
    servers = [DistServer(tmp_path_factory.mktemp(f"api{i}"), b, extra_args=ARGS).start(timeout=60)
               for i in range(2)]
    consumer = Consumer(tmp_path_factory.mktemp("consumer"), b).start()
    try:
        put_room(servers[0], pid, stock=10_000, admit_per_s=rate, starts_in_s=20)
        tickets: dict[int, dict] = {}
        lock = threading.Lock()

        def join_chunk(args: tuple[int, list[int]]) -> None:
            server, chunk = args
            with HttpConn(server.port) as c:
                for u in chunk:
                    r = c.request("POST", f"/products/{pid}/queue",
                                  json.dumps({"user_id": u}).encode(),
                                  [("Content-Type", "application/json")])
                    assert r.status == 200, r
                    with lock:
                        tickets[u] = r.json()

        chunks = [(servers[i % 2], list(range(i, users, 16))) for i in range(16)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(join_chunk, chunks))
        join_s = time.monotonic() - t0
        assert join_s < 19, f"5000 joins took {join_s:.1f}s: the sale started meanwhile"
        positions = sorted(t["position"] for t in tickets.values())
        assert positions == list(range(1, users + 1)), "positions not unique and gap-free"
        # Joining again through the other instance gives the same ticket.
        again = servers[1].call("POST", f"/products/{pid}/queue", {"user_id": 0}).json()
        assert again["ticket"] == tickets[0]["ticket"], again

        by_position = {t["position"]: t for t in tickets.values()}
        starts = wait_until(lambda: servers[0].product(pid)["starts_at"], 5, "starts_at")
        start_ts = datetime.fromisoformat(starts.replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, start_ts - time.time()) + 1.0)  # a second into the sale

        # Odd positions buy as soon as they are admitted (either instance); even ones never do.
        bought: list[str] = []
        stop = threading.Event()

        def buyers(server: DistServer, parity: int) -> None:
            with HttpConn(server.port) as c:
                next_pos = 1 + parity * 2  # 1 or 3: odd positions, interleaved over the two
                while not stop.is_set() and next_pos <= users:
                    t = by_position[next_pos]
                    s = queue_status(c, t["ticket"])
                    if not s["admitted"]:
                        time.sleep(0.05)
                        continue
                    assert s["status"] == "ADMITTED" and s["pass"], s
                    r = buy(c, t["user_id"], pid, s["pass"])
                    assert r.status == 200 and r.json()["status"] == "ACCEPTED", r
                    bought.append(r.json()["order_id"])
                    next_pos += 4

        threads = [threading.Thread(target=buyers, args=(servers[i], i)) for i in range(2)]
        for t in threads:
            t.start()
        base = admitted_total(servers)
        t0 = time.monotonic()
        time.sleep(10)
        delta = admitted_total(servers) - base
        elapsed = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(30)
        measured = delta / elapsed
        assert abs(measured - rate) <= 0.1 * rate, (
            f"admission rate {measured:.1f}/s over {elapsed:.1f}s, want {rate} +-10 %")
        assert len(bought) >= 0.8 * (delta / 2), (len(bought), delta)

        # In position order: every admitted position is before every waiting one.
        with HttpConn(servers[1].port) as c:
            sample = [queue_status(c, by_position[p]["ticket"]) for p in range(1, 1200, 7)]
        flags = [s["admitted"] for s in sample]
        n = sum(flags)
        assert 0 < n < len(flags) and flags == [True] * n + [False] * (len(flags) - n), flags
        wait_orders(b, len(bought), consumer=consumer)
    finally:
        for s in servers:
            s.stop()
        consumer.stop()


def test_purchase_table_on_the_shared_queue(tmp_path_factory):
    b = Backends()
    b.reset()
    pid = 912
    servers = [DistServer(tmp_path_factory.mktemp(f"api{i}"), b, extra_args=ARGS).start(timeout=60)
               for i in range(2)]
    consumer = Consumer(tmp_path_factory.mktemp("consumer"), b).start()
    try:
        put_room(servers[0], pid, stock=10, admit_per_s=1000, starts_in_s=-1)
        ticket = servers[1].call("POST", f"/products/{pid}/queue", {"user_id": 1}).json()["ticket"]
        with HttpConn(servers[0].port) as c:
            s = wait_until(lambda: queue_status(c, ticket).get("pass") and queue_status(c, ticket), 10,
                           "admission")
            p1 = s["pass"]
            remaining = lambda: int(b.redis_cli("GET", f"item:{{{pid}}}:stock"))  # noqa: E731
            for user, pass_, want in [(1, None, "PASS_REQUIRED"),
                                      (1, p1[:-1] + ("0" if p1[-1] != "0" else "1"), "PASS_INVALID"),
                                      (2, p1, "PASS_INVALID")]:
                r = buy(c, user, pid, pass_)
                assert r.status == 403 and r.json()["status"] == want, (user, pass_, r)
                assert remaining() == 10
        with HttpConn(servers[1].port) as c:
            ok = buy(c, 1, pid, p1)  # the pass of one instance buys through the other
            assert ok.status == 200 and ok.json()["status"] == "ACCEPTED", ok
        assert remaining() == 9
        wait_orders(b, 1, consumer=consumer)
        assert b.order_count() == 1
    finally:
        for s in servers:
            s.stop()
        consumer.stop()
