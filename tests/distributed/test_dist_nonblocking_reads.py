"""Reads that wait on PostgreSQL do not block an HTTP event loop (issue 7, 2a): with one I/O
thread (`--threads 1`), a `GET /orders/{id}` stuck behind a lock on the orders table does not
delay `POST /purchase` answers on other connections of that same thread.

The database is stalled deterministically: a psql session holds ACCESS EXCLUSIVE on `orders`
for a few seconds, so the order lookup's SELECT waits for it (no timing luck involved)."""

from __future__ import annotations

import subprocess
import threading
import time

from dist_harness import SERVERS, Backends, DistServer
from harness import HttpConn, assert_sale, wait_until

LOCK_SECONDS = 4


def _lock_held(b: Backends) -> bool:
    rows = b.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                 "WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted")
    return int(rows[0][0]) > 0


def test_a_stalled_order_read_does_not_delay_purchases_on_the_same_io_thread(tmp_path_factory):
    b = Backends()
    b.reset()
    s = DistServer(tmp_path_factory.mktemp("api"), b, threads=1).start(timeout=60)
    locker = None
    try:
        s.put_product(901, 100, 1.0, limit_per_user=1, expect=(201,))
        order_id = assert_sale(s.purchase(1, 901), "ACCEPTED")["order_id"]
        locker = subprocess.Popen(
            [str(SERVERS / "postgres.sh"), "psql", "-v", "ON_ERROR_STOP=1", "-c",
             f"BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({LOCK_SECONDS}); "
             "COMMIT;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: _lock_held(b), 10, "the lock on orders held", interval=0.05)

        read: dict[str, object] = {}

        def read_order() -> None:
            t0 = time.monotonic()
            with HttpConn(s.port, timeout=LOCK_SECONDS + 10) as c:
                r = c.request("GET", f"/orders/{order_id}")
            read["status"] = r.status
            read["seconds"] = time.monotonic() - t0

        reader = threading.Thread(target=read_order, daemon=True)
        reader.start()
        time.sleep(0.3)  # the read now waits on the lock
        assert reader.is_alive(), f"the order read did not wait on the lock: {read}"
        with HttpConn(s.port, timeout=LOCK_SECONDS + 10) as c:
            t0 = time.monotonic()
            for u in range(2, 7):
                assert_sale(c.purchase(u, 901), "ACCEPTED")
            purchases = time.monotonic() - t0
        reader.join(LOCK_SECONDS + 15)
        assert not reader.is_alive()
        assert purchases < 1.0, (f"5 purchases took {purchases:.2f} s while an order read waited "
                                 f"on the database (read: {read})")
        # The read itself is answered once the lock goes.
        assert read["status"] == 200, read
        assert read["seconds"] > 1.0, read
    finally:
        if locker is not None:
            locker.wait(LOCK_SECONDS + 30)
        s.stop()
