"""The Redis Lua scripts of distributed mode against a real, throwaway redis-server.

Runs from the repo root (CTest: redis_lua_scripts):
    python3 -m pytest -x -q -p no:cacheprovider tests/redis/test_lua_scripts.py
Needs redis-server on PATH and redis-py (`pip install redis`); without them the module is
skipped, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "src" / "backends" / "redis"
INT64_MAX = 2**63 - 1
ORDER_TTL = 600
MARKER_TTL = 86400
NOW = 1_800_000_000_000


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the Redis script tests must run)", pytrace=False)
    pytest.skip(f"{why}; install it to run the Redis script tests", allow_module_level=True)


try:
    import redis
except ImportError:  # pragma: no cover
    redis = None
    _unavailable("redis-py is not installed (pip install redis)")
if shutil.which("redis-server") is None:
    _unavailable("redis-server is not on PATH (apt-get install -y redis-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="flashsale-redis-")
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
         "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                         max_connections=64)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    yield client
    client.close()
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)


class Store:
    """Calls the scripts by EVALSHA, with the key layout of the script headers."""

    def __init__(self, r):
        self.r = r
        self.reserve_sha = r.script_load((SCRIPTS / "reserve_stock.lua").read_text())
        self.release_sha = r.script_load((SCRIPTS / "release_stock.lua").read_text())
        self.put_sha = r.script_load((SCRIPTS / "put_product.lua").read_text())
        self.restock_sha = r.script_load((SCRIPTS / "restock_product.lua").read_text())
        self.get_sha = r.script_load((SCRIPTS / "get_product.lua").read_text())
        self.seed_sha = r.script_load((SCRIPTS / "seed_product.lua").read_text())

    @staticmethod
    def keys(pid, order_id):
        k = f"item:{{{pid}}}"
        return [f"{k}:meta", f"{k}:stock", f"{k}:sold_out", f"{k}:buyers", f"order:{order_id}",
                f"{k}:inflight"]

    def put(self, pid, stock, price=1999, limit=1, starts_at=None, ends_at=None, window=None):
        meta = {"price": price, "stock": stock, "limit_per_user": limit, "restock_epoch": 0}
        if window is not None:
            meta["payment_window_s"] = window
        if starts_at is not None:
            meta["starts_at"] = starts_at
        if ends_at is not None:
            meta["ends_at"] = ends_at
        self.r.hset(f"item:{{{pid}}}:meta", mapping=meta)
        self.r.set(f"item:{{{pid}}}:stock", stock)

    def reserve(self, pid, user, amount, order_id, now=NOW, pass_verified=None):
        """pass_verified: ARGV[7], "1"/"0"; None sends no ARGV[7] (read as "0")."""
        extra = [] if pass_verified is None else ["1" if pass_verified else "0"]
        reply = self.r.evalsha(self.reserve_sha, 6, *self.keys(pid, order_id),
                               pid, user, amount, order_id, now, ORDER_TTL, *extra)
        assert len(reply) == 6, reply
        return list(reply)

    def release(self, pid, user, amount, order_id):
        return self.r.evalsha(self.release_sha, 6, *self.keys(pid, order_id),
                              user, amount, MARKER_TTL, order_id)

    @staticmethod
    def product_keys(pid):
        k = f"item:{{{pid}}}"
        return [f"{k}:meta", f"{k}:stock", f"{k}:sold_out"]

    def put_product(self, pid, stock, price=1999, limit=1, starts_at="", ends_at="", window="",
                    room=("", "")):
        return self.r.evalsha(self.put_sha, 3, *self.product_keys(pid), price, stock, limit,
                              starts_at, ends_at, window, *room)

    def restock(self, pid, amount):
        return self.r.evalsha(self.restock_sha, 3, *self.product_keys(pid), amount)

    def get(self, pid):
        return self.r.evalsha(self.get_sha, 3, *self.product_keys(pid))

    def seed(self, pid, stock, remaining, version, buyers=(), price=1999, limit=1, window="",
             room=("", "")):
        k = f"item:{{{pid}}}"
        args = [price, stock, limit, "", "", remaining, 0, version, window, *room]
        for user, units, order in buyers:
            args += [user, units, order]
        return self.r.evalsha(self.seed_sha, 5, *self.product_keys(pid), f"{k}:buyers",
                              f"{k}:buyers:seed:t", *args)

    def version(self, pid):
        return int(self.r.hget(f"item:{{{pid}}}:meta", "version") or 0)

    def stock(self, pid):
        return int(self.r.get(f"item:{{{pid}}}:stock"))

    def flag_ttl(self, pid):
        return self.r.ttl(f"item:{{{pid}}}:sold_out")

    def inflight(self, pid):
        return self.r.zrange(f"item:{{{pid}}}:inflight", 0, -1, withscores=True)

    def units(self, pid, user):
        v = self.r.hget(f"item:{{{pid}}}:buyers", user)
        return int(v) if v is not None else None


_pid = iter(range(1000, 10**6))


@pytest.fixture
def store(server):
    return Store(server)


@pytest.fixture
def pid():
    return next(_pid)


def test_reserved_writes_everything(store, pid):
    store.put(pid, stock=5, price=1234, limit=3)
    assert store.reserve(pid, 7, 2, "o1") == ["RESERVED", 1234, 0, "", 0, 0]
    assert store.stock(pid) == 3
    assert store.units(pid, 7) == 2
    assert store.r.hget(f"item:{{{pid}}}:buyers", "7:o") == "o1"  # the user's latest order
    # The in-flight order and per-order marker, one string: R|user|product|amount|price|last|time.
    assert store.r.get("order:o1") == f"R|7|{pid}|2|1234|0|{NOW}|"
    assert 0 < store.r.ttl("order:o1") <= ORDER_TTL
    assert store.flag_ttl(pid) == -2  # no L2 flag


def test_unknown_product(store, pid):
    assert store.reserve(pid, 1, 1, f"u{pid}")[0] == "UNKNOWN_PRODUCT"
    assert store.r.exists(f"order:u{pid}") == 0


def test_sale_window(store, pid):
    store.put(pid, stock=5, starts_at=NOW, ends_at=NOW + 1000)
    assert store.reserve(pid, 1, 1, f"w{pid}a", now=NOW - 1)[0] == "NOT_STARTED"
    assert store.reserve(pid, 1, 1, f"w{pid}b", now=NOW + 1000)[0] == "ENDED"
    assert store.reserve(pid, 1, 1, f"w{pid}c", now=NOW)[0] == "RESERVED"
    assert store.reserve(pid, 2, 1, f"w{pid}d", now=NOW + 999)[0] == "RESERVED"


def test_limit_exceeded_returns_latest_order(store, pid):
    store.put(pid, stock=10, limit=2)
    assert store.reserve(pid, 1, 3, f"l{pid}a") == ["LIMIT_EXCEEDED", 0, 0, "", 0, 0]
    assert store.reserve(pid, 1, 1, f"l{pid}b")[0] == "RESERVED"
    assert store.reserve(pid, 1, 1, f"l{pid}c")[0] == "RESERVED"
    assert store.reserve(pid, 1, 1, f"l{pid}d") == ["LIMIT_EXCEEDED", 0, 0, f"l{pid}c", 0, 0]
    assert store.units(pid, 1) == 2 and store.stock(pid) == 8


def test_insufficient_then_sold_out(store, pid):
    store.put(pid, stock=2, limit=5)
    assert store.reserve(pid, 1, 3, f"i{pid}a")[0] == "INSUFFICIENT_STOCK"
    assert store.stock(pid) == 2 and store.units(pid, 1) is None
    assert store.flag_ttl(pid) == -2
    # Stock 0 without the flag (e.g. the flag expired): SOLD_OUT, and the flag is set.
    store.r.set(f"item:{{{pid}}}:stock", 0)
    assert store.reserve(pid, 1, 1, f"i{pid}b")[0] == "SOLD_OUT"
    assert 3590 <= store.flag_ttl(pid) <= 3600


def test_last_unit_sets_l2(store, pid):
    store.put(pid, stock=3, price=500, limit=3)
    assert store.reserve(pid, 1, 2, f"t{pid}a")[:3] == ["RESERVED", 500, 0]
    assert store.reserve(pid, 2, 1, f"t{pid}b")[:3] == ["RESERVED", 500, 1]
    assert store.stock(pid) == 0
    assert store.r.get(f"item:{{{pid}}}:sold_out") == "1"
    assert 3590 <= store.flag_ttl(pid) <= 3600
    assert store.reserve(pid, 3, 1, f"t{pid}c")[0] == "SOLD_OUT"


def test_precedence(store, pid):
    # Everything refuses at once: user 1 is at the limit, stock is 0, L2 is set, sale over.
    store.put(pid, stock=1, limit=1, starts_at=NOW - 10, ends_at=NOW + 10)
    assert store.reserve(pid, 1, 1, f"p{pid}a")[2] == 1
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 1
    assert store.reserve(pid, 1, 1, f"p{pid}b", now=NOW - 20)[0] == "NOT_STARTED"  # window
    assert store.reserve(pid, 1, 1, f"p{pid}c", now=NOW + 10)[0] == "ENDED"        # window
    assert store.reserve(pid, 1, 1, f"p{pid}d")[0] == "SOLD_OUT"           # L2 before limit
    store.r.delete(f"item:{{{pid}}}:sold_out")
    assert store.reserve(pid, 1, 1, f"p{pid}e")[0] == "LIMIT_EXCEEDED"     # limit before stock
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 0  # limit refusal never sets L2
    assert store.reserve(pid, 2, 1, f"p{pid}f")[0] == "SOLD_OUT"           # stock
    # L2 before stock: a flag with stock left still refuses.
    store.r.set(f"item:{{{pid}}}:stock", 1)
    assert store.reserve(pid, 2, 1, f"p{pid}g")[0] == "SOLD_OUT"
    assert store.stock(pid) == 1


def test_waiting_room_needs_a_verified_pass_before_anything_else(store, pid):
    store.put(pid, stock=1, limit=1, starts_at=NOW + 1000)
    store.r.hset(f"item:{{{pid}}}:meta", mapping={"wr_admit_per_s": 5, "wr_pass_ttl_s": 60})
    refused = ["PASS_REQUIRED", 0, 0, "", 0, 0]
    # Before the sale window (and L2, limit, stock): PASS_REQUIRED, with "0" or no flag at all.
    assert store.reserve(pid, 1, 1, f"w{pid}a", pass_verified=False) == refused
    assert store.reserve(pid, 1, 1, f"w{pid}b") == refused
    assert store.reserve(pid, 1, 1, f"w{pid}c", pass_verified=True)[0] == "NOT_STARTED"
    assert store.reserve(pid, 1, 1, f"w{pid}d", now=NOW + 1000, pass_verified=True)[0] == \
        "RESERVED"
    # Sold out now: the refusal still comes first and writes nothing (not even L2).
    store.r.delete(f"item:{{{pid}}}:sold_out")
    assert store.reserve(pid, 2, 1, f"w{pid}e", now=NOW + 1000, pass_verified=False) == refused
    assert store.r.exists(f"item:{{{pid}}}:sold_out", f"order:w{pid}e") == 0
    assert store.units(pid, 2) is None
    assert [m for m, _ in store.inflight(pid)] == [f"w{pid}d"]
    # A replay of the reservation that was made answers it, flag or not.
    assert store.reserve(pid, 1, 1, f"w{pid}d", now=NOW + 1000, pass_verified=False)[0] == \
        "RESERVED"
    assert store.stock(pid) == 0


def test_pass_flag_is_ignored_without_a_waiting_room(store, pid):
    store.put(pid, stock=5, limit=5)
    assert store.reserve(pid, 1, 1, f"n{pid}a", pass_verified=False)[0] == "RESERVED"
    assert store.reserve(pid, 1, 1, f"n{pid}b", pass_verified=True)[0] == "RESERVED"
    store.r.hset(f"item:{{{pid}}}:meta", "wr_admit_per_s", "")  # "" = no waiting room
    assert store.reserve(pid, 1, 1, f"n{pid}c", pass_verified=False)[0] == "RESERVED"
    assert store.stock(pid) == 2


def test_huge_amount(store, pid):
    store.put(pid, stock=10, limit=2)
    assert store.reserve(pid, 1, INT64_MAX, f"h{pid}a")[0] == "LIMIT_EXCEEDED"
    store.put(pid, stock=10, limit=INT64_MAX)
    assert store.reserve(pid, 1, INT64_MAX, f"h{pid}b")[0] == "INSUFFICIENT_STOCK"
    assert store.reserve(pid, 1, 1, f"h{pid}c")[0] == "RESERVED"
    # held 1, limit 2^63-1: amount 2^63-2 passes the limit exactly, 2^63-1 does not.
    assert store.reserve(pid, 1, INT64_MAX, f"h{pid}d")[0] == "LIMIT_EXCEEDED"
    assert store.reserve(pid, 1, INT64_MAX - 1, f"h{pid}e")[0] == "INSUFFICIENT_STOCK"
    assert store.stock(pid) == 9 and store.units(pid, 1) == 1
    # Holdings past 10^15 are summed in decimal, exactly (a double would round them).
    big = 10**16 + 1
    store.put(pid, stock=INT64_MAX, limit=INT64_MAX)
    assert store.reserve(pid, 2, big, f"h{pid}x")[0] == "RESERVED"
    assert store.reserve(pid, 2, big + 2, f"h{pid}y")[0] == "RESERVED"
    assert store.r.hget(f"item:{{{pid}}}:buyers", 2) == str(2 * big + 2)
    assert store.r.hget(f"item:{{{pid}}}:buyers", "2:o") == f"h{pid}y"
    assert store.reserve(pid, 2, INT64_MAX - 2 * big - 3, f"h{pid}z")[0] == "RESERVED"
    assert store.r.hget(f"item:{{{pid}}}:buyers", 2) == str(INT64_MAX - 1)
    assert store.stock(pid) == 1
    assert store.reserve(pid, 2, 2, f"h{pid}w")[0] == "LIMIT_EXCEEDED"  # would hold 2^63
    with pytest.raises(redis.ResponseError, match="bad amount"):
        store.reserve(pid, 1, INT64_MAX + 1, f"h{pid}f")
    with pytest.raises(redis.ResponseError, match="bad amount"):
        store.reserve(pid, 1, 0, f"h{pid}g")


def test_reserve_idempotent_per_order(store, pid):
    store.put(pid, stock=1, price=700, limit=5)
    first = store.reserve(pid, 1, 1, f"d{pid}")
    assert first == ["RESERVED", 700, 1, "", 0, 0]
    # Retried (even after the product sold out): same answer, nothing taken again.
    assert store.reserve(pid, 1, 1, f"d{pid}") == first
    assert store.stock(pid) == 0 and store.units(pid, 1) == 1
    assert store.r.get(f"order:d{pid}") == f"R|1|{pid}|1|700|1|{NOW}|"
    assert 0 < store.r.ttl(f"order:d{pid}") <= ORDER_TTL


def test_release_restores_everything(store, pid):
    store.put(pid, stock=2, limit=2)
    assert store.reserve(pid, 1, 1, f"r{pid}a")[0] == "RESERVED"
    assert store.reserve(pid, 1, 1, f"r{pid}b")[2] == 1  # took the last unit: L2 set
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 1
    assert store.release(pid, 1, 1, f"r{pid}b") == ["RELEASED", 1]
    assert store.stock(pid) == 1 and store.units(pid, 1) == 1
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 0
    # Released: the marker stays (same TTL) with X in front, so replays are recognised.
    assert store.r.get(f"order:r{pid}b") == f"X|1|{pid}|1|1999|1|{NOW}|"
    assert 0 < store.r.ttl(f"order:r{pid}b") <= ORDER_TTL
    assert store.r.hget(f"item:{{{pid}}}:meta", "restock_epoch") == "1"
    # Idempotent: a second release changes nothing.
    assert store.release(pid, 1, 1, f"r{pid}b") == ["ALREADY_RELEASED", 1]
    assert store.stock(pid) == 1 and store.units(pid, 1) == 1
    # A reserve retried with the released order id takes nothing.
    assert store.reserve(pid, 1, 1, f"r{pid}b")[0] == "RELEASED"
    assert store.stock(pid) == 1
    # The last unit of the user: the buyer record goes (latest order id with it).
    assert store.release(pid, 1, 1, f"r{pid}a") == ["RELEASED", 2]
    assert store.units(pid, 1) is None
    assert store.r.hget(f"item:{{{pid}}}:buyers", "1:o") is None
    assert store.stock(pid) == 2
    # The epoch comes back from reserve too.
    assert store.reserve(pid, 2, 1, f"r{pid}c") == ["RESERVED", 1999, 0, "", 2, 0]


def test_release_caps_at_stock_and_checks_the_reservation(store, pid):
    store.put(pid, stock=3, limit=3)
    assert store.reserve(pid, 1, 2, f"c{pid}a")[0] == "RESERVED"
    store.r.set(f"item:{{{pid}}}:stock", 2)  # pretend remaining drifted up
    assert store.release(pid, 1, 2, f"c{pid}a")[0] == "RELEASED"
    assert store.stock(pid) == 3  # min(2 + 2, 3)
    with pytest.raises(redis.ResponseError, match="without a matching reservation"):
        store.release(pid, 1, 1, f"c{pid}none")
    assert store.reserve(pid, 2, 1, f"c{pid}b")[0] == "RESERVED"
    with pytest.raises(redis.ResponseError, match="without a matching reservation"):
        store.release(pid, 3, 1, f"c{pid}b")  # the marker names another user
    with pytest.raises(redis.ResponseError, match="unknown product"):
        store.release(pid + 10**7, 1, 1, "nothing")
    assert store.stock(pid) == 2 and store.units(pid, 2) == 1


def test_race_no_oversell_no_user_over_limit(store, pid):
    store.put(pid, stock=100, limit=2)
    threads, calls, users = 32, 100, 150
    reserved = []  # (user, amount)
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(t):
        mine = []
        try:
            start.wait()
            for i in range(calls):
                user = (t * 7 + i * 13) % users
                amount = 1 + (i + t) % 2
                code = store.reserve(pid, user, amount, f"x{pid}-{t}-{i}")[0]
                assert code in ("RESERVED", "LIMIT_EXCEEDED", "SOLD_OUT",
                                "INSUFFICIENT_STOCK"), code
                if code == "RESERVED":
                    mine.append((user, amount))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        with lock:
            reserved.extend(mine)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert sum(a for _, a in reserved) == 100
    assert store.stock(pid) == 0
    per_user = {}
    for u, a in reserved:
        per_user[u] = per_user.get(u, 0) + a
    assert max(per_user.values()) <= 2
    buyers = {int(k): int(v) for k, v in store.r.hgetall(f"item:{{{pid}}}:buyers").items()
              if not k.endswith(":o")}
    assert buyers == per_user
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 1


# -- order lifecycle: payment window -> pay_by, the marker's TTL, the in-flight index ---------


def test_window_sets_pay_by_marker_field_and_ttl(store, pid):
    store.put(pid, stock=5, price=250, limit=2, window=900)
    oid = f"pw{pid}"
    assert store.reserve(pid, 3, 1, oid) == ["RESERVED", 250, 0, "", 0, NOW + 900_000]
    assert store.r.get(f"order:{oid}") == f"R|3|{pid}|1|250|0|{NOW}|{NOW + 900_000}"
    # The marker outlives the payment window plus the retry horizon (order_ttl).
    assert ORDER_TTL + 900 - 5 <= store.r.ttl(f"order:{oid}") <= ORDER_TTL + 900
    # The longest window (7 days) at a far-future now: exact integer milliseconds.
    store.put(pid, stock=5, price=250, limit=2, window=604_800)
    far = 2**43 - 1
    assert store.reserve(pid, 4, 1, f"pf{pid}", now=far)[5] == far + 604_800_000
    assert store.r.get(f"order:pf{pid}").endswith(f"|{far}|{far + 604_800_000}")


def test_replay_returns_the_markers_pay_by(store, pid):
    store.put(pid, stock=5, limit=2, window=60)
    oid = f"pr{pid}"
    first = store.reserve(pid, 1, 1, oid)
    assert first[5] == NOW + 60_000
    # Retried later, after the window changed: the first decision, nothing taken again.
    store.r.hset(f"item:{{{pid}}}:meta", "payment_window_s", 5)
    assert store.reserve(pid, 1, 1, oid, now=NOW + 3_000) == first
    assert store.stock(pid) == 4 and store.units(pid, 1) == 1
    assert store.inflight(pid) == [(oid, float(NOW))]
    # Without a window: pay_by 0 on the first call and on its replay.
    store.r.hset(f"item:{{{pid}}}:meta", "payment_window_s", "")
    assert store.reserve(pid, 2, 1, f"pn{pid}")[5] == 0
    assert store.reserve(pid, 2, 1, f"pn{pid}", now=NOW + 1)[5] == 0
    assert 0 < store.r.ttl(f"order:pn{pid}") <= ORDER_TTL


def test_old_seven_field_markers_still_replay_and_release(store, pid):
    # A reservation made by the script before the payment step: 7 fields, no index entry.
    store.put(pid, stock=3, limit=2)
    oid = f"po{pid}"
    store.r.set(f"item:{{{pid}}}:stock", 2)
    store.r.hset(f"item:{{{pid}}}:buyers", mapping={"5": 1, "5:o": oid})
    store.r.set(f"order:{oid}", f"R|5|{pid}|1|1999|0|{NOW}", ex=ORDER_TTL)
    assert store.reserve(pid, 5, 1, oid) == ["RESERVED", 1999, 0, "", 0, 0]
    assert store.stock(pid) == 2
    assert store.release(pid, 5, 1, oid) == ["RELEASED", 1]
    assert store.stock(pid) == 3 and store.units(pid, 5) is None
    assert store.r.get(f"order:{oid}") == f"X|5|{pid}|1|1999|0|{NOW}"
    assert store.release(pid, 5, 1, oid) == ["ALREADY_RELEASED", 1]
    assert store.stock(pid) == 3


def test_inflight_index_follows_reserve_and_release(store, pid):
    store.put(pid, stock=2, limit=5, window=30)
    a, b, c = f"ia{pid}", f"ib{pid}", f"ic{pid}"
    assert store.reserve(pid, 1, 1, a)[0] == "RESERVED"
    assert store.reserve(pid, 2, 1, b, now=NOW + 7)[0] == "RESERVED"
    assert store.inflight(pid) == [(a, float(NOW)), (b, float(NOW + 7))]
    # Refusals are not indexed.
    assert store.reserve(pid, 3, 1, c)[0] == "SOLD_OUT"
    assert store.reserve(pid, 1, 9, f"id{pid}")[0] == "SOLD_OUT"
    assert len(store.inflight(pid)) == 2
    # A release takes its order out; a second release changes nothing (units back once).
    assert store.release(pid, 1, 1, a) == ["RELEASED", 1]
    assert store.inflight(pid) == [(b, float(NOW + 7))]
    assert store.release(pid, 1, 1, a) == ["ALREADY_RELEASED", 1]
    assert store.stock(pid) == 1 and store.units(pid, 1) is None
    # A release after the marker expired (done from ARGV) takes it out too.
    store.r.delete(f"order:{b}")
    assert store.release(pid, 2, 1, b) == ["RELEASED", 2]
    assert store.inflight(pid) == []
    assert store.r.get(f"order:{b}") == f"X|2||1||||"
    assert store.stock(pid) == 2


def test_window_is_put_seeded_restocked_and_read(store, pid):
    assert store.put_product(pid, 5, window=120)[0] == "OK"
    assert store.r.hget(f"item:{{{pid}}}:meta", "payment_window_s") == "120"
    assert store.reserve(pid, 1, 1, f"wp{pid}")[5] == NOW + 120_000
    # The restock reply carries the window: the row persisted for that version keeps it.
    assert store.restock(pid, 1)[9] == "120"
    meta, _, _ = store.get(pid)
    assert dict(zip(meta[::2], meta[1::2]))["payment_window_s"] == "120"
    # "" removes the payment step.
    assert store.put_product(pid, 6, window="")[0] == "OK"
    assert store.restock(pid, 1)[9] == ""
    assert store.reserve(pid, 2, 1, f"wq{pid}")[5] == 0
    before = store.r.hgetall(f"item:{{{pid}}}:meta")
    for bad in ("0", "-5", "1.5", "604801", "x", "0120"):
        with pytest.raises(redis.ResponseError, match="bad payment_window_s"):
            store.put_product(pid, 9, window=bad)
    assert store.r.hgetall(f"item:{{{pid}}}:meta") == before
    assert store.put_product(pid, 9, window="604800")[0] == "OK"
    # Seeding from the database writes the row's window.
    assert store.seed(pid + 10**6, 4, 4, 3, window="45") == 1
    assert store.r.hget(f"item:{{{pid + 10**6}}}:meta", "payment_window_s") == "45"
    assert store.reserve(pid + 10**6, 1, 1, f"ws{pid}")[5] == NOW + 45_000


def test_waiting_room_is_put_seeded_restocked_and_read(store, pid):
    meta_key = f"item:{{{pid}}}:meta"
    assert store.put_product(pid, 5, room=(50, 120))[0] == "OK"
    assert store.r.hmget(meta_key, "wr_admit_per_s", "wr_pass_ttl_s") == ["50", "120"]
    # The restock reply carries it: the row persisted for that version keeps it.
    assert store.restock(pid, 1)[10:] == ["50", "120"]
    meta, _, _ = store.get(pid)
    meta = dict(zip(meta[::2], meta[1::2]))
    assert meta["wr_admit_per_s"] == "50" and meta["wr_pass_ttl_s"] == "120"
    # PUT replaces the product: without a waiting room, both fields are "".
    assert store.put_product(pid, 6)[0] == "OK"
    assert store.r.hmget(meta_key, "wr_admit_per_s", "wr_pass_ttl_s") == ["", ""]
    assert store.restock(pid, 1)[10:] == ["", ""]
    # The bounds (WaitingRoom's kMaxAdmitPerS, kMaxPassTtlS) are accepted...
    assert store.put_product(pid, 9, room=("1000000", "86400"))[0] == "OK"
    assert store.put_product(pid, 9, room=("1", "1"))[0] == "OK"
    # ... and anything else refused, nothing changed.
    before = store.r.hgetall(meta_key)
    before_stock = store.stock(pid)
    for bad in [("0", "5"), ("1000001", "5"), ("5", "0"), ("5", "86401"), ("5", ""), ("", "5"),
                ("-1", "5"), ("1.5", "5"), ("x", "5"), ("05", "5"), ("5", "0120"),
                ("10000000000000000000000", "5")]:
        with pytest.raises(redis.ResponseError, match="FLASHSALE bad waiting_room"):
            store.put_product(pid, 12, room=bad)
    assert store.r.hgetall(meta_key) == before and store.stock(pid) == before_stock
    # Seeding from the database writes the row's waiting room; buyers still land (ARGV 12..).
    other = pid + 10**6
    assert store.seed(other, 4, 3, 3, buyers=[(42, 1, "o1")], room=("7", "30")) == 1
    assert store.r.hmget(f"item:{{{other}}}:meta", "wr_admit_per_s", "wr_pass_ttl_s") == \
        ["7", "30"]
    assert store.units(other, 42) == 1
    assert store.seed(other + 10**6, 4, 4, 3) == 1
    assert store.r.hmget(f"item:{{{other + 10**6}}}:meta", "wr_admit_per_s",
                         "wr_pass_ttl_s") == ["", ""]
    with pytest.raises(redis.ResponseError, match="FLASHSALE bad waiting_room"):
        store.seed(other + 2 * 10**6, 4, 4, 3, room=("7", ""))
    assert not store.r.exists(f"item:{{{other + 2 * 10**6}}}:meta")


# -- admin scripts: put_product.lua, restock_product.lua, get_product.lua, seed_product.lua ----


def test_put_creates_replaces_and_numbers_each_change(store, pid):
    assert store.put_product(pid, 5, price=700, limit=2) == ["OK", 1, 0, "0", 1]
    assert store.version(pid) == 1
    assert store.reserve(pid, 1, 2, f"p{pid}")[0] == "RESERVED"
    # Replaced: remaining = stock - sold; units remain, so a replaced product is reopened.
    assert store.put_product(pid, 9, price=800, limit=3, starts_at=NOW, ends_at=NOW + 10) == \
        ["OK", 0, 1, "1", 2]
    assert store.stock(pid) == 7
    meta = store.r.hgetall(f"item:{{{pid}}}:meta")
    assert meta["price"] == "800" and meta["stock"] == "9" and meta["limit_per_user"] == "3"
    assert meta["starts_at"] == str(NOW) and meta["ends_at"] == str(NOW + 10)
    # stock == sold: remaining 0, not reopened, still a numbered change.
    assert store.put_product(pid, 2) == ["OK", 0, 0, "1", 3]
    assert store.stock(pid) == 0


def test_put_below_sold_is_a_conflict_that_changes_nothing(store, pid):
    store.put_product(pid, 5, limit=5)
    assert store.reserve(pid, 1, 3, f"c{pid}")[0] == "RESERVED"
    before = store.r.hgetall(f"item:{{{pid}}}:meta")
    assert store.put_product(pid, 2, limit=5) == ["CONFLICT", 3]
    assert store.r.hgetall(f"item:{{{pid}}}:meta") == before
    assert store.stock(pid) == 2


def test_restock_returns_the_product_as_now_held(store, pid):
    assert store.restock(pid, 3) == ["NOT_FOUND"]
    assert not store.r.exists(f"item:{{{pid}}}:meta")
    store.put_product(pid, 1, price=450, limit=4, starts_at=NOW)
    assert store.reserve(pid, 1, 1, f"r{pid}")[0] == "RESERVED"
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 1
    reply = store.restock(pid, 5)
    # OK, reopened, epoch, version, price, stock, limit, starts_at, ends_at
    assert reply == ["OK", 1, "1", 2, "450", "6", "4", str(NOW), "", "", "", ""]
    assert store.stock(pid) == 5
    assert store.r.exists(f"item:{{{pid}}}:sold_out") == 0


def test_restock_overflow_and_bad_amount_change_nothing(store, pid):
    store.put(pid, INT64_MAX - 1)  # direct writes: put_product.lua computes in doubles
    before = store.r.hgetall(f"item:{{{pid}}}:meta")
    assert store.restock(pid, 2) == ["OVERFLOW"]
    for bad in ("0", "-1", "x"):
        with pytest.raises(redis.ResponseError, match="FLASHSALE bad amount"):
            store.restock(pid, bad)
    assert store.r.hgetall(f"item:{{{pid}}}:meta") == before
    assert store.restock(pid, 1)[5] == str(INT64_MAX)


def test_racing_restocks_and_puts_are_numbered_once_each(store, pid):
    store.put_product(pid, 10, limit=1)
    versions, errors = [], []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker(t):
        try:
            start.wait()
            for i in range(25):
                reply = store.restock(pid, 1) if (t + i) % 2 else store.put_product(pid, 10 + t, limit=1)
                with lock:
                    versions.append(reply[3] if reply[0] == "OK" and len(reply) == 12 else reply[4])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert sorted(versions) == list(range(2, 2 + 16 * 25))
    assert store.version(pid) == 1 + 16 * 25


def test_get_reads_meta_remaining_and_flag(store, pid):
    assert store.get(pid) == [[], "", 0]
    store.put_product(pid, 1, price=300, limit=1)
    store.reserve(pid, 1, 1, f"g{pid}")
    meta, remaining, flag = store.get(pid)
    meta = dict(zip(meta[::2], meta[1::2]))
    assert meta["price"] == "300" and meta["version"] == "1"
    assert remaining == "0" and flag == 1


def test_seed_creates_once_with_the_database_version(store, pid):
    assert store.seed(pid, 10, 7, 41, buyers=[(42, 3, "o1")], limit=5) == 1
    assert store.version(pid) == 41
    assert store.stock(pid) == 7
    assert store.units(pid, 42) == 3
    assert store.r.hget(f"item:{{{pid}}}:buyers", "42:o") == "o1"
    # Existing: kept as it is.
    assert store.seed(pid, 99, 99, 1) == 0
    assert store.stock(pid) == 7 and store.version(pid) == 41
    # The next admin change is numbered above the database row's version.
    assert store.restock(pid, 1)[3] == 42


# -- Idempotency-Key scripts: claim_idempotency_key.lua, take_over_idempotency_key.lua,
#    finish_idempotency_key.lua (RedisIdempotencyStore) ----------------------------------------

IDEM_TTL_MS = 86_400_000


class IdemKeys:
    """The Idempotency-Key scripts with the key layout of their headers. Every test gets its own
    prefix, so the (otherwise server-wide) indexes and let-go flag of one test are its own."""

    def __init__(self, r, tag):
        self.r = r
        self.prefix = f"t{tag}:idem:"
        self.refused = f"t{tag}:idem-index:refused"
        self.accepted = f"t{tag}:idem-index:accepted"
        self.let_go = f"t{tag}:idem-index:accepted-let-go"
        self.claim_sha = r.script_load((SCRIPTS / "claim_idempotency_key.lua").read_text())
        self.take_over_sha = r.script_load((SCRIPTS / "take_over_idempotency_key.lua").read_text())
        self.finish_sha = r.script_load((SCRIPTS / "finish_idempotency_key.lua").read_text())

    def key(self, k):
        return self.prefix + k

    def claim(self, k, pending, ttl_ms=IDEM_TTL_MS):
        return self.r.evalsha(self.claim_sha, 2, self.key(k), self.let_go, pending, ttl_ms)

    def take_over(self, k, stale, mine):
        return self.r.evalsha(self.take_over_sha, 1, self.key(k), stale, mine)

    def finish(self, k, answer, accepted, now=NOW, max_keys=1000, ttl_ms=IDEM_TTL_MS):
        return self.r.evalsha(self.finish_sha, 4, self.key(k), self.refused, self.accepted,
                              self.let_go, answer, ttl_ms, "1" if accepted else "0", now,
                              max_keys, k, self.prefix)

    def get(self, k):
        return self.r.get(self.key(k))

    def index(self, name):
        return self.r.zrange(name, 0, -1, withscores=True)


@pytest.fixture
def idem(server, pid):
    return IdemKeys(server, pid)


def test_idem_claim_of_a_fresh_key_creates_it_pending(idem):
    pending = f"P|7|42|1|o1|{NOW}"
    assert idem.claim("k", pending, ttl_ms=60_000) == 0  # created; nothing let go
    assert idem.get("k") == pending
    assert 59_000 < idem.r.pttl(idem.key("k")) <= 60_000
    # While accepted answers were let go, a claim that creates a key says: ask the order record.
    idem.r.set(idem.let_go, "1")
    assert idem.claim("k2", f"P|7|42|1|o2|{NOW}") == 1
    assert idem.get("k2") == f"P|7|42|1|o2|{NOW}"


def test_idem_claim_of_a_held_key_reads_it_back_unchanged(idem):
    first = f"P|7|42|1|o1|{NOW}"
    assert idem.claim("k", first, ttl_ms=60_000) == 0
    idem.r.pexpire(idem.key("k"), 30_000)
    # A racing retry (same fingerprint) and a mismatch (another user): both read the pending
    # value back; neither overwrites it nor extends its TTL (the caller compares fingerprints).
    assert idem.claim("k", f"P|7|42|1|o2|{NOW + 1}") == first
    assert idem.claim("k", f"P|8|42|1|o3|{NOW + 1}") == first
    assert idem.get("k") == first
    assert 29_000 < idem.r.pttl(idem.key("k")) <= 30_000
    # Even with the let-go flag set: a held key is answered from Redis, not the order record.
    idem.r.set(idem.let_go, "1")
    assert idem.claim("k", f"P|7|42|1|o4|{NOW + 2}") == first


def test_idem_replay_of_a_finished_key(idem):
    assert idem.claim("k", f"P|7|42|2|o1|{NOW}", ttl_ms=30_000) == 0
    assert idem.finish("k", "|ACCEPTED|OK|o1", accepted=True) == 1
    finished = "F|7|42|2|ACCEPTED|OK|o1"
    assert idem.get("k") == finished
    # The answer lives for the full TTL from the finish, not from the claim.
    assert IDEM_TTL_MS - 5_000 < idem.r.pttl(idem.key("k")) <= IDEM_TTL_MS
    assert idem.index(idem.accepted) == [("k", float(NOW))]
    assert idem.index(idem.refused) == []
    # Retries read the first answer back (a mismatch too: the fingerprint is in the value).
    assert idem.claim("k", f"P|7|42|2|o9|{NOW + 5}") == finished
    assert idem.claim("k", f"P|9|42|2|o9|{NOW + 5}") == finished
    assert idem.get("k") == finished


def test_idem_finish_stores_only_a_pending_key(idem):
    # Unknown (expired, or deleted by a refused hand-off): nothing written, nothing indexed.
    assert idem.finish("gone", "|SOLD_OUT|OK|", accepted=False) == 0
    assert idem.get("gone") is None
    # Already finished (a second Finish): the first answer stays.
    idem.claim("k", f"P|7|42|1|o1|{NOW}")
    assert idem.finish("k", "|SOLD_OUT|OK|", accepted=False) == 1
    assert idem.get("k") == "F|7|42|1|SOLD_OUT|OK|"
    assert idem.finish("k", "|ACCEPTED|UNKNOWN|o1", accepted=True, now=NOW + 1) == 0
    assert idem.get("k") == "F|7|42|1|SOLD_OUT|OK|"
    assert idem.index(idem.refused) == [("k", float(NOW))]
    assert idem.index(idem.accepted) == []
    assert not idem.r.exists(idem.let_go)


def test_idem_take_over_is_a_compare_and_set_that_keeps_the_ttl(idem):
    stale = f"P|7|42|1|o1|{NOW}"
    idem.claim("k", stale, ttl_ms=60_000)
    idem.r.pexpire(idem.key("k"), 40_000)
    mine = f"P|7|42|1|o1|{NOW + 31_000}"
    assert idem.take_over("k", stale, mine) == 1
    assert idem.get("k") == mine
    assert 39_000 < idem.r.pttl(idem.key("k")) <= 40_000  # KEEPTTL: no longer life
    # A racing retry that read the same stale value loses: nothing written.
    assert idem.take_over("k", stale, f"P|7|42|1|o2|{NOW + 31_001}") == 0
    assert idem.get("k") == mine
    # A key that is gone is not created.
    assert idem.take_over("gone", stale, mine) == 0
    assert idem.get("gone") is None


def test_idem_finish_trims_over_the_cap_refusals_first(idem):
    # Cap 3. Two accepted answers, then refusals: the refusals go first, oldest first.
    def finish(k, accepted, t, max_keys=3):
        idem.claim(k, f"P|1|2|1|o{k}|{t}")
        return idem.finish(k, f"|{'ACCEPTED' if accepted else 'SOLD_OUT'}|OK|o{k}", accepted,
                           now=t, max_keys=max_keys)

    assert finish("a1", True, NOW + 1) == 1
    assert finish("a2", True, NOW + 2) == 1
    assert finish("r1", False, NOW + 3) == 1
    assert finish("r2", False, NOW + 4) == 1  # 4 > 3: the oldest refusal r1 goes
    assert idem.get("r1") is None
    assert [m for m, _ in idem.index(idem.refused)] == ["r2"]
    assert [m for m, _ in idem.index(idem.accepted)] == ["a1", "a2"]
    assert not idem.r.exists(idem.let_go)  # no accepted answer let go yet
    # An accepted answer over the cap: the one refusal left goes first, nothing else.
    assert finish("a3", True, NOW + 5) == 1
    assert idem.get("r2") is None
    assert idem.index(idem.refused) == []
    assert [m for m, _ in idem.index(idem.accepted)] == ["a1", "a2", "a3"]
    assert not idem.r.exists(idem.let_go)
    # No refusal left: the oldest accepted answer goes, and the let-go flag is set (TTL).
    assert finish("a4", True, NOW + 6) == 1
    assert idem.get("a1") is None
    assert [m for m, _ in idem.index(idem.accepted)] == ["a2", "a3", "a4"]
    assert idem.r.get(idem.let_go) == "1"
    assert IDEM_TTL_MS - 5_000 < idem.r.pttl(idem.let_go) <= IDEM_TTL_MS
    # A popped key that is pending again (claimed anew since) is left alone: only finished
    # answers are deleted.
    idem.r.set(idem.key("a2"), f"P|1|2|1|oa2b|{NOW + 7}")
    assert finish("r3", False, NOW + 8, max_keys=2) == 1  # 4 > 2: r3, then a2 popped
    assert idem.get("r3") is None
    assert idem.get("a2") == f"P|1|2|1|oa2b|{NOW + 7}"
    assert [m for m, _ in idem.index(idem.accepted)] == ["a3", "a4"]
    assert idem.get("a3") == "F|1|2|1|ACCEPTED|OK|oa3"


def test_idem_finish_drops_index_entries_older_than_the_ttl(idem):
    ttl = 1_000
    idem.claim("old", f"P|1|2|1|o1|{NOW}")
    assert idem.finish("old", "|SOLD_OUT|OK|", accepted=False, now=NOW, ttl_ms=ttl) == 1
    idem.claim("older", f"P|1|2|1|o2|{NOW}")
    assert idem.finish("older", "|ACCEPTED|OK|o2", accepted=True, now=NOW, ttl_ms=ttl) == 1
    # A finish TTL later: both earlier entries are past the horizon (now - TTL) and leave their
    # indexes without counting against the cap; nothing is let go.
    idem.claim("new", f"P|1|2|1|o3|{NOW + ttl}")
    assert idem.finish("new", "|ACCEPTED|OK|o3", accepted=True, now=NOW + ttl, ttl_ms=ttl,
                       max_keys=1) == 1
    assert idem.index(idem.refused) == []
    assert idem.index(idem.accepted) == [("new", float(NOW + ttl))]
    assert not idem.r.exists(idem.let_go)


# -- Waiting room scripts: queue_join.lua, queue_advance.lua (RedisWaitingRoom) ----------------
# The frontier itself is compared with the C++ AdvanceFrontier() on a table of cases by
# redis_stock_store_redistest (WaitingRoomTest.ScriptsAdvanceExactlyAsAdvanceFrontier).

class Queue:
    """The waiting-room scripts with the key layout of their headers."""

    def __init__(self, r, pid):
        self.r, self.pid = r, pid
        # As the build compiles them in: queue_frontier.lua is the first half of both.
        frontier = (SCRIPTS / "queue_frontier.lua").read_text()
        self.join_sha = r.script_load(frontier + (SCRIPTS / "queue_join.lua").read_text())
        self.advance_sha = r.script_load(frontier + (SCRIPTS / "queue_advance.lua").read_text())
        k = f"item:{{{pid}}}"
        self.keys = [f"{k}:meta", f"{k}:stock", f"{k}:sold_out", f"{k}:queue"]
        self.users, self.addresses = f"{k}:queue:users", f"{k}:queue:addresses"

    def room(self, stock=100, admit_per_s=2, starts_at=""):
        self.r.hset(self.keys[0], mapping={"price": 1999, "stock": stock, "limit_per_user": 1,
                                           "starts_at": starts_at, "wr_admit_per_s": admit_per_s,
                                           "wr_pass_ttl_s": 60})
        self.r.set(self.keys[1], stock)

    def join(self, user, address="a", max_places=0, now=NOW, generation="77"):
        return self.r.evalsha(self.join_sha, 6, *self.keys, self.users, self.addresses, now,
                              user, address, max_places, generation)

    def advance(self, now=NOW):
        return self.r.evalsha(self.advance_sha, 4, *self.keys, now)

    def state(self):
        return self.r.hgetall(self.keys[3])


@pytest.fixture
def queue(server, pid):
    return Queue(server, pid)


def test_queue_unknown_product_and_no_waiting_room_write_nothing(queue):
    none = ["0", 0, "", 0, 0, "", 0, 0]
    assert queue.join(1) == ["UNKNOWN_PRODUCT", 0, 0] + none
    assert queue.advance() == ["UNKNOWN_PRODUCT", 0, 0] + none
    queue.room(admit_per_s="")
    assert queue.join(1) == ["NO_WAITING_ROOM", 0, 0] + none
    assert queue.advance()[0] == "NO_WAITING_ROOM"
    assert not queue.r.exists(queue.keys[3], queue.users, queue.addresses)


def test_queue_join_positions_rejoin_and_generation_set_once(queue):
    queue.room(admit_per_s=2, starts_at=NOW + 5000)
    assert queue.join(11, generation="18446744073709551615") == \
        ["JOINED", 1, 1, "0", NOW, "18446744073709551615", 0, 0, str(NOW + 5000), 2, 60]
    assert queue.join(12, now=NOW + 1, generation="5")[:2] == ["JOINED", 2]
    again = queue.join(11, now=NOW + 2, generation="6")
    assert again[:3] == ["ALREADY_JOINED", 1, 2]
    assert again[5] == "18446744073709551615"  # exact: never through a Lua number
    assert queue.state() == {"joined": "2", "admitted": "0", "as_of": str(NOW + 2),
                             "generation": "18446744073709551615"}
    assert queue.r.hgetall(queue.users) == {"11": "1", "12": "2"}
    assert queue.r.hgetall(queue.addresses) == {"a": "2"}


def test_queue_address_cap(queue):
    queue.room()
    assert queue.join(1, "x", 2)[:2] == ["JOINED", 1]
    assert queue.join(2, "x", 2)[:2] == ["JOINED", 2]
    assert queue.join(3, "x", 2)[:3] == ["ADDRESS_FULL", 0, 2]
    assert queue.join(2, "x", 2)[:2] == ["ALREADY_JOINED", 2]
    assert queue.join(3, "y", 2)[:2] == ["JOINED", 3]
    assert queue.join(4, "x", 0)[:2] == ["JOINED", 4]  # 0: no cap
    assert queue.r.hgetall(queue.addresses) == {"x": "3", "y": "1"}


def test_queue_frontier_starts_at_the_sale_caps_at_joined_and_stops_when_sold_out(queue):
    queue.room(admit_per_s=3, starts_at=NOW)
    for u in range(1, 6):
        queue.join(u, now=NOW - 60_000)
    assert queue.advance(NOW)[3] == "0"                          # nothing before the start
    reply = queue.advance(NOW + 500)
    assert reply[3] == "1.5" and reply[7] == 1                   # 3/s: 1.5, one newly admitted
    assert queue.advance(NOW + 100_000)[3] == "5"                # capped at joined
    assert queue.join(6, now=NOW + 100_000)[3] == "5"            # no banked admissions
    queue.r.set(queue.keys[1], 0)                                # sold out
    reply = queue.advance(NOW + 200_000)
    assert reply[3] == "5" and reply[6] == 1
    queue.r.set(queue.keys[1], 3)                                # restocked
    reply = queue.advance(NOW + 200_100)
    assert reply[3] == "5.2999999999999998" and reply[6] == 0    # 0.1 s more, exactly as %.17g
    queue.r.set(queue.keys[2], 1)                                # the L2 flag alone
    assert queue.advance(NOW + 300_000)[6] == 1


def test_queue_bad_arguments_change_nothing(queue):
    queue.room()
    for args in [(NOW, "1", "a", "-1", "1"), ("soon", "1", "a", "0", "1"),
                 (NOW, "1", "a", "0", "-3"), (NOW, "1", "a", "x", "1"), (NOW, "1", "a", "0")]:
        with pytest.raises(redis.ResponseError, match="FLASHSALE bad"):
            queue.r.evalsha(queue.join_sha, 6, *queue.keys, queue.users, queue.addresses, *args)
    with pytest.raises(redis.ResponseError, match="FLASHSALE bad"):
        queue.r.evalsha(queue.advance_sha, 4, *queue.keys, "later")
    assert not queue.r.exists(queue.keys[3], queue.users, queue.addresses)


def test_queue_racing_joins_get_unique_gap_free_positions(queue):
    queue.room()
    positions, lock = {}, threading.Lock()

    def joiner(t):
        for i in range(100):
            user = t * 100 + i
            reply = queue.join(user, address=f"addr{user % 50}")
            with lock:
                positions[user] = reply[1]

    threads = [threading.Thread(target=joiner, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(positions.values()) == list(range(1, 801))
    assert all(queue.join(u)[:2] == ["ALREADY_JOINED", p] for u, p in positions.items())
