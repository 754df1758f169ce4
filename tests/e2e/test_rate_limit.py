"""Rate limits on POST /purchase (issue 10 §1, README "Rate limits"): 429 with Retry-After and
the seed's envelope, per client address (X-Forwarded-For only from --trusted-proxies) and per
user_id, nothing reserved on a 429, a heavy client does not slow the others, config errors.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time

import pytest

import harness
from harness import HOST, assert_error, assert_sale, db_orders, describe_cli, wait_until

RATE_LIMITED_MESSAGE = "请求过于频繁"


def assert_429(resp, msg: str = "") -> int:
    """Asserts the rate limits' 429; returns its Retry-After (whole seconds, >= 1)."""
    body = assert_error(resp, 429, msg)
    assert body["status"] == "RATE_LIMITED" and body["message"] == RATE_LIMITED_MESSAGE, f"{resp!r} {msg}"
    retry = resp.header("Retry-After")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, f"Retry-After: {resp!r} {msg}"
    return int(retry)


def buy(srv, user: int, product: int, xff: str | None = None, conn=None):
    headers = [("Content-Type", "application/json")]
    if xff is not None:
        headers.append(("X-Forwarded-For", xff))
    body = {"user_id": user, "product_id": product, "amount": 1}
    if conn is not None:
        return conn.request("POST", "/purchase", body, headers)
    with srv.conn() as c:
        return c.request("POST", "/purchase", body, headers)


def limits(address: tuple[float, int] | None = None, user: tuple[float, int] | None = None,
           trusted: str | None = None) -> list[str]:
    args: list[str] = []
    if address:
        args += ["--rate-limit-address", str(address[0]), "--rate-limit-address-burst", str(address[1])]
    if user:
        args += ["--rate-limit-user", str(user[0]), "--rate-limit-user-burst", str(user[1])]
    if trusted is not None:
        args += ["--trusted-proxies", trusted]
    return args


# ---- (b) X-Forwarded-For trust ----------------------------------------------------------------


def test_forwarded_for_from_an_untrusted_peer_is_ignored(make_server):
    srv = make_server(extra_args=limits(address=(0.2, 3), trusted="10.0.0.0/8"))
    srv.put_product(1, 0)
    with srv.conn() as c:
        # Every request claims another address; the bucket is the peer's (127.0.0.1).
        for i in range(3):
            assert_sale(buy(srv, 100 + i, 1, xff=f"203.0.113.{i}", conn=c), "SOLD_OUT")
        retry = assert_429(buy(srv, 200, 1, xff="203.0.113.99", conn=c), "4th request of one peer")
        assert retry >= 1
    # A new connection from the same peer shares the bucket.
    assert_429(buy(srv, 201, 1, xff="198.51.100.7"), "same peer, new connection")
    assert srv.metrics().total("flashsale_rate_limited_total", key="address") == 2


def test_forwarded_for_from_a_trusted_peer_keys_the_bucket(make_server):
    srv = make_server(extra_args=limits(address=(0.2, 3), trusted="127.0.0.1"))
    srv.put_product(1, 0)
    with srv.conn() as c:
        # Distinct forwarded clients: each has its own bucket.
        for i in range(10):
            assert_sale(buy(srv, 100 + i, 1, xff=f"203.0.113.{i}", conn=c), "SOLD_OUT", f"client {i}")
        # One forwarded client: limited after its burst, whatever the user.
        for i in range(3):
            assert_sale(buy(srv, 300 + i, 1, xff="198.51.100.7", conn=c), "SOLD_OUT")
        assert_429(buy(srv, 303, 1, xff="198.51.100.7", conn=c), "4th request of one client")
        # Walked from the right past trusted proxies: the client is 198.51.100.7 again, and a
        # client-made leftmost entry does not pick another bucket.
        assert_429(buy(srv, 304, 1, xff="6.6.6.6, 198.51.100.7, 127.0.0.1", conn=c), "through 2 proxies")
        # No header from a trusted peer: the peer itself is the client.
        for i in range(3):
            assert_sale(buy(srv, 400 + i, 1, conn=c), "SOLD_OUT")
        assert_429(buy(srv, 403, 1, conn=c), "the proxy's own bucket")


# ---- (c) per-user bucket ----------------------------------------------------------------------


