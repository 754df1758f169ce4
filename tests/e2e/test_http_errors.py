"""Bad input gets a clear 4xx, changes nothing, and the server stays up (SPEC §4, §6.4).

One server for the module, one product P with plenty of stock. Every malformed request in the
tables below is sent on a fresh connection; afterwards P's `remaining` must be unchanged, the
users involved must have no orders, and GET /healthz must answer 200.

Decisions where SPEC is silent (written down here so the server's README can match):
  * JSON syntax errors (bad JSON, leading zeros, NaN/Infinity, bad UTF-8, empty or non-object
    body) cannot name a field: the 422 only has to put "body" first in every loc.
  * Type/range/missing/extra/duplicate errors must name exactly the bad fields as
    loc ["body", field].
  * Content-Type: `application/json; charset=utf-8` must work; a missing or non-JSON
    Content-Type may be processed as JSON, or refused with 415/422 (then nothing changes).
  * After 404/405/422 the keep-alive connection stays usable; after 400 it is closed.
"""

from __future__ import annotations

import time

import pytest

from harness import (HttpConn, assert_422, assert_error, assert_sale, build_request, purchase_body,
                     raw_exchange)

P = 4242            # the product every case aims at
P_STOCK = 1000
P_LIMIT = 5
USER = 31           # user id used by the malformed bodies
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def srv(server_factory):
    s = server_factory()
    s.put_product(P, P_STOCK, 12.5, limit_per_user=P_LIMIT, expect=(201,))
    for pid in (7001, 7002, 7003):
        s.put_product(pid, 10, 1.0, expect=(201,))
    return s


def _j(user: str = str(USER), product: str = str(P), amount: str = "1") -> bytes:
    return purchase_body(user, product, amount)


