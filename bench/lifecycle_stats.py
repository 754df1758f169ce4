#!/usr/bin/env python3
"""Bench helper of bench/lifecycle_bench.sh: reads one product's orders straight from the
database of record (SQLite read-only, or PostgreSQL through psql) and prints one line.

    python3 bench/lifecycle_stats.py count --sqlite PATH --product ID
    python3 bench/lifecycle_stats.py count --pg URL --product ID
        -> "total=N CONFIRMED=N EXPIRED=N ..."
    python3 bench/lifecycle_stats.py close --sqlite PATH | --pg URL --product ID
            [--first N] [--since MS] [--timeline FILE]
    python3 bench/lifecycle_stats.py watch --url http://HOST:PORT --until N --out FILE
        polls URL/metrics every 20 ms, writing "t_ms closed" lines (closed =
        flashsale_orders_closed_total{reason="expired"}), until closed >= N (or --timeout s)
        -> "LIFESTATS orders=N expired=N placed_s=.. lag_p50_ms=.. lag_p99_ms=.. lag_max_ms=..
            lag_min_ms=.. early=N rate=.. peak_per_s=.. expiry_period_s=.. ..."

Times are milliseconds since the epoch (SQLite stores them so; PostgreSQL's timestamptz
are converted with extract(epoch ...) * 1000).
  placed_s         first to last created_at of the product's orders (how long placing took)
  placed_first_s   first to --first'th created_at (the first N orders; more are placed when
                   units expire while placing goes on and are sold again)
  lag              closed_at - pay_by of every EXPIRED order (nearest-rank percentiles)
  early            EXPIRED orders closed before their pay_by (must be 0)
  expiry_period_s  first pay_by to last closed_at of the EXPIRED orders
  rate             EXPIRED orders / expiry_period_s (the closer's rate over the period)
  peak_per_s       most EXPIRED orders with closed_at in one wall-clock second
  drain_s          with --since T: T to the last closed_at; drain_rate = EXPIRED / drain_s

closed_at is the `now` of the closer's pass that expired the order (OrderCloser::RunOnce
stamps every batch of a pass with the time the pass began), so closed_at - pay_by is the
lag to the closer's decision; a pass that takes long commits its last batches later. With
--timeline (watch's output) the lag is also measured from outside:
  obs_lag_*        the k-th order by pay_by counts as closed at the first poll where the
                   expired counter >= k (the closer expires in pay_by order; the counter grows
                   once the units are back in the stock store, after the commit): an upper
                   bound of "pay_by -> EXPIRED and its unit on sale again", +20 ms polling
  obs_drain_s      with --since T: T to the poll that saw the counter reach every EXPIRED order
"""

import argparse
import math
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter

COLUMNS = "status, created_at, pay_by, closed_at"
PG_COLUMNS = ("status, (extract(epoch FROM created_at) * 1000)::bigint, "
              "(extract(epoch FROM pay_by) * 1000)::bigint, "
              "(extract(epoch FROM closed_at) * 1000)::bigint")


def rows_sqlite(path: str, product: int, count_only: bool):
    deadline = time.monotonic() + 10
    while True:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            if count_only:
                rows = db.execute("SELECT status, count(*) FROM orders WHERE product_id = ? "
                                  "GROUP BY status", (product,)).fetchall()
            else:
                rows = db.execute(f"SELECT {COLUMNS} FROM orders WHERE product_id = ?",
                                  (product,)).fetchall()
            db.close()
            return rows
        except sqlite3.Error as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"lifecycle_stats: cannot read {path}: {exc}")
            time.sleep(0.2)


def rows_pg(url: str, product: int, count_only: bool):
    if count_only:
        sql = f"SELECT status, count(*) FROM orders WHERE product_id = {product} GROUP BY status"
    else:
        sql = f"SELECT {PG_COLUMNS} FROM orders WHERE product_id = {product}"
    out = subprocess.run(["psql", "-q", "-X", "-At", "-F", ",", "-v", "ON_ERROR_STOP=1", url,
                          "-c", sql], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"lifecycle_stats: psql failed: {out.stderr.strip()}")
    rows = []
    for line in out.stdout.splitlines():
        f = line.split(",")
        rows.append(tuple([f[0]] + [int(x) if x != "" else None for x in f[1:]]))
    return rows


def read(args, count_only: bool):
    if args.sqlite:
        return rows_sqlite(args.sqlite, args.product, count_only)
    return rows_pg(args.pg, args.product, count_only)


