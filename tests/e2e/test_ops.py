"""Operations (SPEC §3, §4): /, /healthz, /readyz, /metrics, /openapi.json, /docs, connection
limits and timeouts, signals, the CLI (flags, audit, seed) and the mock catalog.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from harness import (HISTOGRAM_NAMES, METRIC_NAMES, HttpConn, Server, assert_error, assert_sale,
                     build_request, db_columns, describe_cli, free_port, parse_metrics, purchase_body, run_cli,
                     wait_until, wait_orders_confirmed)


@pytest.fixture(scope="module")
def srv(server_factory):
    s = server_factory()
    s.put_product(900, 100, 7.25, limit_per_user=1, expect=(201,))
    s.put_product(901, 1, 7.25, limit_per_user=1, expect=(201,))
    return s


# -- basic endpoints -------------------------------------------------------------------------

def test_root_and_healthz(srv):
    r = srv.call("GET", "/")
    assert r.status == 200, r
    body = r.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("version"), str) and body["version"], body
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    assert srv.call("GET", "/healthz").status == 200
    cp = run_cli(["--version"], timeout=10)
    assert cp.returncode == 0, describe_cli(cp)
    assert body["version"] in cp.stdout + cp.stderr, (
        f"GET / version {body['version']!r} not in `flashsale --version` output\n{describe_cli(cp)}")


def test_readyz_shape(srv):
    r = srv.call("GET", "/readyz")
    assert r.status == 200, f"embedded server must be ready: {r!r}"
    body = r.json()
    assert body.get("ready") is True, body
    checks = body.get("checks")
    assert isinstance(checks, dict) and checks, f"readyz checks must name each backend: {body}"
    assert all(v == "ok" for v in checks.values()), body
    assert set(body) == {"ready", "checks"}, body


def test_docs_is_swagger_ui(srv):
    r = srv.call("GET", "/docs")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("text/html"), r
    html = r.body.decode("utf-8", "replace")
    assert "swagger" in html.lower(), f"/docs does not look like Swagger UI: {html[:300]!r}"
    assert "openapi.json" in html, f"/docs must load /openapi.json: {html[:300]!r}"


# -- metrics ----------------------------------------------------------------------------------

def _route_total(m, metric: str, fragment: str) -> float:
    return sum(v for lab, v in m.series(metric) if fragment in lab.get("route", ""))


def test_metrics_move_with_traffic_and_name_every_metric(srv):
    m0 = srv.metrics()
    with srv.conn() as c:
        for _ in range(20):
            assert c.request("GET", "/").status == 200
        for u in range(5):
            assert_sale(c.purchase(u, 900), "ACCEPTED")
        assert_sale(c.purchase(50, 901), "ACCEPTED")
        for u in range(51, 61):
            assert_sale(c.purchase(u, 901), "SOLD_OUT")
    m1 = srv.metrics()

    d_requests = m1.total("flashsale_requests_total") - m0.total("flashsale_requests_total")
    assert d_requests >= 36, f"flashsale_requests_total grew by {d_requests} after 36 requests"
    d_purchase = (_route_total(m1, "flashsale_requests_total", "purchase")
                  - _route_total(m0, "flashsale_requests_total", "purchase"))
    assert d_purchase == 16, f"requests_total for the purchase route grew by {d_purchase}, expected 16: {m1.series('flashsale_requests_total')}"
    assert all({"route", "status"} <= set(lab) for lab, _ in m1.series("flashsale_requests_total")), (
        f"flashsale_requests_total must carry route and status labels: {m1.series('flashsale_requests_total')[:5]}")
    d_hist = (_route_total(m1, "flashsale_request_duration_seconds_count", "purchase")
              - _route_total(m0, "flashsale_request_duration_seconds_count", "purchase"))
    assert d_hist == 16, f"request_duration_seconds_count for purchase grew by {d_hist}, expected 16"
    d_accepted = m1.total("flashsale_orders_accepted_total") - m0.total("flashsale_orders_accepted_total")
    assert d_accepted == 6, f"flashsale_orders_accepted_total grew by {d_accepted}, expected 6"
    d_l1 = m1.total("flashsale_l1_hits_total") - m0.total("flashsale_l1_hits_total")
    assert 9 <= d_l1 <= 10, f"10 purchases of a sold-out product: l1_hits grew by {d_l1}"
    d_store = m1.total("flashsale_stock_store_calls_total") - m0.total("flashsale_stock_store_calls_total")
    assert d_store >= 6, f"stock_store_calls_total grew by {d_store}"
    d_handoff = (m1.total("flashsale_handoff_duration_seconds_count")
                 - m0.total("flashsale_handoff_duration_seconds_count"))
    assert d_handoff >= 6, f"handoff_duration_seconds_count grew by {d_handoff}"

    base = m0.total("flashsale_orders_persisted_total", status="CONFIRMED")
    wait_until(lambda: srv.metrics().total("flashsale_orders_persisted_total", status="CONFIRMED") - base >= 6,
               10, "flashsale_orders_persisted_total{status=CONFIRMED} to grow by 6", interval=0.2)

    held = [srv.conn() for _ in range(5)]
    try:
        for c in held:
            assert c.request("GET", "/healthz").status == 200
        m2 = srv.metrics()
        assert m2.total("flashsale_connections") >= 5, f"flashsale_connections {m2.series('flashsale_connections')}"
    finally:
        for c in held:
            c.close()

    names = m2.names()
    for name in METRIC_NAMES:
        present = name in m2.types or any(n == name or n.startswith(name + "_") for n in names)
        assert present, f"metric {name} missing from /metrics"
    for name in HISTOGRAM_NAMES:
        assert m2.types.get(name) == "histogram", f"{name} must be a histogram, TYPE is {m2.types.get(name)!r}"
        assert any(n == name + "_bucket" for n in names), f"{name}_bucket samples missing"
    for name in ("flashsale_queue_depth", "flashsale_consumer_lag", "flashsale_connections"):
        assert m2.series(name) and all(v >= 0 for _, v in m2.series(name)), f"{name}: {m2.series(name)}"
    r = srv.call("GET", "/metrics")
    assert (r.header("Content-Type") or "").startswith("text/plain"), r


# -- OpenAPI: documented routes == routed routes ----------------------------------------------

CORE_ROUTES = {
    ("get", "/"), ("post", "/purchase"), ("get", "/orders/{}"), ("get", "/users/{}/orders"),
    ("get", "/products"), ("get", "/products/{}"), ("put", "/admin/products/{}"),
    ("post", "/admin/products/{}/restock"),
}
# Routed and required in the document; exercised with signed bodies and tokens in
# test_lifecycle.py (here: answered, neither 405 nor 5xx).
LIFECYCLE_ROUTES = {("post", "/orders/{}/pay"), ("post", "/orders/{}/cancel")}
# The waiting room's (README "Admission control"; exercised in test_waiting_room.py): required,
# answered (the probes here carry no valid body or ticket), neither 405 nor 5xx.
ADMISSION_ROUTES = {("post", "/products/{}/queue"), ("get", "/queue/{}"), ("get", "/waiting-room/{}")}
# Routed, and allowed (not required) to be left out of the document.
OPS_ROUTES = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/openapi.json"),
              ("get", "/docs")}
METHODS = ("get", "post", "put", "delete", "patch")
UNDOCUMENTED = ["/admin", "/admin/products", "/orders", "/users", "/users/1", "/purchase/1", "/api/purchase",
                "/products/900/orders", "/health", "/metrics/x", "/openapi.yaml", "/v1/purchase", "/index.html"]


def _norm(path: str) -> str:
    return re.sub(r"\{[^}/]+\}", "{}", path)


def _resolve(spec: dict, schema: dict) -> dict:
    for _ in range(10):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not ref:
            return schema
        node: object = spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]  # type: ignore[index]
        schema = node  # type: ignore[assignment]
    return schema


def test_openapi_documents_exactly_the_routes(srv):
    order = assert_sale(srv.purchase(70, 900), "ACCEPTED")
    spec = srv.get_json("/openapi.json")
    assert str(spec.get("openapi", "")).startswith("3."), f"not an OpenAPI 3 document: {str(spec)[:200]}"
    documented: dict[tuple[str, str], str] = {}
    for path, item in spec.get("paths", {}).items():
        for method in item:
            if method in METHODS:
                documented[(method, _norm(path))] = path
    missing = (CORE_ROUTES | LIFECYCLE_ROUTES | ADMISSION_ROUTES) - documented.keys()
    assert not missing, f"routes missing from /openapi.json: {sorted(missing)}"

    # Purchase request schema names the three fields, all required.
    op = spec["paths"][documented[("post", "/purchase")]]["post"]
    schema = _resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])
    assert {"user_id", "product_id", "amount"} <= set(schema.get("properties", {})), schema
    assert {"user_id", "product_id", "amount"} <= set(schema.get("required", [])), schema
    for (method, norm), path in documented.items():
        assert spec["paths"][path][method].get("responses"), f"{method.upper()} {path} documents no responses"

    # Every documented route answers (real ids, valid bodies): never 404-for-route nor 405.
    # A path parameter is filled from the collection segment before it (/orders/{x} -> order id).
    fill = {"orders": order["order_id"], "users": "70", "products": "900"}

    def concrete(path: str) -> str:
        segs = path.split("/")
        for i, seg in enumerate(segs):
            if seg.startswith("{") and seg.endswith("}"):
                segs[i] = fill.get(segs[i - 1], "1")
        return "/".join(segs)

    bodies = {("post", "/purchase"): {"user_id": 71, "product_id": 900, "amount": 1},
              ("put", "/admin/products/{}"): {"stock": 100, "price": 7.25, "limit_per_user": 1},
              ("post", "/admin/products/{}/restock"): {"amount": 1}}
    for (method, norm), path in sorted(documented.items()):
        r = srv.call(method.upper(), concrete(path), bodies.get((method, norm)), srv.auth())
        if (method, norm) in CORE_ROUTES | OPS_ROUTES:
            assert r.status in (200, 201), f"documented {method.upper()} {path} -> {r!r}"
        elif (method, norm) in LIFECYCLE_ROUTES | ADMISSION_ROUTES:
            assert r.status != 405 and r.status < 500, f"documented {method.upper()} {path} -> {r!r}"
        elif r.status == 404:
            # A route beyond SPEC whose parameter we cannot guess (e.g. a docs asset): it is
            # routed if another method on the same path is refused with 405.
            other = "DELETE" if method != "delete" else "PATCH"
            r2 = srv.call(other, concrete(path), None, srv.auth())
            assert r2.status == 405, f"documented {method.upper()} {path} is not routed: {r!r}, {other}: {r2!r}"
        else:
            assert r.status != 405, f"documented {method.upper()} {path} -> {r!r}"

    # Methods a documented path does not document: 405 with an Allow header that agrees.
    by_path: dict[str, set[str]] = {}
    for (method, norm), path in documented.items():
        by_path.setdefault(path, set()).add(method.upper())
    for path, allowed in by_path.items():
        for method in METHODS:
            if method.upper() in allowed:
                continue
            r = srv.call(method.upper(), concrete(path), {"x": 1}, srv.auth())
            assert_error(r, 405, f"undocumented {method.upper()} {path}")
            allow = {a.strip().upper() for a in (r.header("Allow") or "").split(",") if a.strip()}
            assert allowed <= allow <= allowed | {"HEAD", "OPTIONS"}, (
                f"{method.upper()} {path}: Allow {r.header('Allow')!r}, documented {sorted(allowed)}")

    # Routed paths that are not documented may only be the operational ones.
    for method, norm in OPS_ROUTES:
        assert srv.call(method.upper(), norm).status == 200, f"{method.upper()} {norm} is not routed"
    extra = documented.keys() - CORE_ROUTES - LIFECYCLE_ROUTES - ADMISSION_ROUTES - OPS_ROUTES
    assert all(not n.startswith(("/admin", "/purchase", "/orders", "/users", "/products")) for _, n in extra), (
        f"documented routes beyond SPEC §4: {sorted(extra)}")
    for path in UNDOCUMENTED:
        assert_error(srv.call("GET", path), 404, f"undocumented GET {path}")


# -- timeouts and limits ------------------------------------------------------------------------

def test_idle_keep_alive_connection_is_closed_while_others_are_served(make_server):
    srv = make_server(extra_args=["--idle-timeout", "2"])
    idle = srv.conn()
    busy = srv.conn()
    try:
        assert idle.request("GET", "/healthz").status == 200
        t0 = time.monotonic()
        closed_at = None
        for _ in range(40):  # ~5 s: busy connection keeps working every 0.125 s
            r = busy.request("GET", "/healthz")
            assert r.status == 200, f"active connection refused after {time.monotonic() - t0:.1f}s: {r!r}"
            if closed_at is None and idle.wait_closed(0.125) is not None:
                closed_at = time.monotonic() - t0
            if closed_at is not None and time.monotonic() - t0 > 4.5:
                break
        assert closed_at is not None, "idle connection still open 5 s after --idle-timeout 2"
        assert closed_at >= 1.5, f"idle connection closed after {closed_at:.2f}s, before the 2 s idle timeout"
        assert busy.request("GET", "/healthz").status == 200, "busy connection was closed as idle"
    finally:
        idle.close()
        busy.close()


def test_slow_clients_are_closed_by_the_request_timeout(make_server):
    srv = make_server(extra_args=["--request-timeout", "2"])
    srv.put_product(910, 10, 1.0, expect=(201,))
    other = srv.conn()
    try:
        # 1. Half a header section, then silence.
        half = srv.conn()
        half.send(b"POST /purchase HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        took = half.wait_closed(6)
        assert took is not None, "half-sent header still open 6 s after --request-timeout 2"
        assert took >= 1.5, f"half-sent header closed after {took:.2f}s, before the 2 s request timeout"
        assert not half.buf or half.buf.startswith(b"HTTP/1.1 408"), f"unexpected answer {bytes(half.buf)[:200]!r}"
        half.close()
        assert other.request("GET", "/healthz").status == 200

        # 2. Header trickled one byte every 0.2 s: bytes keep coming, the deadline still holds.
        trickle = srv.conn()
        data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
        t0 = time.monotonic()
        closed = None
        for i in range(len(data)):
            try:
                trickle.sock.sendall(data[i:i + 1])
            except OSError:
                closed = time.monotonic() - t0
                break
            if trickle.wait_closed(0.2) is not None:
                closed = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 8:
                break
        trickle.close()
        assert closed is not None, "a header trickled byte by byte for 8 s was never closed (--request-timeout 2)"
        assert closed <= 5, f"trickled header closed only after {closed:.1f}s"

        # 3. Complete header, body stalls.
        stall = srv.conn()
        body = purchase_body(1, 910, 1)
        stall.send(build_request("POST", "/purchase", None, [("Content-Type", "application/json"),
                                                             ("Content-Length", str(len(body)))]) + body[:10])
        took = stall.wait_closed(6)
        assert took is not None, "stalled body still open 6 s after --request-timeout 2"
        stall.close()
        assert srv.remaining(910) == 10, "a stalled body reserved stock"

        # 4. A keep-alive connection idle between requests is governed by the idle timeout (60 s),
        #    not by the request timeout.
        assert other.request("GET", "/healthz").status == 200
        assert other.wait_closed(3) is None, "idle keep-alive connection closed by the 2 s request timeout"
        assert other.request("GET", "/healthz").status == 200
    finally:
        other.close()


def test_client_that_stops_reading_replies_is_closed(make_server):
    """Pipelined requests whose replies are never read fill the socket buffers;
    the server must give the connection up after --request-timeout instead of
    holding it (and its buffers) forever, and keep serving others."""
    import socket as _socket
    srv = make_server(extra_args=["--request-timeout", "2"])
    s = _socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 4096)
    req = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    while sent < 400 and time.monotonic() < deadline:  # ~18 MB of replies requested
        try:
            s.send(req)
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(4.5)  # never read: the server's write stalls past the 2 s timeout
    other = srv.conn()
    try:
        assert other.request("GET", "/healthz").status == 200
    finally:
        other.close()
    s.setblocking(True)
    s.settimeout(5)
    closed = False
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10:
            chunk = s.recv(1 << 20)
            if not chunk:
                closed = True
                break
    except ConnectionResetError:
        closed = True
    except _socket.timeout:
        closed = False  # still open, just nothing more to read
    finally:
        s.close()
    assert closed, "a connection whose replies were never read was still served after 10 s"


def test_max_connections_refuses_beyond_the_limit(make_server):
    srv = make_server(extra_args=["--max-connections", "4"])
    # The start-up probe's connection (and any other short-lived one) is counted until the
    # server has seen it close, which happens on an I/O thread a moment after the client is
    # done. Open the first held connection and watch, through it, for the server to count
    # only that one before opening the other three: otherwise the 4th can be refused.
    first = srv.conn()

    def only_first_open() -> bool:
        r = first.request("GET", "/metrics")
        return r.status == 200 and parse_metrics(r.body.decode("utf-8")).total("flashsale_connections") == 1

    wait_until(only_first_open, 5, "the start-up probe's connection to be closed", interval=0.05)
    held = [first] + [srv.conn() for _ in range(3)]
    try:
        for c in held:
            assert c.request("GET", "/healthz").status == 200
        refused = False
        try:
            with HttpConn(srv.port, timeout=3) as extra:
                extra.send(build_request("GET", "/healthz"))
                r = extra.read_response()
                refused = r.status == 503
                assert refused, f"5th connection with --max-connections 4 was served: {r!r}"
        except (OSError, Exception) as e:  # closed / reset / timed out
            if isinstance(e, AssertionError):
                raise
            refused = not isinstance(e, TimeoutError)
            assert refused, f"5th connection neither served nor refused within 3 s (hangs): {e!r}"
        for c in held:
            assert c.request("GET", "/healthz").status == 200, "held connections must keep working"
        held.pop().close()

        def fresh_ok() -> bool:
            try:
                with HttpConn(srv.port, timeout=2) as c:
                    return c.request("GET", "/healthz").status == 200
            except Exception:
                return False

        wait_until(fresh_ok, 5, "a new connection once one of 4 closed", interval=0.2)
    finally:
        for c in held:
            c.close()


def test_thousand_concurrent_connections(make_server):
    srv = make_server()
    conns = [srv.conn() for _ in range(1000)]
    try:
        for c in conns:
            c.send(build_request("GET", "/healthz"))
        statuses = [c.read_response().status for c in conns]
        assert statuses.count(200) == 1000, f"{1000 - statuses.count(200)} of 1000 connections failed"
        assert srv.metrics().total("flashsale_connections") >= 1000
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: srv.metrics().total("flashsale_connections") <= 2, 5,
               "flashsale_connections to drop after 1000 clients left")


def test_second_server_on_the_same_database_refuses_to_start(make_server, tmp_path):
    first = make_server()
    second = Server(tmp_path / "second", db_path=first.db_path)
    try:
        with pytest.raises(AssertionError, match="exited"):
            second.start(timeout=5)
        assert second.proc is not None and second.proc.returncode not in (None, 0), second.log_tail()
    finally:
        second.kill9()
    assert first.call("GET", "/healthz").status == 200


# -- signals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_graceful_signals_exit_0(make_server, sig):
    srv = make_server()
    srv.put_product(920, 5, 1.0, expect=(201,))
    order = assert_sale(srv.purchase(1, 920), "ACCEPTED")
    keep = srv.conn()  # an idle keep-alive connection must not block shutdown
    assert keep.request("GET", "/healthz").status == 200
    t0 = time.monotonic()
    rc = srv.stop(sig, timeout=15)
    keep.close()
    assert rc == 0, f"{sig!r}: exit code {rc}\n{srv.log_tail()}"
    assert time.monotonic() - t0 < 10, "graceful shutdown with an idle keep-alive connection took > 10 s"
    srv.start()
    assert srv.get_json(f"/orders/{order['order_id']}")["order_id"] == order["order_id"]
    assert srv.remaining(920) == 4


# -- CLI ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["audit", "--help"], ["seed", "--help"],
                                  ["consume", "--help"]], ids=lambda a: " ".join(a))
def test_help_exits_0(args):
    cp = run_cli(args, timeout=10)
    assert cp.returncode == 0 and (cp.stdout + cp.stderr).strip(), describe_cli(cp)


@pytest.mark.parametrize("flag,value", [("--bogus-flag", None), ("--port", "notaport"), ("--port", "70000"),
                                        ("--threads", "many"), ("--journal-sync", "sometimes"),
                                        ("--idle-timeout", "soon")])
def test_bad_flags_exit_2_naming_the_flag(tmp_path, flag, value):
    # Host/port given first so that, should the flag be ignored, the server stays on loopback.
    args = ["serve", "--host", "127.0.0.1", "--port", str(free_port()),
            "--database", f"sqlite:{tmp_path / 'x.db'}", flag] + ([value] if value else [])
    cp = run_cli(args, timeout=10, cwd=tmp_path)
    assert cp.returncode == 2, describe_cli(cp)
    lines = [ln for ln in (cp.stderr + cp.stdout).splitlines() if ln.strip()]
    assert len(lines) == 1 and flag in lines[0], f"expected one line naming {flag}\n{describe_cli(cp)}"


# -- audit ----------------------------------------------------------------------------------------

def _copy_db(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir()
    dst = dst_dir / src.name
    shutil.copyfile(src, dst)
    for suffix in ("-wal",):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(Path(str(src) + suffix), Path(str(dst) + suffix))
    return dst


def _sibling_id(con: sqlite3.Connection, template: str) -> str:
    """An unused order id in the server's own format: the template with its tail rotated
    within each character's class (hex digit, digit, letter)."""
    def rot(c: str, k: int) -> str:
        for alphabet in ("0123456789abcdef", "0123456789ABCDEF", "0123456789",
                         "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            if c in alphabet:
                return alphabet[(alphabet.index(c) + k) % len(alphabet)]
        return c
    for k in range(1, 10):
        cand = template[:-6] + "".join(rot(c, k) for c in template[-6:])
        if cand != template and not con.execute("SELECT 1 FROM orders WHERE order_id = ?", (cand,)).fetchone():
            return cand
    return "tampered-" + uuid.uuid4().hex


def _insert_order_like(db: Path, template_id: str, **changes) -> None:
    """Inserts a copy of an existing order row with `changes` (and a fresh order_id)."""
    con = sqlite3.connect(str(db), timeout=5)
    try:
        con.row_factory = sqlite3.Row
        row = dict(con.execute("SELECT * FROM orders WHERE order_id = ?", (template_id,)).fetchone())
        row.update(order_id=_sibling_id(con, template_id), **changes)
        if "idempotency_key" in row:
            row["idempotency_key"] = None
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con.execute(f"INSERT INTO orders ({cols}) VALUES ({marks})", list(row.values()))
        con.commit()
    finally:
        con.close()


def test_audit_passes_on_a_healthy_db_and_fails_on_a_broken_one(make_server, tmp_path):
    srv = make_server()
    pid = 930
    srv.put_product(pid, 5, 3.0, limit_per_user=1, expect=(201,))
    ids = [assert_sale(srv.purchase(u, pid), "ACCEPTED")["order_id"] for u in (1, 2)]
    wait_orders_confirmed(srv.db_path, ids)
    cp = srv.audit()
    assert cp.returncode == 0, "audit beside a running server on a healthy db:\n" + describe_cli(cp)
    assert cp.stdout.strip(), "audit must print each invariant\n" + describe_cli(cp)
    assert srv.stop() == 0
    cp = srv.audit()
    assert cp.returncode == 0, "audit of a healthy db:\n" + describe_cli(cp)
    assert {"order_id", "user_id", "product_id", "quantity", "price", "status", "created_at"} <= set(
        db_columns(srv.db_path, "orders")), db_columns(srv.db_path, "orders")

    oversold = _copy_db(srv.db_path, tmp_path / "oversold")
    _insert_order_like(oversold, ids[0], user_id=3, quantity=4, status="CONFIRMED")  # 6 units of stock 5
    cp = run_cli(["audit", "--database", f"sqlite:{oversold}"], cwd=tmp_path)
    assert cp.returncode == 1, "audit of a db with 6 CONFIRMED units of a 5-unit product:\n" + describe_cli(cp)

    over_limit = _copy_db(srv.db_path, tmp_path / "over_limit")
    _insert_order_like(over_limit, ids[0], status="CONFIRMED")  # user 1 now holds 2, limit 1
    cp = run_cli(["audit", "--database", f"sqlite:{over_limit}"], cwd=tmp_path)
    assert cp.returncode == 1, "audit of a db where user 1 holds 2 units, limit 1:\n" + describe_cli(cp)

    cp = srv.audit()
    assert cp.returncode == 0, "the original db must be untouched:\n" + describe_cli(cp)


# -- seed -------------------------------------------------------------------------------------------

def test_seed_json_and_csv(tmp_path):
    db = tmp_path / "seeded.db"
    cat1 = tmp_path / "catalog.json"
    cat1.write_text(json.dumps([
        {"product_id": 801, "price": 9.5, "stock": 10},
        {"product_id": 802, "price": 0.99, "stock": 3, "starts_at": "2020-01-01T00:00:00Z", "ends_at": None,
         "limit_per_user": 2},
    ]))
    cat2 = tmp_path / "catalog2.json"
    cat2.write_text(json.dumps([{"product_id": 801, "price": 20, "stock": 11},
                                {"product_id": 803, "price": 1.25, "stock": 4}]))
    csv = tmp_path / "catalog.csv"
    csv.write_text("product_id,price,stock,starts_at,ends_at,limit_per_user\n"
                   "804,3.5,6,,,\n"
                   "805,4,7,2020-01-01T00:00:00Z,2099-01-01T00:00:00Z,3\n")

    def seed(*extra: str, expect: int = 0) -> None:
        cp = run_cli(["seed", *extra, "--database", f"sqlite:{db}"], cwd=tmp_path)
        assert cp.returncode == expect, describe_cli(cp)

    seed(str(cat1))
    srv = Server(tmp_path / "srv", db_path=db, mock_products=None)  # default mock count: catalog not empty
    try:
        srv.start()
        p = srv.product(801)
        assert (p["price"], p["stock"], p["remaining"], p["limit_per_user"]) == (9.5, 10, 10, 1), p
        p = srv.product(802)
        assert (p["price"], p["stock"], p["starts_at"], p["ends_at"], p["limit_per_user"]) == (
            0.99, 3, "2020-01-01T00:00:00Z", None, 2), p
        srv.get_json("/products/10000000", status=404)  # mock catalog only when the catalog is empty
        cp = run_cli(["seed", str(csv), "--database", f"sqlite:{db}"], cwd=tmp_path)
        assert cp.returncode != 0 and (cp.stdout + cp.stderr).strip(), (
            "seed must refuse, with a message, while a server holds the db\n" + describe_cli(cp))
        assert_sale(srv.purchase(1, 801), "ACCEPTED")
        assert srv.stop() == 0

        seed(str(cat2))   # 801 exists: kept (SETNX); 803 added
        seed(str(csv))
        srv.start()
        p = srv.product(801)
        assert (p["price"], p["stock"], p["remaining"]) == (9.5, 10, 9), f"seed without --force overwrote 801: {p}"
        assert srv.product(803)["stock"] == 4
        p = srv.product(804)
        assert (p["price"], p["stock"], p["starts_at"], p["ends_at"], p["limit_per_user"]) == (3.5, 6, None, None, 1), p
        p = srv.product(805)
        assert (p["price"], p["stock"], p["ends_at"], p["limit_per_user"]) == (4, 7, "2099-01-01T00:00:00Z", 3), p
        assert srv.stop() == 0

        seed(str(cat2), "--force")
        srv.start()
        p = srv.product(801)
        assert (p["price"], p["stock"], p["remaining"]) == (20, 11, 10), f"seed --force on 801 (1 sold): {p}"
        assert srv.stop() == 0
    finally:
        srv.kill9()


# -- mock catalog ----------------------------------------------------------------------------------

def test_mock_catalog_is_deterministic_per_seed(make_server):
    a = make_server(mock_products=50)
    b = make_server(mock_products=50)
    la = a.get_json("/products?offset=0&limit=1000")
    lb = b.get_json("/products?offset=0&limit=1000")
    assert [p["product_id"] for p in la] == list(range(10_000_000, 10_000_050)), [p["product_id"] for p in la][:5]
    assert la == lb, "same --mock-seed, different catalogs"
    assert all(p["stock"] >= 0 and p["price"] >= 0 and p["remaining"] == p["stock"] for p in la), la[:3]
    a.get_json("/products/10000050", status=404)


def test_default_mock_catalog_covers_the_load_script_range(make_server):
    srv = make_server(mock_products=None)
    srv.get_json("/products/10000000")
    srv.get_json("/products/10009999")
    srv.get_json("/products/10010000", status=404)
    srv.get_json("/products/9999999", status=404)
    rng = random.Random(3)
    with srv.conn() as c:  # what the seed's load script does: must be 200 (or 400) every time
        for _ in range(100):
            r = c.purchase(rng.randrange(200), rng.randrange(10_000_000, 10_010_000), 1)
            assert r.status in (200, 400), f"load-script request failed: {r!r}"


def test_http10_keep_alive_is_echoed_and_honoured(srv):
    """HTTP/1.0 clients (ab -k) keep a connection only if the reply says
    Connection: keep-alive; without it the server closes after the reply."""
    import socket as _socket
    s = _socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                  b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    first, second = data.split(b"HTTP/1.1 ")[1:3]
    assert b"\r\nConnection: keep-alive\r\n" in first, first
    assert b"\r\nConnection: close\r\n" in second, second