def test_one_user_from_many_addresses_is_limited(make_server):
    srv = make_server(extra_args=limits(address=(100, 100), user=(0.2, 3), trusted="127.0.0.1"))
    srv.put_product(1, 0)
    with srv.conn() as c:
        for i in range(3):
            assert_sale(buy(srv, 42, 1, xff=f"203.0.113.{i}", conn=c), "SOLD_OUT")
        assert_429(buy(srv, 42, 1, xff="203.0.113.50", conn=c), "user 42 from a 4th address")
        assert_sale(buy(srv, 43, 1, xff="203.0.113.50", conn=c), "SOLD_OUT", "another user")
    m = srv.metrics()
    assert m.total("flashsale_rate_limited_total", key="user") == 1
    assert m.total("flashsale_rate_limited_total", key="address") == 0


def test_invalid_body_is_not_counted_against_the_user(make_server):
    srv = make_server(extra_args=limits(user=(0.2, 1)))
    srv.put_product(1, 0)
    with srv.conn() as c:
        bad = c.request("POST", "/purchase", {"user_id": 7, "product_id": 1, "amount": 0},
                        [("Content-Type", "application/json")])
        assert bad.status == 422, bad
        assert_sale(buy(srv, 7, 1, conn=c), "SOLD_OUT")
        assert_429(buy(srv, 7, 1, conn=c))


# ---- (d) nothing reserved on 429 --------------------------------------------------------------


def test_nothing_reserved_on_429(make_server):
    srv = make_server(extra_args=limits(address=(0.2, 4), user=(0.2, 2), trusted="127.0.0.1"))
    srv.put_product(5, 100, limit_per_user=10)
    accepted = []
    with srv.conn() as c:
        for _ in range(2):
            accepted.append(assert_sale(buy(srv, 1, 5, xff="203.0.113.1", conn=c), "ACCEPTED")["order_id"])
        assert_429(buy(srv, 1, 5, xff="203.0.113.1", conn=c), "user bucket")
        accepted.append(assert_sale(buy(srv, 2, 5, xff="203.0.113.1", conn=c), "ACCEPTED")["order_id"])
        assert_429(buy(srv, 3, 5, xff="203.0.113.1", conn=c), "address bucket")  # 4 tokens used
        assert_429(buy(srv, 4, 5, xff="203.0.113.1", conn=c), "address bucket")
    assert srv.remaining(5) == 97
    wait_until(lambda: len(db_orders(srv.db_path)) >= 3, 10, "the accepted orders recorded")
    time.sleep(0.3)
    orders = db_orders(srv.db_path)
    assert sorted(o["order_id"] for o in orders) == sorted(accepted), orders
    assert srv.metrics().total("flashsale_rate_limited_total") == 3


def test_limits_are_off_by_default(make_server):
    srv = make_server()
    srv.put_product(1, 0)
    with srv.conn() as c:
        for i in range(300):
            assert_sale(buy(srv, 1, 1, conn=c), "SOLD_OUT", f"request {i}")


# ---- (e) config errors ------------------------------------------------------------------------


@pytest.mark.parametrize("args,env,named", [
    (["--trusted-proxies", "127.0.0.1,bogus"], {}, ["--trusted-proxies", "bogus"]),
    (["--trusted-proxies", "10.0.0.0/40"], {}, ["--trusted-proxies", "10.0.0.0/40"]),
    ([], {"FLASHSALE_TRUSTED_PROXIES": "::1,not-an-ip"}, ["--trusted-proxies", "not-an-ip"]),
    (["--rate-limit-address", "-1"], {}, ["--rate-limit-address"]),
    (["--rate-limit-address", "abc"], {}, ["--rate-limit-address"]),
    (["--rate-limit-user", "5", "--rate-limit-user-burst", "0"], {}, ["--rate-limit-user-burst"]),
    (["--rate-limit-address-burst", "5"], {}, ["--rate-limit-address-burst", "--rate-limit-address"]),
    (["--rate-limit-slots", "10"], {}, ["--rate-limit-slots"]),
], ids=["bad-entry", "bad-prefix", "env", "negative-rate", "not-a-number", "zero-burst",
        "burst-without-rate", "tiny-table"])
def test_config_errors_name_the_flag(tmp_path, args, env, named):
    harness.require_binary()
    cmd = [harness.BIN, "serve", "--port", "0", "--database", f"sqlite:{tmp_path}/db",
           "--log-dir", str(tmp_path), *args]
    cp = subprocess.run(cmd, cwd=tmp_path, env={**harness.server_env(), **env}, capture_output=True,
                        text=True, timeout=20)
    assert cp.returncode == 2, describe_cli(cp)
    for word in named:
        assert word in cp.stderr, f"{word!r} not named\n{describe_cli(cp)}"


# ---- (a) one heavy client beside 200 light ones -------------------------------------------------

