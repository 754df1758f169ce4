#!/usr/bin/env python3
"""Bench helper: create or replace a range of products through the admin API, and
read order counts from a flashsale SQLite database.

    python3 bench/fs_admin.py put    --port P --token T --ids 1-1000 --stock 0 [--price 1] [--limit 1]
                                     [--window SECS]     # payment_window_s (omitted: no payment step)
    python3 bench/fs_admin.py probe  --port P --product 1 --user 1      # one purchase, prints body
    python3 bench/fs_admin.py orders --db /path/to/x.db                 # "total=N STATUS=N ..."

`put` uses one keep-alive connection and fails (exit 1) on any answer other than 200/201.
"""

import argparse
import http.client
import json
import sqlite3
import sys
import time


def parse_range(text: str) -> range:
    lo, _, hi = text.partition("-")
    lo_i = int(lo)
    hi_i = int(hi) if hi else lo_i
    return range(lo_i, hi_i + 1)


def cmd_put(args) -> int:
    conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    price = json.loads(args.price)  # keep the literal as given ("1", "9.99")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        print(f"fs_admin: --price must be a JSON number, got {args.price!r}", file=sys.stderr)
        return 2
    window = "" if args.window is None else f',"payment_window_s":{args.window}'
    payload = (f'{{"stock":{args.stock},"price":{args.price},'
               f'"limit_per_user":{args.limit}{window}}}')
    done = 0
    for pid in parse_range(args.ids):
        conn.request("PUT", f"/admin/products/{pid}", body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status not in (200, 201):
            print(f"fs_admin: PUT /admin/products/{pid} -> {resp.status} {data[:300]!r}",
                  file=sys.stderr)
            return 1
        done += 1
    conn.close()
    print(f"put {done} products stock={args.stock} price={args.price} "
          f"limit_per_user={args.limit}"
          + ("" if args.window is None else f" payment_window_s={args.window}"))
    return 0


def cmd_probe(args) -> int:
    conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    payload = json.dumps({"user_id": args.user, "product_id": args.product, "amount": 1})
    conn.request("POST", "/purchase", body=payload,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    print(f"{resp.status} {data.decode('utf-8', 'replace')}")
    return 0


def cmd_orders(args) -> int:
    deadline = time.monotonic() + 10
    while True:
        try:
            db = sqlite3.connect(args.db, timeout=10)
            rows = db.execute(
                "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status").fetchall()
            db.close()
            break
        except sqlite3.Error as exc:
            if time.monotonic() > deadline:
                print(f"fs_admin: cannot read orders from {args.db}: {exc}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    total = sum(n for _, n in rows)
    print(" ".join([f"total={total}"] + [f"{s}={n}" for s, n in rows]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("put")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--ids", required=True, help="MIN-MAX")
    p.add_argument("--stock", type=int, required=True)
    p.add_argument("--price", default="1", help="JSON number literal")
    p.add_argument("--limit", type=int, default=1, help="limit_per_user")
    p.add_argument("--window", type=int, default=None,
                   help="payment_window_s (seconds); omitted: no payment step")
    p = sub.add_parser("probe")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--product", type=int, required=True)
    p.add_argument("--user", type=int, default=1)
    p = sub.add_parser("orders")
    p.add_argument("--db", required=True)
    args = ap.parse_args()
    return {"put": cmd_put, "probe": cmd_probe, "orders": cmd_orders}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