# (id, raw body, fields that must be named in loc ["body", f]; None = only loc[0] == "body")
UNPROCESSABLE = [
    # integers given as other JSON types
    ("user_id-string", _j(user='"31"'), ["user_id"]),
    ("product_id-string", _j(product=f'"{P}"'), ["product_id"]),
    ("amount-string", _j(amount='"1"'), ["amount"]),
    ("user_id-true", _j(user="true"), ["user_id"]),
    ("product_id-false", _j(product="false"), ["product_id"]),
    ("amount-true", _j(amount="true"), ["amount"]),
    ("user_id-null", _j(user="null"), ["user_id"]),
    ("product_id-null", _j(product="null"), ["product_id"]),
    ("amount-null", _j(amount="null"), ["amount"]),
    ("user_id-float", _j(user="31.0"), ["user_id"]),
    ("product_id-float", _j(product=f"{P}.0"), ["product_id"]),
    ("amount-float-1.0", _j(amount="1.0"), ["amount"]),
    ("amount-float-1.5", _j(amount="1.5"), ["amount"]),
    ("user_id-exponent", _j(user="1e3"), ["user_id"]),
    ("product_id-exponent", _j(product="4.242E3"), ["product_id"]),
    ("amount-exponent", _j(amount="1e0"), ["amount"]),
    ("user_id-array", _j(user="[31]"), ["user_id"]),
    ("amount-object", _j(amount='{"n":1}'), ["amount"]),
    # out of range
    ("user_id-negative", _j(user="-1"), ["user_id"]),
    ("user_id-int64-min", _j(user=str(-2**63)), ["user_id"]),
    ("product_id-zero", _j(product="0"), ["product_id"]),
    ("product_id-negative", _j(product="-4242"), ["product_id"]),
    ("amount-zero", _j(amount="0"), ["amount"]),
    ("amount-negative", _j(amount="-1"), ["amount"]),
    ("all-three-out-of-range", _j(user="-5", product="0", amount="0"), ["user_id", "product_id", "amount"]),
    # outside int64
    ("user_id-int64-overflow", _j(user=str(2**63)), ["user_id"]),
    ("product_id-uint64-overflow", _j(product=str(2**64)), ["product_id"]),
    ("amount-huge", _j(amount="1" + "0" * 30), ["amount"]),
    ("user_id-int64-underflow", _j(user=str(-2**63 - 1)), ["user_id"]),
    # missing / unknown / duplicate fields
    ("missing-user_id", f'{{"product_id":{P},"amount":1}}'.encode(), ["user_id"]),
    ("missing-product_id", f'{{"user_id":{USER},"amount":1}}'.encode(), ["product_id"]),
    ("missing-amount", f'{{"user_id":{USER},"product_id":{P}}}'.encode(), ["amount"]),
    ("missing-all", b"{}", ["user_id", "product_id", "amount"]),
    ("extra-field", f'{{"user_id":{USER},"product_id":{P},"amount":1,"coupon":"x"}}'.encode(), ["coupon"]),
    ("duplicate-key-same-value", f'{{"user_id":{USER},"user_id":{USER},"product_id":{P},"amount":1}}'.encode(),
     ["user_id"]),
    ("duplicate-key-other-value", f'{{"user_id":{USER},"product_id":{P},"amount":1,"amount":2}}'.encode(),
     ["amount"]),
    # JSON that is not one valid object: no field can be named
    ("leading-zero-user_id", _j(user="031"), None),
    ("leading-zero-amount", _j(amount="01"), None),
    ("nan", _j(user="NaN"), None),
    ("infinity", _j(product="Infinity"), None),
    ("minus-infinity", _j(amount="-Infinity"), None),
    ("hex-number", _j(amount="0x1"), None),
    ("plus-sign", _j(amount="+1"), None),
    ("truncated", f'{{"user_id":{USER},"product_id":{P},"amount":1'.encode(), None),
    ("trailing-comma", f'{{"user_id":{USER},"product_id":{P},"amount":1,}}'.encode(), None),
    ("single-quotes", f"{{'user_id':{USER},'product_id':{P},'amount':1}}".encode(), None),
    ("unquoted-keys", f"{{user_id:{USER},product_id:{P},amount:1}}".encode(), None),
    ("trailing-garbage", _j() + b" x", None),
    ("two-objects", _j() + _j(), None),
    ("comment", b"/* hi */" + _j(), None),
    ("bad-utf8-in-key", f'{{"user_id":{USER},"product_id":{P},"amount":1,"\xff":1}}'.encode("latin-1"), None),
    ("overlong-utf8", f'{{"user_id":{USER},"product_id":{P},"amount":1,"a\xc0\xaf":1}}'.encode("latin-1"), None),
    ("non-object-array", b"[" + _j() + b"]", None),
    ("non-object-empty-array", b"[]", None),
    ("non-object-string", b'"hello"', None),
    ("non-object-number", b"42", None),
    ("non-object-null", b"null", None),
    ("non-object-true", b"true", None),
    ("empty-body", b"", None),
    ("whitespace-body", b"  \r\n\t ", None),
]


def _assert_unchanged_and_alive(srv, before: int, case: str) -> None:
    after = srv.remaining(P)
    assert after == before, f"[{case}] remaining of product {P} changed {before} -> {after}"
    r = srv.call("GET", "/healthz")
    assert r.status == 200, f"[{case}] server unhealthy afterwards: {r!r}"


@pytest.mark.parametrize("case,body,fields", UNPROCESSABLE, ids=[c[0] for c in UNPROCESSABLE])
def test_unprocessable_purchase_body(srv, case, body, fields):
    before = srv.remaining(P)
    with srv.conn() as c:
        resp = c.request("POST", "/purchase", body, [("Content-Type", "application/json")])
        assert_422(resp, fields, msg=f"[{case}] body={body!r}")
        assert (resp.header("Content-Type") or "").startswith("application/json"), f"[{case}] {resp!r}"
        # 422 is an ordinary answer: the keep-alive connection keeps working.
        again = c.request("GET", "/healthz")
        assert again.status == 200, f"[{case}] keep-alive connection unusable after 422: {again!r}"
    _assert_unchanged_and_alive(srv, before, case)


