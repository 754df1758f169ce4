#!/usr/bin/env python3
"""Check scripts/wrk/purchase.lua's users=random63 and products=zipf generators.

    python3 bench/check_purchase_lua.py [--port 41001] [--seconds 2]

Needs only wrk and python3 (no server of the project). Two checks, exit 1 if one fails:

1. Exactness: wrk loads a small Lua wrapper that runs purchase.lua and calls its
   random63_decimal(a, b, c) on known limbs (edge values such as 0, 2^53 + 1, 2^63 - 1 and
   2,000 random triples); each printed string must equal str(a * 2^42 + b * 2^21 + c)
   computed with Python's exact integers. The wrapper exits before wrk sends anything.
2. Distribution, end to end: a tiny HTTP server on 127.0.0.1 (asyncio, answers every
   request 200) records the bodies wrk sends with
   `users=random63 products=zipf pid=2001-3000 seed=1`. Every body must be the expected
   JSON, every user_id a plain decimal integer (no sign, exponent, point or leading zero)
   in 0 .. 2^63-1; the top 4 bits and the low 8 bits of the ids must be evenly spread
   (chi-square; a double-rounded id above 2^53 would have its low bits zero); the product
   ids must follow Zipf(s=1) over ranks 1..1000 (chi-square over rank bins, rank 1 = 2001).
"""

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PURCHASE_LUA = os.path.join(ROOT, "scripts", "wrk", "purchase.lua")
TWO21 = 1 << 21
TWO63 = 1 << 63


def check_exact(problems: list) -> None:
    triples = [(0, 0, 0), (0, 0, 1), (0, 0, TWO21 - 1), (0, 1, 0), (0, 4, 1),
               (1, 0, 0), (TWO21 - 1, TWO21 - 1, TWO21 - 1), (1 << 20, 0, 0),
               (1 << 11, 0, 1),                       # 2^53 + 1: not a double
               (0, 4, 1526726), (2, 800000, 100)]     # around 10^7 and 10^14 limb edges
    rng = random.Random(7)
    triples += [(rng.randrange(TWO21), rng.randrange(TWO21), rng.randrange(TWO21))
                for _ in range(2000)]
    with tempfile.TemporaryDirectory() as tmp:
        vec = os.path.join(tmp, "vectors.txt")
        with open(vec, "w") as f:
            f.writelines(f"{a} {b} {c}\n" for a, b, c in triples)
        wrapper = os.path.join(tmp, "exact.lua")
        with open(wrapper, "w") as f:
            f.write(f"""dofile({json.dumps(PURCHASE_LUA)})
for line in io.lines({json.dumps(vec)}) do
   local a, b, c = line:match("^(%d+) (%d+) (%d+)$")
   io.write(random63_decimal(tonumber(a), tonumber(b), tonumber(c)), "\\n")
end
io.stdout:flush()
os.exit(0)
""")
        # wrk runs the script while loading it, before it connects: nothing listens there.
        out = subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", wrapper, "http://127.0.0.1:9/"],
                             capture_output=True, text=True, timeout=60)
    got = out.stdout.split("\n")[:len(triples)]
    if len(got) != len(triples):
        problems.append(f"exactness: wrk printed {len(got)} lines, expected {len(triples)}: "
                        f"{out.stdout[-300:]!r} {out.stderr[-300:]!r}")
        return
    bad = [(t, g) for t, g in zip(triples, got)
           if g != str((t[0] << 42) + (t[1] << 21) + t[2])]
    for t, g in bad[:5]:
        problems.append(f"exactness: random63_decimal{t} = {g}, "
                        f"expected {(t[0] << 42) + (t[1] << 21) + t[2]}")
    print(f"exactness: {len(triples) - len(bad)}/{len(triples)} limb triples give the exact "
          f"decimal (incl. 0, 2^53+1, 2^63-1 = {got[6]})")


class Recorder(asyncio.Protocol):
    """HTTP/1.1 keep-alive (pipelining too): records each body, answers 200."""
    ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n"
              b'{"status":"ACCEPTED"}')
    bodies: list = []

    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", self.buf[:end])
            n = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + n:
                break
            Recorder.bodies.append(self.buf[end + 4:end + 4 + n])
            self.buf = self.buf[end + 4 + n:]
            out.append(self.ANSWER)
        if out:
            self.transport.write(b"".join(out))


