#!/usr/bin/env python3
"""Helper of bench/rebuild_bench.sh: fills a flashsale SQLite database with N orders, reads
its figures, and checks a restarted server against it.

    python3 bench/rebuild_bench.py generate --db PATH -n N [--seed S]   # bulk-insert N orders
    python3 bench/rebuild_bench.py stats    --db PATH                   # orders=... buyers=...
    python3 bench/rebuild_bench.py pick     --db PATH [--seed S]        # "USER PRODUCT ORDERS"
    python3 bench/rebuild_bench.py verify   --port P --user U --product P --expect K
    python3 bench/rebuild_bench.py forget   --db PATH --order ID        # removes one order

`generate` expects the database the server left after its first start (schema, products
2001-3000, no orders) and must run while no server has it open. Each order: status CONFIRMED,
a user id drawn uniformly from 0..2^63-1 (all distinct), a product drawn Zipf(s = 1) over the
1000 ids (rank 1 = 2001), quantity 1, price 100 (cents), created_at one millisecond after the
previous order's, and an id as OrderIdGenerator makes them (11 hex digits of created_at, 6 of
an instance tag, 7 of a sequence): unique and parseable.
"""

import argparse
import http.client
import json
import random
import sqlite3
import sys
import time

FIRST_PRODUCT = 2001
PRODUCTS = 1000
CHUNK = 100_000


def zipf_cum_weights(n: int) -> list:
    """Cumulative weights of Zipf with s = 1 over ranks 1..n, for random.choices."""
    total = 0.0
    cum = []
    for rank in range(1, n + 1):
        total += 1.0 / rank
        cum.append(total)
    return cum


def cmd_generate(args) -> int:
    rng = random.Random(args.seed)
    db = sqlite3.connect(args.db, isolation_level=None)
    (have,) = db.execute("SELECT count(*) FROM orders").fetchone()
    if have != 0:
        print(f"rebuild_bench: {args.db} already has {have} orders", file=sys.stderr)
        return 1
    (products,) = db.execute("SELECT count(*) FROM products WHERE product_id BETWEEN ? AND ?",
                             (FIRST_PRODUCT, FIRST_PRODUCT + PRODUCTS - 1)).fetchone()
    if products != PRODUCTS:
        print(f"rebuild_bench: {args.db} has {products} of the products "
              f"{FIRST_PRODUCT}..{FIRST_PRODUCT + PRODUCTS - 1}", file=sys.stderr)
        return 1
    # The load only: no fsync, and a rollback journal in memory instead of the WAL (a
    # 1 GB transaction through the WAL is written twice). The file goes back to WAL
    # below, the mode the server leaves it in; a crash here just means generating again.
    db.execute("PRAGMA journal_mode=MEMORY")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    # orders' secondary indexes are dropped and rebuilt from their own CREATE statements
    # (read back from sqlite_master, so the schema ends up exactly as the server wrote
    # it): one sort instead of 10 M inserts at random places of orders_by_user.
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                         "tbl_name = 'orders' AND sql IS NOT NULL").fetchall()
    started = time.monotonic()
    db.execute("BEGIN")
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    cum = zipf_cum_weights(PRODUCTS)
    product_ids = list(range(FIRST_PRODUCT, FIRST_PRODUCT + PRODUCTS))
    instance_tag = rng.getrandbits(24)
    first_ms = int(time.time() * 1000) - args.n - 60_000  # the last order a minute ago
    done = 0
    while done < args.n:
        k = min(CHUNK, args.n - done)
        products = rng.choices(product_ids, cum_weights=cum, k=k)
        rows = []
        for i in range(k):
            seq = done + i
            created = first_ms + seq
            rows.append((f"{created:011x}{instance_tag:06x}{seq & 0xFFFFFFF:07x}",
                         rng.getrandbits(63), products[i], created))
        db.executemany("INSERT INTO orders(order_id, user_id, product_id, quantity, price, "
                       "status, created_at) VALUES(?, ?, ?, 1, 100, 'CONFIRMED', ?)", rows)
        done += k
    inserted = time.monotonic()
    for _, sql in indexes:
        db.execute(sql)
    indexed = time.monotonic()
    # Distinct users: a repeat among 10 M draws of 63 bits has odds of about 5e-6, but
    # "distinct buyers" is the point of the figure, so repeats get fresh ids until none.
    redrawn = 0
    while True:
        dups = db.execute("SELECT user_id FROM orders GROUP BY user_id HAVING count(*) > 1"
                          ).fetchall()
        if not dups:
            break
        for (user,) in dups:
            for (order_id,) in db.execute("SELECT order_id FROM orders WHERE user_id = ? "
                                          "LIMIT -1 OFFSET 1", (user,)).fetchall():
                db.execute("UPDATE orders SET user_id = ? WHERE order_id = ?",
                           (rng.getrandbits(63), order_id))
                redrawn += 1
    # The stock guard's per-product CONFIRMED units, which the server keeps with every
    # settle (table product_sales; a database without it is summed once at start-up).
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'product_sales'").fetchone():
        db.execute("DELETE FROM product_sales")
        db.execute("INSERT INTO product_sales(product_id, confirmed) SELECT product_id, "
                   "SUM(quantity) FROM orders WHERE status = 'CONFIRMED' GROUP BY product_id")
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    end = time.monotonic()
    print(f"generated {args.n} orders in {end - started:.1f} s (rows {inserted - started:.1f} s, "
          f"indexes {indexed - inserted:.1f} s, distinct-user check and commit "
          f"{end - indexed:.1f} s; {redrawn} repeated user ids redrawn)")
    return 0