def test_no_orders_from_malformed_bodies(srv):
    # Runs after the table (file order): USER never got an order out of all that.
    orders = srv.get_json(f"/users/{USER}/orders")
    assert orders == [], f"user {USER} has orders after only malformed purchases: {orders!r}"


# -- body size: over 4 KiB -> 413 ------------------------------------------------------------

def _padded(body: bytes, size: int) -> bytes:
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize("size", [4097, 5 * 1024, 64 * 1024])
def test_body_over_4k_is_413(srv, size):
    before = srv.remaining(P)
    body = _padded(_j(user="32"), size)
    resp, _, _ = raw_exchange(srv.port, build_request("POST", "/purchase", body,
                                                      [("Content-Type", "application/json")]))
    assert resp is not None, f"no response to a {size}-byte body (connection closed without 413)"
    assert_error(resp, 413, f"body of {size} bytes")
    _assert_unchanged_and_alive(srv, before, f"{size}-byte body")


def test_huge_content_length_is_413_without_sending_body(srv):
    before = srv.remaining(P)
    req = (b"POST /purchase HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: 1000000000000\r\n\r\n")
    resp, _, _ = raw_exchange(srv.port, req, timeout=4)
    assert resp is not None, "server closed without answering a 1 TB Content-Length"
    assert_error(resp, 413, "Content-Length: 1000000000000, no body sent")
    _assert_unchanged_and_alive(srv, before, "huge Content-Length")


def test_body_of_exactly_4k_is_processed(srv):
    # 4096 bytes is not "over 4 KiB": it must reach the funnel (unknown product -> 404).
    body = _padded(purchase_body(33, 999_999_999, 1), 4096)
    with srv.conn() as c:
        resp = c.request("POST", "/purchase", body, [("Content-Type", "application/json")])
    assert resp.status == 404, f"4096-byte body should be processed (unknown product), got {resp!r}"
    assert resp.json() == {"code": 404, "message": "商品不存在", "data": False, "status": "UNKNOWN_PRODUCT"}, resp


# -- header section over 8 KiB -> 431 ----------------------------------------------------------

@pytest.mark.parametrize("shape", ["one-big-header", "many-headers"])
def test_header_section_over_8k_is_431(srv, shape):
    before = srv.remaining(P)
    if shape == "one-big-header":
        hdrs = [("X-Big", "a" * 9000)]
    else:
        hdrs = [(f"X-H{i:03d}", "b" * 90) for i in range(110)]
    hdrs.append(("Content-Type", "application/json"))
    resp, _, _ = raw_exchange(srv.port, build_request("POST", "/purchase", _j(user="34"), hdrs))
    assert resp is not None, f"[{shape}] connection closed without a 431"
    assert_error(resp, 431, shape)
    _assert_unchanged_and_alive(srv, before, shape)


def test_header_section_under_8k_is_fine(srv):
    with srv.conn() as c:
        resp = c.request("GET", f"/products/{P}", headers=[("X-Pad", "p" * 7000)])
    assert resp.status == 200, f"7000-byte header must be accepted: {resp!r}"


def test_very_long_request_target_is_refused_cleanly(srv):
    before = srv.remaining(P)
    resp, _, _ = raw_exchange(srv.port, build_request("GET", "/" + "x" * 10_000))
    assert resp is not None, "connection closed without an answer to a 10 KB request target"
    assert resp.status in (400, 404, 414, 431), f"10 KB target: {resp!r}"
    _assert_unchanged_and_alive(srv, before, "long target")


# -- routing: 405 with Allow, 404 --------------------------------------------------------------

METHOD_NOT_ALLOWED = [
    ("GET", "/purchase", "POST"),
    ("PUT", "/purchase", "POST"),
    ("DELETE", "/purchase", "POST"),
    ("PATCH", "/purchase", "POST"),
    ("POST", f"/products/{P}", "GET"),
    ("DELETE", f"/products/{P}", "GET"),
    ("POST", "/products", "GET"),
    ("POST", "/healthz", "GET"),
    ("PUT", "/orders/some-order", "GET"),
    ("POST", "/users/1/orders", "GET"),
    ("DELETE", f"/admin/products/{P}", "PUT"),
    ("GET", f"/admin/products/{P}/restock", "POST"),
]


