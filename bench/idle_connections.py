#!/usr/bin/env python3
"""Open many idle HTTP/1.1 keep-alive connections to a server and hold them.

Used by bench/run_bench.sh (scenario c) to measure the server's memory per idle
connection, but usable on its own:

    python3 bench/idle_connections.py --port 8000 -n 10000 --hold 30

Each connection connects, sends one `GET /healthz` (keep-alive), reads the complete
response, and then stays open and idle: from the server's point of view it is a
keep-alive connection waiting for its next request.  (`--no-request` leaves the
connections fresh instead: accepted but never used.)

When all connections are open the script prints one line to stdout:

    READY opened=N failed=M seconds=S

and then holds them until --hold seconds pass, stdin reaches EOF (with --stdin), or
it gets SIGTERM/SIGINT.  Before exiting it checks every connection and prints

    ALIVE alive=N closed_by_server=M

The soft RLIMIT_NOFILE is raised to the hard limit; if that is still too low for N
connections, N is reduced and a warning goes to stderr.  Only 127.0.0.1/loopback
targets are meant to be used.
"""

import argparse
import errno
import os
import resource
import select
import signal
import socket
import sys
import time


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(wanted, soft)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            print(f"idle_connections: cannot raise RLIMIT_NOFILE: {exc}", file=sys.stderr)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_response(sock: socket.socket, deadline: float) -> bool:
    """Read one complete HTTP response (Content-Length framed). True if status 2xx."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            return False
    while len(body) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return 200 <= int(parts[1]) < 300


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("-n", "--connections", type=int, default=10000)
    ap.add_argument("--path", default="/healthz", help="request sent on each connection")
    ap.add_argument("--no-request", action="store_true",
                    help="do not send a request; hold fresh connections")
    ap.add_argument("--hold", type=float, default=50.0,
                    help="seconds to hold the connections (server idle timeout is 60 s)")
    ap.add_argument("--stdin", action="store_true", help="also stop when stdin reaches EOF")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-connection setup timeout")
    args = ap.parse_args()

    limit = raise_nofile(args.connections + 64)
    n = args.connections
    if limit < n + 32:
        n = max(0, limit - 32)
        print(f"idle_connections: RLIMIT_NOFILE is {limit}; opening only {n} connections",
              file=sys.stderr)

    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               f"Connection: keep-alive\r\n\r\n").encode()
    socks = []
    failed = 0
    first_error = None
    t0 = time.monotonic()
    for _ in range(n):
        if stop:
            break
        s = None
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            deadline = time.monotonic() + args.timeout
            s.settimeout(args.timeout)
            s.connect((args.host, args.port))
            if not args.no_request:
                s.sendall(request)
                if not read_response(s, deadline):
                    raise OSError("bad or closed response")
            s.setblocking(False)
            socks.append(s)
        except OSError as exc:
            failed += 1
            if first_error is None:
                first_error = exc
            if s is not None:
                s.close()
            if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
                break
    elapsed = time.monotonic() - t0
    if first_error is not None:
        print(f"idle_connections: first error: {first_error!r}", file=sys.stderr)
    print(f"READY opened={len(socks)} failed={failed} seconds={elapsed:.2f}", flush=True)

    end = time.monotonic() + args.hold
    while not stop and time.monotonic() < end:
        if args.stdin:
            r, _, _ = select.select([sys.stdin], [], [], 0.2)
            if r and not sys.stdin.buffer.read1(4096):
                break
        else:
            time.sleep(0.2)

    # A connection the server closed is readable with EOF (or errors); an idle live one
    # is not readable at all.
    closed = 0
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    for _fd, _ev in poller.poll(0):
        closed += 1
    print(f"ALIVE alive={len(socks) - closed} closed_by_server={closed}", flush=True)
    for s in socks:
        s.close()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