def cmd_stats(args) -> int:
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    (total,) = db.execute("SELECT count(*) FROM orders").fetchone()
    (failed,) = db.execute("SELECT count(*) FROM orders WHERE status = 'FAILED'").fetchone()
    # A buyer record is one (product, user) pair of an order that is not FAILED. With no
    # FAILED orders and as many distinct users as orders, every order is its own pair,
    # and both counts come from the index orders_by_user alone (seconds, not a minute).
    (users,) = db.execute("SELECT count(DISTINCT user_id) FROM orders").fetchone()
    if failed == 0 and users == total:
        buyers = total
    else:
        (buyers,) = db.execute("SELECT count(*) FROM (SELECT 1 FROM orders WHERE status != "
                               "'FAILED' GROUP BY product_id, user_id)").fetchone()
    db.close()
    print(f"orders={total - failed} failed={failed} users={users} buyers={buyers}")
    return 0


def cmd_pick(args) -> int:
    """A user of the database, one of its products, and how many orders the user has."""
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    start = random.Random(args.seed).getrandbits(63)
    row = db.execute("SELECT user_id, product_id FROM orders WHERE user_id >= ? AND status != "
                     "'FAILED' ORDER BY user_id LIMIT 1", (start,)).fetchone()
    if row is None:
        row = db.execute("SELECT user_id, product_id FROM orders WHERE status != 'FAILED' "
                         "ORDER BY user_id LIMIT 1").fetchone()
    if row is None:
        print("rebuild_bench: no orders to pick a user from", file=sys.stderr)
        return 1
    (count,) = db.execute("SELECT count(*) FROM orders WHERE user_id = ?", (row[0],)).fetchone()
    db.close()
    print(row[0], row[1], count)
    return 0


def cmd_verify(args) -> int:
    """One purchase by a rebuilt user must be ACCEPTED and listed beside the old orders."""
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    body = json.dumps({"user_id": args.user, "product_id": args.product, "amount": 1})
    conn.request("POST", "/purchase", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    if resp.status != 200 or answer.get("status") != "ACCEPTED":
        print(f"rebuild_bench: purchase -> {resp.status} {answer}", file=sys.stderr)
        return 1
    conn.request("GET", f"/users/{args.user}/orders")
    resp = conn.getresponse()
    listed = json.loads(resp.read())
    conn.close()
    ids = [o.get("order_id") for o in listed] if isinstance(listed, list) else []
    if resp.status != 200 or len(ids) != args.expect or answer["order_id"] not in ids:
        print(f"rebuild_bench: GET /users/{args.user}/orders -> {resp.status}, expected "
              f"{args.expect} orders including {answer['order_id']}: {listed}", file=sys.stderr)
        return 1
    print(answer["order_id"], len(ids))
    return 0


def cmd_forget(args) -> int:
    """Removes the check's order again, so that a kept database stays as generated."""
    removed = 0
    for path, table in ((args.db, "orders"), (args.db + ".journal", "order_journal")):
        db = sqlite3.connect(path, isolation_level=None, timeout=10)
        removed += db.execute(f"DELETE FROM {table} WHERE order_id = ?", (args.order,)).rowcount
        db.close()
    print(f"removed {removed} row(s) of order {args.order}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("generate")
    p.add_argument("--db", required=True)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--seed", type=int, default=None)
    p = sub.add_parser("stats")
    p.add_argument("--db", required=True)
    p = sub.add_parser("pick")
    p.add_argument("--db", required=True)
    p.add_argument("--seed", type=int, default=None)
    p = sub.add_parser("verify")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", type=int, required=True)
    p.add_argument("--product", type=int, required=True)
    p.add_argument("--expect", type=int, required=True, help="orders listed after the purchase")
    p = sub.add_parser("forget")
    p.add_argument("--db", required=True)
    p.add_argument("--order", required=True)
    args = ap.parse_args()
    handlers = {"generate": cmd_generate, "stats": cmd_stats, "pick": cmd_pick,
                "verify": cmd_verify, "forget": cmd_forget}
    return handlers[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