@pytest.mark.parametrize("method,path,allowed", METHOD_NOT_ALLOWED,
                         ids=[f"{m}-{p}" for m, p, _ in METHOD_NOT_ALLOWED])
def test_wrong_method_is_405_with_allow(srv, method, path, allowed):
    before = srv.remaining(P)
    body = _j(user="35") if method in ("PUT", "POST", "PATCH") else None
    with srv.conn() as c:
        resp = c.request(method, path, body, {"Content-Type": "application/json", **srv.auth()})
        assert_error(resp, 405, f"{method} {path}")
        allow = {m.strip().upper() for m in (resp.header("Allow") or "").split(",") if m.strip()}
        assert allowed in allow, f"{method} {path}: Allow header {resp.header('Allow')!r} lacks {allowed}: {resp!r}"
        assert method not in allow, f"{method} {path}: Allow {allow} lists the refused method"
        again = c.request("GET", "/healthz")
        assert again.status == 200, f"keep-alive connection unusable after 405: {again!r}"
    _assert_unchanged_and_alive(srv, before, f"{method} {path}")


NOT_FOUND = [
    ("GET", "/nope"),
    ("GET", "/purchase/1"),
    ("POST", "/purchases"),
    ("GET", f"/products/{P}/extra"),
    ("GET", "/users/1"),
    ("GET", "/orders"),
    ("GET", "/admin"),
    ("POST", f"/admin/products/{P}/destroy"),
]


@pytest.mark.parametrize("method,path", NOT_FOUND, ids=[f"{m}-{p}" for m, p in NOT_FOUND])
def test_unknown_route_is_404(srv, method, path):
    before = srv.remaining(P)
    body = _j(user="36") if method == "POST" else None
    with srv.conn() as c:
        resp = c.request(method, path, body, {"Content-Type": "application/json", **srv.auth()})
        assert_error(resp, 404, f"{method} {path}")
        again = c.request("GET", "/healthz")
        assert again.status == 200, f"keep-alive connection unusable after 404: {again!r}"
    _assert_unchanged_and_alive(srv, before, f"{method} {path}")


def test_unknown_resources_are_404(srv):
    assert_error(srv.call("GET", "/orders/no-such-order"), 404, "unknown order")
    assert_error(srv.call("GET", "/products/987654321"), 404, "unknown product")
    r = srv.purchase(37, 987654321)
    assert r.status == 404, f"purchase of an unknown product: {r!r}"
    assert r.json() == {"code": 404, "message": "商品不存在", "data": False, "status": "UNKNOWN_PRODUCT"}, r
    assert srv.get_json("/users/37/orders") == []


# -- malformed HTTP: 400 and the connection closed ----------------------------------------------