# The heavy client runs in its own process (its Python does not steal the light clients' GIL):
# one keep-alive connection, paced at RATE requests/s for DURATION s, one forwarded address.
_HEAVY = r"""
import http.client, json, sys, time
port, rate, duration = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
body = json.dumps({"user_id": 999999, "product_id": 1, "amount": 1})
hdrs = {"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.200"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
counts, retry_after_ok, first_429 = {}, True, None
start = time.monotonic()
i = 0
while True:
    due = start + i / rate
    now = time.monotonic()
    if due - start >= duration:
        break
    if due > now:
        time.sleep(due - now)
    c.request("POST", "/purchase", body, hdrs)
    r = c.getresponse()
    r.read()
    counts[r.status] = counts.get(r.status, 0) + 1
    if r.status == 429:
        if first_429 is None:
            first_429 = i
        ra = r.getheader("Retry-After")
        retry_after_ok = retry_after_ok and ra is not None and ra.isdigit() and int(ra) >= 1
    i += 1
print(json.dumps({"counts": counts, "retry_after_ok": retry_after_ok, "first_429": first_429,
                  "sent": i}))
"""

LIGHT_CLIENTS = 200
PHASE_S = 8.0


def _light_run(port: int, with_heavy: bool) -> tuple[list[float], dict[int, int], dict | None]:
    """200 clients at 1 request/s for PHASE_S, each its own keep-alive connection and forwarded
    address (and the heavy client beside them when asked). Returns the light latencies (s),
    the light statuses, and the heavy client's report."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    heavy = None
    if with_heavy:
        heavy = subprocess.Popen([sys.executable, "-c", _HEAVY, str(port), "500", str(PHASE_S)],
                                 stdout=subprocess.PIPE, text=True)
    start = time.monotonic() + 0.5
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=10)
            body = json.dumps({"user_id": 10_000 + n, "product_id": 1, "amount": 1})
            hdrs = {"Content-Type": "application/json", "X-Forwarded-For": f"10.7.{n // 250}.{n % 250 + 1}"}
            mine, codes = [], {}
            k = 0
            while True:
                due = start + (n / LIGHT_CLIENTS) + k  # phases spread over the second
                if due - start >= PHASE_S:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                c.request("POST", "/purchase", body, hdrs)
                r = c.getresponse()
                r.read()
                mine.append(time.perf_counter() - t0)
                codes[r.status] = codes.get(r.status, 0) + 1
                k += 1
            c.close()
            with lock:
                latencies.extend(mine)
                for s, v in codes.items():
                    statuses[s] = statuses.get(s, 0) + v
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(LIGHT_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PHASE_S + 30)
    report = None
    if heavy is not None:
        out, _ = heavy.communicate(timeout=30)
        assert heavy.returncode == 0, out
        report = json.loads(out)
    assert not errors, errors[:3]
    return latencies, statuses, report


def _p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def test_heavy_client_is_limited_and_the_others_are_not_slowed(make_server):
    srv = make_server(threads=2, extra_args=limits(address=(5, 10), trusted="127.0.0.1"))
    srv.put_product(1, 0)  # the sold-out path: every allowed request is answered at once
    base_lat, base_status, _ = _light_run(srv.port, with_heavy=False)
    heavy_lat, heavy_status, heavy = _light_run(srv.port, with_heavy=True)

    expected = LIGHT_CLIENTS * int(PHASE_S)
    assert base_status == {200: expected}, base_status
    assert heavy_status == {200: expected}, f"light clients got {heavy_status} beside the heavy one"
    # The heavy client: its burst (10) and ~5/s after it pass; the rest is 429 with Retry-After.
    assert heavy is not None
    sent = heavy["sent"]
    allowed = heavy["counts"].get("200", 0)
    limited = heavy["counts"].get("429", 0)
    assert sent >= 0.8 * 500 * PHASE_S, heavy  # it did send at about 500/s
    assert allowed + limited == sent, heavy
    assert 10 <= allowed <= 10 + 5 * PHASE_S + 2, heavy
    # The 11th request is the first refused (one more if the client stalled 200 ms in its burst).
    assert 10 <= heavy["first_429"] <= 12, heavy
    assert heavy["retry_after_ok"], heavy
    base_p99, heavy_p99 = _p99(base_lat), _p99(heavy_lat)
    print(f"light p99 without heavy {base_p99 * 1e3:.2f} ms, with heavy {heavy_p99 * 1e3:.2f} ms; "
          f"heavy {heavy}")
    assert heavy_p99 <= 1.2 * base_p99, (
        f"light clients' p99 {heavy_p99 * 1e3:.2f} ms beside the heavy client vs "
        f"{base_p99 * 1e3:.2f} ms without it (limit +20 %)")
    m = srv.metrics()
    assert m.total("flashsale_rate_limited_total", key="address") == limited