def chi2(observed, expected) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected))


def check_distribution(port: int, seconds: int, problems: list) -> None:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Recorder, "127.0.0.1", port))
    port = server.sockets[0].getsockname()[1]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    out = subprocess.run(["wrk", "-t2", "-c4", f"-d{seconds}s", "-s", PURCHASE_LUA,
                          f"http://127.0.0.1:{port}/purchase", "--", "users=random63",
                          "products=zipf", "pid=2001-3000", "seed=1", "count=none"],
                         capture_output=True, text=True, timeout=seconds + 30)
    loop.call_soon_threadsafe(loop.stop)
    if out.returncode != 0:
        problems.append(f"wrk failed: {out.stderr[-300:]}")
    bodies = list(Recorder.bodies)
    n = len(bodies)
    if n < 5000:
        problems.append(f"distribution: only {n} requests recorded (need >= 5000)")
        return
    shape = re.compile(rb'^\{"user_id":(0|[1-9][0-9]*),"product_id":([0-9]+),"amount":1\}$')
    users, pids = [], []
    for b in bodies:
        m = shape.match(b)
        if not m:
            problems.append(f"body not as expected: {b[:200]!r}")
            return
        users.append(int(m.group(1)))    # Python ints: exact, whatever the size
        pids.append(int(m.group(2)))
        json.loads(b)                     # and it is valid JSON
    over = [u for u in users if u >= TWO63]
    if over:
        problems.append(f"user ids >= 2^63: {over[:3]}")
    top = [0] * 16
    low = [0] * 256
    for u in users:
        top[u >> 59] += 1
        low[u & 255] += 1
    # 99.9 % quantiles of chi-square: 15 d.f. 37.7, 255 d.f. 330.5, 11 d.f. 31.3
    c_top, c_low = chi2(top, [n / 16] * 16), chi2(low, [n / 256] * 256)
    if c_top > 37.7:
        problems.append(f"top 4 bits of user ids not uniform: chi2 {c_top:.1f} > 37.7 ({top})")
    if c_low > 330.5:
        problems.append(f"low 8 bits of user ids not uniform: chi2 {c_low:.1f} > 330.5")
    dup = n - len(set(users))
    print(f"random63: {n} ids, all plain decimals < 2^63; max {max(users)} "
          f"({max(users) / TWO63:.4f} x 2^63), {dup} repeated; chi2 top-4-bits {c_top:.1f} "
          f"(15 d.f.), low-8-bits {c_low:.1f} (255 d.f.)")
    print(f"  top 4 bits per 1/16 of the range: {top}")

    if min(pids) < 2001 or max(pids) > 3000:
        problems.append(f"product ids outside 2001-3000: {min(pids)}..{max(pids)}")
        return
    weights = [1 / k for k in range(1, 1001)]
    total = sum(weights)
    bins = [(1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 50), (51, 100),
            (101, 200), (201, 400), (401, 700), (701, 1000)]
    obs = [sum(1 for p in pids if lo <= p - 2000 <= hi) for lo, hi in bins]
    exp = [n * sum(weights[lo - 1:hi]) / total for lo, hi in bins]
    c_zipf = chi2(obs, exp)
    if c_zipf > 31.3:
        problems.append(f"product ids not Zipf(1): chi2 {c_zipf:.1f} > 31.3; "
                        f"observed {obs}, expected {[round(e) for e in exp]}")
    print(f"zipf: rank 1 (pid 2001) {obs[0] / n:.4f} of requests (expected {exp[0] / n:.4f}), "
          f"top 10 ranks {sum(obs[:5]) / n:.4f} (expected {sum(exp[:5]) / n:.4f}); "
          f"chi2 over {len(bins)} rank bins {c_zipf:.1f} (11 d.f.)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="recorder port (default: any free)")
    ap.add_argument("--seconds", type=int, default=2, help="wrk run length")
    args = ap.parse_args()
    problems: list = []
    check_exact(problems)
    check_distribution(args.port, args.seconds, problems)
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"FAILED ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