def pct(sorted_values, q: float):
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def cmd_count(args) -> int:
    rows = read(args, True)
    total = sum(n for _, n in rows)
    print(" ".join([f"total={total}"] + [f"{s}={n}" for s, n in sorted(rows)]))
    return 0


def cmd_close(args) -> int:
    rows = read(args, False)
    statuses = Counter(r[0] for r in rows)
    expired = [r for r in rows if r[0] == "EXPIRED"]
    fields = {"orders": len(rows), "expired": len(expired)}
    for s, n in sorted(statuses.items()):
        fields[f"status_{s}"] = n
    created = [r[1] for r in rows]
    fields["placed_s"] = f"{(max(created) - min(created)) / 1000:.3f}" if created else "nan"
    if args.first and len(created) >= args.first:
        created.sort()
        fields["placed_first_s"] = f"{(created[args.first - 1] - created[0]) / 1000:.3f}"
    fields["missing_pay_by"] = sum(1 for r in rows if r[2] is None)
    if expired:
        lags = sorted(r[3] - r[2] for r in expired)
        fields.update({
            "lag_p50_ms": pct(lags, 0.50), "lag_p90_ms": pct(lags, 0.90),
            "lag_p99_ms": pct(lags, 0.99), "lag_max_ms": lags[-1], "lag_min_ms": lags[0],
            "early": sum(1 for x in lags if x < 0),
        })
        first_pay_by = min(r[2] for r in expired)
        last_closed = max(r[3] for r in expired)
        period = max(last_closed - first_pay_by, 1) / 1000
        per_second = Counter(r[3] // 1000 for r in expired)
        fields.update({
            "expiry_period_s": f"{period:.3f}", "rate": f"{len(expired) / period:.0f}",
            "peak_per_s": max(per_second.values()),
            "pay_by_span_s": f"{(max(r[2] for r in expired) - first_pay_by) / 1000:.3f}",
        })
    if expired and args.timeline:
        timeline = []
        with open(args.timeline, encoding="utf-8") as f:
            for line in f:
                t, c = line.split()
                timeline.append((int(t), int(c)))
        pay_bys = sorted(r[2] for r in expired)
        obs, j = [], 0
        for k, p in enumerate(pay_bys, start=1):
            while j < len(timeline) and timeline[j][1] < k:
                j += 1
            if j == len(timeline):
                break
            obs.append(timeline[j][0] - p)
        fields["obs_seen"] = len(obs)
        if obs:
            obs.sort()
            fields.update({"obs_lag_p50_ms": pct(obs, 0.50), "obs_lag_p99_ms": pct(obs, 0.99),
                           "obs_lag_max_ms": obs[-1]})
        if args.since and len(obs) == len(expired):
            fields["obs_drain_s"] = f"{(timeline[j][0] - args.since) / 1000:.3f}"
            fields["obs_drain_rate"] = (
                f"{len(expired) / max((timeline[j][0] - args.since) / 1000, 0.001):.0f}")
    if expired and args.since:
        drain = max(max(r[3] for r in expired) - args.since, 1) / 1000
        fields.update({"drain_s": f"{drain:.3f}", "drain_rate": f"{len(expired) / drain:.0f}"})
    print("LIFESTATS " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


def closed_metric(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('flashsale_orders_closed_total{reason="expired"}'):
                return int(float(line.split()[-1]))
    return 0


def cmd_watch(args) -> int:
    deadline = time.monotonic() + args.timeout
    with open(args.out, "w", encoding="utf-8") as out:
        while time.monotonic() < deadline:
            try:
                c = closed_metric(args.url)
            except OSError:
                c = -1
            out.write(f"{time.time_ns() // 1_000_000} {c}\n")
            out.flush()
            if c >= args.until:
                return 0
            time.sleep(0.02)
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("count", "close"):
        p = sub.add_parser(name)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--sqlite", help="path of the SQLite database (opened read-only)")
        g.add_argument("--pg", help="postgresql:// URL (read with psql)")
        p.add_argument("--product", type=int, required=True)
        if name == "close":
            p.add_argument("--first", type=int, default=0,
                           help="also print placed_first_s: first to N-th created_at")
            p.add_argument("--timeline", help="watch's output: also print obs_lag_*")
            p.add_argument("--since", type=int, default=0,
                           help="ms since the epoch: also print drain_s (since -> last "
                                "closed_at) and drain_rate (EXPIRED / drain_s)")
    p = sub.add_parser("watch")
    p.add_argument("--url", required=True)
    p.add_argument("--until", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    return {"count": cmd_count, "close": cmd_close, "watch": cmd_watch}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
