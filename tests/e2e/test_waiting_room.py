"""The waiting room, embedded mode (README "Admission control"; issue 10).

A product with a waiting room sells only to buyers holding a pass: they join its queue, are
admitted in position order at admit_per_s from the sale's start, and the admitted ticket's pass
(HMAC-SHA256, bound to user, product and expiry) goes with POST /purchase as X-Flashsale-Pass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

from harness import wait_until

SECRET = "e2e-waiting-room-secret"
ARGS = ["--waiting-room-secret", SECRET, "--queue-places-per-address", "0"]


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def forge(kind: str, fields: str, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{kind}:{fields}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{fields}.{mac}"


def put_room(srv, pid: int, stock: int, admit_per_s: int, pass_ttl_s: int = 30, *,
             starts_in_s: float | None = None, limit_per_user: int = 1) -> None:
    body = {"stock": stock, "price": 5, "limit_per_user": limit_per_user,
            "waiting_room": {"admit_per_s": admit_per_s, "pass_ttl_s": pass_ttl_s}}
    if starts_in_s is not None:
        body["starts_at"] = _rfc3339(datetime.now(timezone.utc) + timedelta(seconds=starts_in_s))
    r = srv.call("PUT", f"/admin/products/{pid}", body, srv.auth())
    assert r.status in (200, 201), r


def join(srv, pid: int, user, expect: int = 200, headers=None) -> dict:
    r = srv.call("POST", f"/products/{pid}/queue", {"user_id": user}, headers)
    assert r.status == expect, r
    return r.json()


def status(srv, ticket: str, expect: int = 200) -> dict:
    r = srv.call("GET", f"/queue/{ticket}")
    assert r.status == expect, r
    return r.json()


def admitted_pass(srv, ticket: str, timeout: float = 10) -> str:
    s = wait_until(lambda: (lambda b: b if b.get("pass") else None)(status(srv, ticket)), timeout,
                   "admission")
    assert s["admitted"] is True and s["status"] == "ADMITTED", s
    return s["pass"]


def buy(srv, user, pid, pass_=None, key=None):
    hdrs = {"Content-Type": "application/json"}
    if pass_ is not None:
        hdrs["X-Flashsale-Pass"] = pass_
    if key is not None:
        hdrs["Idempotency-Key"] = key
    return srv.call("POST", "/purchase", json.dumps({"user_id": user, "product_id": pid, "amount": 1}),
                    hdrs)


def test_purchase_table_refuses_every_bad_pass_and_changes_nothing(make_server):
    srv = make_server(extra_args=ARGS)
    phone, tablet = 70_001, 70_002
    put_room(srv, phone, stock=10, admit_per_s=1000)
    put_room(srv, tablet, stock=10, admit_per_s=1000)
    p1 = admitted_pass(srv, join(srv, phone, 1)["ticket"])
    t2 = admitted_pass(srv, join(srv, tablet, 2)["ticket"])
    far = int(time.time() * 1000) + 60_000
    cases = {
        "no pass": (1, None, "PASS_REQUIRED", "missing"),
        "forged signature": (1, p1[:-1] + ("0" if p1[-1] != "0" else "1"), "PASS_INVALID", "forged"),
        "expired": (1, forge("pass", f"{phone}.1.{int(time.time() * 1000) - 1000}"), "PASS_INVALID",
                    "expired"),
        "other user": (3, p1, "PASS_INVALID", "other_user"),
        "other product": (2, t2.replace(f"{tablet}.", f"{phone}.", 1), "PASS_INVALID", "forged"),
        "other product, signed": (2, t2, "PASS_INVALID", "other_product"),
        "another secret": (1, forge("pass", f"{phone}.1.{far}", "not-the-secret"), "PASS_INVALID",
                           "forged"),
        "malformed": (1, "abc", "PASS_INVALID", "malformed"),
    }
    for name, (user, pass_, expected, reason) in cases.items():
        before = srv.metrics().total("flashsale_pass_rejected_total", reason=reason)
        r = buy(srv, user, phone, pass_)
        assert r.status == 403, (name, r)
        body = r.json()
        assert body["status"] == expected and body["code"] == 403, (name, body)
        assert srv.remaining(phone) == 10, name
        assert srv.get_json(f"/users/{user}/orders") == [], name
        after = srv.metrics().total("flashsale_pass_rejected_total", reason=reason)
        assert after == before + 1, (name, reason, before, after)
    # Nothing was held for user 1 by the refusals: the valid pass buys (limit 1).
    ok = buy(srv, 1, phone, p1)
    assert ok.status == 200 and ok.json()["status"] == "ACCEPTED", ok
    assert srv.remaining(phone) == 9
    # A product without a waiting room ignores passes and needs none.
    srv.put_product(70_003, 5)
    assert buy(srv, 1, 70_003).json()["status"] == "ACCEPTED"


def test_idempotent_retry_gets_its_first_answer_even_after_the_pass_expired(make_server):
    srv = make_server(extra_args=ARGS)
    pid = 70_010
    put_room(srv, pid, stock=5, admit_per_s=1000, pass_ttl_s=1)
    p = admitted_pass(srv, join(srv, pid, 5)["ticket"])
    first = buy(srv, 5, pid, p, key="k-accepted")
    assert first.json()["status"] == "ACCEPTED", first
    time.sleep(1.3)  # the pass is expired now
    again = buy(srv, 5, pid, p, key="k-accepted")
    assert again.status == 200 and again.json()["order_id"] == first.json()["order_id"], again
    # A refusal for want of a pass is not remembered: the retry that brings one is tried.
    pid2 = 70_011
    put_room(srv, pid2, stock=5, admit_per_s=1000)
    refused = buy(srv, 6, pid2, None, key="k-refused")
    assert refused.status == 403 and refused.json()["status"] == "PASS_REQUIRED", refused
    p6 = admitted_pass(srv, join(srv, pid2, 6)["ticket"])
    retried = buy(srv, 6, pid2, p6, key="k-refused")
    assert retried.status == 200 and retried.json()["status"] == "ACCEPTED", retried


def test_join_rules_and_errors(make_server):
    srv = make_server(extra_args=["--waiting-room-secret", SECRET, "--queue-places-per-address", "3"])
    pid = 70_020
    put_room(srv, pid, stock=5, admit_per_s=2, starts_in_s=30)
    j = join(srv, pid, 1)
    assert j["position"] == 1 and j["status"] == "QUEUED" and j["product_id"] == pid, j
    assert 29 <= j["estimated_wait_s"] <= 32, j  # the start, then half a second
    again = join(srv, pid, 1)
    assert again["ticket"] == j["ticket"] and again["status"] == "ALREADY_QUEUED", again
    s = status(srv, j["ticket"])
    assert s["status"] == "WAITING" and s["admitted"] is False and "pass" not in s, s
    # Before the start nobody is admitted and nobody can buy.
    assert buy(srv, 1, pid).json()["status"] == "PASS_REQUIRED"
    # Places per address: 3, a re-join is no new place.
    join(srv, pid, 2)
    join(srv, pid, 3)
    full = join(srv, pid, 4, expect=403)
    assert full["status"] == "QUEUE_PLACES_EXCEEDED", full
    join(srv, pid, 2)
    # Errors.
    srv.put_product(70_021, 5)
    assert join(srv, 70_021, 1, expect=409)["status"] == "NO_WAITING_ROOM"
    assert join(srv, 79_999, 1, expect=404)["status"] == "UNKNOWN_PRODUCT"
    r = srv.call("POST", f"/products/{pid}/queue", {"user": 1})
    assert r.status == 422 and "user_id" in r.body.decode(), r
    r = srv.call("POST", "/products/abc/queue", {"user_id": 1})
    assert r.status == 422 and "product_id" in r.body.decode(), r
    assert status(srv, "nonsense", expect=404)["status"] == "TICKET_INVALID"
    forged = j["ticket"].replace(".1.", ".1.", 1)[:-1] + ("0" if j["ticket"][-1] != "0" else "1")
    assert status(srv, forged, expect=404)["status"] == "TICKET_INVALID"
    m = srv.metrics()
    assert m.total("flashsale_queue_joined_total") == 3


def test_admission_follows_the_schedule_in_position_order(make_server):
    srv = make_server(extra_args=ARGS)
    pid = 70_030
    put_room(srv, pid, stock=1000, admit_per_s=20, starts_in_s=1.5)
    tickets = [join(srv, pid, u)["ticket"] for u in range(1, 121)]
    assert [status(srv, t)["position"] for t in tickets[:3]] == [1, 2, 3]
    time.sleep(1.5)  # the sale starts
    t0 = time.monotonic()
    base = srv.metrics().total("flashsale_queue_admitted_total")
    time.sleep(3.0)
    states = [status(srv, t) for t in tickets]
    elapsed = time.monotonic() - t0
    flags = [s["admitted"] for s in states]
    n = sum(flags)
    assert flags == [True] * n + [False] * (len(flags) - n), "admitted out of position order"
    # Nobody bought anything: admission goes on by rate alone.
    assert 20 * (elapsed - 0.4) <= n - base <= 20 * (elapsed + 0.6) + 1, (n, base, elapsed)
    admitted_metric = srv.metrics().total("flashsale_queue_admitted_total")
    assert abs(admitted_metric - n) <= 3, (admitted_metric, n)
    first, last_admitted = states[0], states[n - 1]
    assert first["status"] == "ADMITTED" and first["pass"], first
    waiting = states[n]
    assert waiting["estimated_wait_s"] >= 1 and "pass" not in waiting, waiting


def test_sold_out_is_told_to_the_queue_and_passes_expire(make_server):
    srv = make_server(extra_args=ARGS)
    pid = 70_040
    put_room(srv, pid, stock=2, admit_per_s=1, pass_ttl_s=1)
    tickets = [join(srv, pid, u)["ticket"] for u in range(1, 6)]
    p1 = admitted_pass(srv, tickets[0])
    time.sleep(1.2)  # ticket 1's pass lapses unused
    s1 = status(srv, tickets[0])
    assert s1["status"] == "PASS_EXPIRED" and "pass" not in s1, s1
    assert buy(srv, 1, pid, p1).json()["status"] == "PASS_INVALID"
    # Later tickets are admitted on schedule anyway, and buy the stock.
    p2 = admitted_pass(srv, tickets[1])
    assert buy(srv, 2, pid, p2).json()["status"] == "ACCEPTED"
    p3 = admitted_pass(srv, tickets[2])
    assert buy(srv, 3, pid, p3).json()["status"] == "ACCEPTED"
    s5 = status(srv, tickets[4])
    assert s5["status"] == "SOLD_OUT" and s5["admitted"] is False, s5


def test_restart_resets_the_queue_but_issued_passes_stay_valid(make_server):
    srv = make_server(extra_args=ARGS)
    pid = 70_050
    put_room(srv, pid, stock=5, admit_per_s=1000, pass_ttl_s=60)
    ticket = join(srv, pid, 9)["ticket"]
    p9 = admitted_pass(srv, ticket)
    srv.restart()
    reset = status(srv, ticket, expect=410)
    assert reset["status"] == "QUEUE_RESET", reset
    assert buy(srv, 9, pid, p9).json()["status"] == "ACCEPTED"
    fresh = join(srv, pid, 10)
    assert fresh["position"] == 1 and fresh["ticket"] != ticket, fresh


def test_joins_are_rate_limited_and_capped_per_resolved_client(make_server):
    srv = make_server(extra_args=["--waiting-room-secret", SECRET, "--queue-places-per-address", "2",
                                  "--trusted-proxies", "127.0.0.1", "--rate-limit-address", "1",
                                  "--rate-limit-address-burst", "3"])
    pid = 70_060
    put_room(srv, pid, stock=5, admit_per_s=10)
    a = {"X-Forwarded-For": "203.0.113.1"}
    join(srv, pid, 1, headers=a)
    join(srv, pid, 2, headers=a)
    capped = join(srv, pid, 3, expect=403, headers=a)  # the third place of one client
    assert capped["status"] == "QUEUE_PLACES_EXCEEDED", capped
    # The burst of 3 is spent: the next join from that client is over the rate.
    r = srv.call("POST", f"/products/{pid}/queue", {"user_id": 4}, a)
    assert r.status == 429 and r.json()["status"] == "RATE_LIMITED" and r.header("Retry-After"), r
    # Another client behind the same proxy has its own bucket and places.
    assert join(srv, pid, 3, headers={"X-Forwarded-For": "203.0.113.2"})["position"] == 3
    m = srv.metrics()
    assert m.total("flashsale_rate_limited_total", key="address") == 1
    assert m.total("flashsale_queue_joined_total") == 3