MALFORMED_HTTP = [
    ("tls-client-hello", bytes.fromhex("160301 00a5 01 0000a1 0303") + bytes(range(32))),
    ("garbage-line", b"HELLO WORLD\r\n\r\n"),
    ("binary-garbage", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n"),
    ("no-version", b"GET /healthz\r\nHost: x\r\n\r\n"),
    ("bad-protocol", b"GET /healthz FTP/1.1\r\nHost: x\r\n\r\n"),
    ("extra-token-in-request-line", b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
    ("nul-in-method", b"G\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("header-without-colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
    ("nul-in-header-name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-B\x00d: 1\r\n\r\n"),
    ("space-before-colon", b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"),
    ("content-length-not-a-number",
     b"POST /purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n"),
    ("content-length-negative",
     b"POST /purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n"),
    ("content-length-conflicting",
     b"POST /purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
     b"Content-Length: 7\r\n\r\n1234567"),
]


@pytest.mark.parametrize("case,data", MALFORMED_HTTP, ids=[c for c, _ in MALFORMED_HTTP])
def test_malformed_http_is_400_and_closed(srv, case, data):
    before = srv.remaining(P)
    resp, leftover, closed_after = raw_exchange(srv.port, data, timeout=4)
    assert resp is not None, f"[{case}] connection closed without a 400 for {data!r}"
    assert_error(resp, 400, f"[{case}] request bytes {data!r}")
    assert closed_after is not None, f"[{case}] connection still open 4 s after the 400 for {data!r}"
    assert leftover == b"", f"[{case}] bytes after the 400 response: {leftover[:200]!r}"
    _assert_unchanged_and_alive(srv, before, case)


# -- content type and framing that must work ---------------------------------------------------

def test_json_content_type_with_charset_is_accepted(srv):
    before = srv.remaining(P)
    with srv.conn() as c:
        resp = c.request("POST", "/purchase", _j(user="40"),
                         [("Content-Type", "application/json; charset=utf-8")])
    assert_sale(resp, "ACCEPTED")
    assert srv.remaining(P) == before - 1


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_processed_or_refused_cleanly(srv, ctype):
    user = {None: 41, "text/plain": 42, "application/x-www-form-urlencoded": 43}[ctype]
    before = srv.remaining(P)
    hdrs = [] if ctype is None else [("Content-Type", ctype)]
    with srv.conn() as c:
        resp = c.request("POST", "/purchase", _j(user=str(user)), hdrs)
    assert resp.status in (200, 415, 422), f"Content-Type {ctype!r}: {resp!r}"
    if resp.status == 200:
        assert_sale(resp, "ACCEPTED")
        assert srv.remaining(P) == before - 1
    else:
        assert srv.remaining(P) == before, f"refused request changed remaining: {resp!r}"


def test_pipelined_requests_answer_in_order(srv):
    before = srv.remaining(P)
    reqs = (build_request("GET", "/healthz")
            + build_request("POST", "/purchase", _j(user='"x"'), [("Content-Type", "application/json")])
            + build_request("POST", "/purchase", _j(user="44"), [("Content-Type", "application/json")])
            + build_request("GET", f"/products/{P}"))
    with srv.conn() as c:
        c.send(reqs)
        r1, r2, r3, r4 = (c.read_response() for _ in range(4))
    assert r1.status == 200, r1
    assert_422(r2, ["user_id"])
    assert_sale(r3, "ACCEPTED")
    assert r4.status == 200 and r4.json()["remaining"] == before - 1, r4


def test_connection_close_and_http10(srv):
    with srv.conn() as c:
        c.send(build_request("GET", "/healthz", headers=[("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200, r
        assert c.wait_closed(3) is not None, "server kept the connection open after Connection: close"
    with srv.conn() as c:
        c.send(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert c.wait_closed(3) is not None, "server kept an HTTP/1.0 connection open without keep-alive"


def test_expect_100_continue(srv):
    before = srv.remaining(P)
    with srv.conn() as c:
        c.send(build_request("POST", "/purchase", _j(user="45"),
                             [("Content-Type", "application/json"), ("Expect", "100-continue")]))
        resp = c.read_response()  # skips an interim 100 Continue if the server sends one
    assert_sale(resp, "ACCEPTED")
    assert srv.remaining(P) == before - 1


# -- boundary values that are valid ------------------------------------------------------------

def test_boundary_values_are_valid(srv):
    before = srv.remaining(P)
    assert_sale(srv.purchase(0, P), "ACCEPTED", "user_id 0 is valid (>= 0)")
    assert_sale(srv.purchase(INT64_MAX, P), "ACCEPTED", "user_id INT64_MAX is valid")
    r = srv.purchase(46, INT64_MAX)
    assert r.status == 404 and r.json().get("status") == "UNKNOWN_PRODUCT", f"product_id INT64_MAX: {r!r}"
    # A valid but absurd amount must not overflow anything: the limit (5) refuses it first.
    assert_sale(srv.purchase(46, P, INT64_MAX), "LIMIT_EXCEEDED", "amount INT64_MAX")
    assert_sale(srv.purchase(47, P, P_LIMIT), "ACCEPTED", "amount == limit")
    assert srv.remaining(P) == before - 2 - P_LIMIT
    whitespace = b' \n{ "amount" : 1 ,\t"product_id":%d , "user_id" : 48 }\n ' % P
    with srv.conn() as c:
        assert_sale(c.request("POST", "/purchase", whitespace, [("Content-Type", "application/json")]),
                    "ACCEPTED", "any key order and JSON whitespace")


@pytest.mark.parametrize("held", [1, P_LIMIT])
def test_huge_amount_does_not_overflow_the_limit_check(srv, held):
    # held + amount must not wrap around: the per-user limit refuses before stock is looked at.
    user = 60 + held
    before = srv.remaining(P)
    assert_sale(srv.purchase(user, P, held), "ACCEPTED")
    for amount in (INT64_MAX, INT64_MAX - held + 1, INT64_MAX - 1):
        assert_sale(srv.purchase(user, P, amount), "LIMIT_EXCEEDED",
                    f"user holding {held} (limit {P_LIMIT}) asks for {amount}")
    assert srv.remaining(P) == before - held


# -- query parameters of GET /products -----------------------------------------------------------

@pytest.mark.parametrize("query,field", [
    ("limit=1001", "limit"), ("limit=-1", "limit"), ("offset=-1", "offset"),
    ("limit=abc", "limit"), ("offset=1.5", "offset"),
])
def test_products_query_validation(srv, query, field):
    assert_422(srv.call("GET", f"/products?{query}"), [field], where="query", msg=query)


def test_products_pagination(srv):
    everything = srv.get_json("/products?offset=0&limit=1000")
    ids = [p["product_id"] for p in everything]
    assert {P, 7001, 7002, 7003} <= set(ids), ids
    assert len(ids) == len(set(ids)), f"duplicate products listed: {ids}"
    page = srv.get_json("/products?offset=1&limit=2")
    assert [p["product_id"] for p in page] == ids[1:3], f"offset=1&limit=2 gave {page!r}, all: {ids}"
    assert srv.get_json("/products?offset=1000&limit=5") == []
    default = srv.get_json("/products")
    assert [p["product_id"] for p in default] == ids[:100]


def test_request_split_into_single_bytes(srv):
    before = srv.remaining(P)
    data = build_request("POST", "/purchase", _j(user="49"), [("Content-Type", "application/json")])
    with srv.conn() as c:
        for i in range(len(data)):
            c.sock.sendall(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)  # separate segments, well inside the request timeout
        assert_sale(c.read_response(), "ACCEPTED", "request sent one byte at a time")
    assert srv.remaining(P) == before - 1


def test_pipelined_burst_with_lowercase_headers(srv):
    before = srv.remaining(P)
    users = range(500, 700)
    burst = b"".join(
        f"POST /purchase HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(_j(user=str(u)))}\r\n\r\n".encode() + _j(user=str(u)) for u in users)
    with srv.conn() as c:
        c.send(burst)
        answers = [c.read_response() for _ in users]
    ids = [assert_sale(a, "ACCEPTED", f"pipelined #{i}")["order_id"] for i, a in enumerate(answers)]
    assert len(set(ids)) == len(ids)
    assert srv.remaining(P) == before - len(users)
    # Responses came back in request order: each order belongs to the user of that position.
    for u, oid in list(zip(users, ids))[::37]:
        assert srv.get_json(f"/orders/{oid}")["user_id"] == u, f"pipelined responses out of order at user {u}"


def test_pipeline_stops_after_connection_close(srv):
    before = srv.remaining(P)
    data = (build_request("GET", "/healthz", headers=[("Connection", "close")])
            + build_request("POST", "/purchase", _j(user="50"), [("Content-Type", "application/json")]))
    with srv.conn() as c:
        c.send(data)
        assert c.read_response().status == 200
        assert c.wait_closed(3) is not None, "connection not closed after Connection: close"
        assert c.buf == b"", f"answered a request pipelined after Connection: close: {bytes(c.buf)[:200]!r}"
    assert srv.remaining(P) == before, "a request after Connection: close was executed"
