"""Admin API (SPEC §4 "Admin", §1 restock/L1, §6.5): token checks, create/replace, 409 when
stock < sold, restock clears the sold-out caches, sale windows.
"""

from __future__ import annotations

import time

import pytest

from harness import ADMIN_TOKEN, assert_422, assert_error, assert_sale, parse_rfc3339, utc_in


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory()


ROUTES = [("PUT", "/admin/products/{pid}", {"stock": 5, "price": 1.5}),
          ("POST", "/admin/products/{pid}/restock", {"amount": 1})]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=["put", "restock"])
def test_missing_token_is_401_and_wrong_token_403(srv, method, path, body):
    pid = 601
    srv.put_product(pid, 5, 1.5, expect=(200, 201))
    before = srv.product(pid)
    p = path.format(pid=pid)
    assert_error(srv.call(method, p, body), 401, f"{method} {p} without Authorization")
    assert_error(srv.call(method, p, body, {"Authorization": "Bearer wrong-token"}), 403, f"{method} {p} wrong token")
    assert_error(srv.call(method, p, body, {"Authorization": f"Bearer {ADMIN_TOKEN}x"}), 403, "token + suffix")
    assert_error(srv.call(method, p, body, {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}), 403, "token prefix")
    r = srv.call(method, p, body, {"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert r.status in (401, 403), f"non-Bearer scheme must be refused: {r!r}"
    assert srv.product(pid) == before, "a refused admin call changed the product"
    # Unauthorised calls on an unknown product do not reveal anything either.
    assert_error(srv.call(method, path.format(pid=699), body), 401, "unknown product, no token")


def test_no_admin_token_configured_means_403_everywhere(make_server):
    srv = make_server(admin_token=None)
    for method, path, body in ROUTES:
        p = path.format(pid=602)
        assert_error(srv.call(method, p, body), 403, f"{method} {p} with admin disabled, no header")
        assert_error(srv.call(method, p, body, {"Authorization": "Bearer anything"}), 403,
                     f"{method} {p} with admin disabled, some token")
        assert_error(srv.call(method, p, body, {"Authorization": "Bearer "}), 403,
                     f"{method} {p} with admin disabled, empty token")
    srv.get_json("/products/602", status=404)


def test_put_creates_201_then_replaces_200(srv):
    pid = 610
    r = srv.put_product(pid, 50, 19.9, limit_per_user=2, starts_at="2020-01-01T00:00:00Z",
                        ends_at="2099-12-31T23:59:59Z", expect=(201,))
    assert r.status == 201
    p = srv.product(pid)
    assert p == {**p, "product_id": pid, "price": 19.9, "stock": 50, "remaining": 50, "sold_out": False,
                 "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-12-31T23:59:59Z", "limit_per_user": 2}, p
    assert srv.call("GET", "/products").status == 200
    r = srv.put_product(pid, 60, 0.5, expect=(200,))
    p = srv.product(pid)
    assert (p["price"], p["stock"], p["remaining"]) == (0.5, 60, 60), p
    assert p["starts_at"] is None and p["ends_at"] is None, f"omitted window fields mean open: {p}"
    assert p["limit_per_user"] == 1, f"omitted limit_per_user means the default of 1: {p}"


@pytest.mark.parametrize("price", [0, 0.01, 12.3, 12.34, 1000000, 99999.99])
def test_price_is_returned_as_given(srv, price):
    pid = 611
    srv.put_product(pid, 1, price, expect=(200, 201))
    got = srv.product(pid)["price"]
    assert got == price and isinstance(got, (int, float)) and not isinstance(got, bool), (
        f"PUT price {price!r} came back as {got!r}")


@pytest.mark.parametrize("body,field", [
    ({"price": 1.0}, "stock"),
    ({"stock": 1}, "price"),
    ({"stock": -1, "price": 1.0}, "stock"),
    ({"stock": "5", "price": 1.0}, "stock"),
    ({"stock": 1.5, "price": 1.0}, "stock"),
    ({"stock": 5, "price": -0.01}, "price"),
    ({"stock": 5, "price": 1.005}, "price"),
    ({"stock": 5, "price": "1.00"}, "price"),
    ({"stock": 5, "price": 1.0, "limit_per_user": 0}, "limit_per_user"),
    ({"stock": 5, "price": 1.0, "limit_per_user": 1.0}, "limit_per_user"),
    ({"stock": 5, "price": 1.0, "starts_at": "tomorrow"}, "starts_at"),
    ({"stock": 5, "price": 1.0, "ends_at": 1764064800}, "ends_at"),
    ({"stock": 5, "price": 1.0, "colour": "red"}, "colour"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_put_validation_is_422(srv, body, field):
    pid = 612
    srv.put_product(pid, 7, 3.0, expect=(200, 201))
    before = srv.product(pid)
    assert_422(srv.call("PUT", f"/admin/products/{pid}", body, srv.auth()), [field], msg=str(body))
    assert srv.product(pid) == before, f"a refused PUT {body} changed the product"


def test_put_window_with_end_before_start_is_422(srv):
    r = srv.call("PUT", "/admin/products/613",
                 {"stock": 5, "price": 1.0, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
                 srv.auth())
    assert r.status == 422, f"ends_at before starts_at: {r!r}"
    srv.get_json("/products/613", status=404)


def test_stock_below_sold_is_409(srv):
    pid = 620
    srv.put_product(pid, 5, 2.0, limit_per_user=1, expect=(201,))
    for u in (1, 2, 3):
        assert_sale(srv.purchase(u, pid), "ACCEPTED")
    r = srv.call("PUT", f"/admin/products/{pid}", {"stock": 2, "price": 2.0, "limit_per_user": 1}, srv.auth())
    assert_error(r, 409, "stock 2 < sold 3")
    p = srv.product(pid)
    assert (p["stock"], p["remaining"]) == (5, 2), f"a 409 PUT changed the product: {p}"
    srv.put_product(pid, 3, 2.0, limit_per_user=1, expect=(200,))
    p = srv.product(pid)
    assert (p["stock"], p["remaining"], p["sold_out"]) == (3, 0, True), p
    assert_sale(srv.purchase(4, pid), "SOLD_OUT")
    # PUT with more stock again re-opens the sale (clears L2/L1 as a restock does).
    srv.put_product(pid, 4, 2.0, limit_per_user=1, expect=(200,))
    assert srv.product(pid)["remaining"] == 1
    assert_sale(srv.purchase(4, pid), "ACCEPTED", "after PUT raised stock above sold")
    assert_sale(srv.purchase(5, pid), "SOLD_OUT")
    # Raising the per-user limit lets a buyer buy again.
    srv.put_product(pid, 10, 2.0, limit_per_user=2, expect=(200,))
    assert_sale(srv.purchase(1, pid), "ACCEPTED", "limit raised from 1 to 2")
    assert_sale(srv.purchase(1, pid), "LIMIT_EXCEEDED")


def test_restock_after_sell_out_reopens_sale_and_clears_l1(srv):
    pid = 630
    srv.put_product(pid, 2, 3.0, limit_per_user=1, expect=(201,))
    assert_sale(srv.purchase(11, pid), "ACCEPTED")
    assert_sale(srv.purchase(12, pid), "ACCEPTED")
    assert_sale(srv.purchase(13, pid), "SOLD_OUT")
    l1_start = srv.metrics().total("flashsale_l1_hits_total")
    with srv.conn() as c:
        for u in range(100, 130):
            assert_sale(c.purchase(u, pid), "SOLD_OUT")
    l1_sold_out = srv.metrics().total("flashsale_l1_hits_total")
    assert l1_sold_out >= l1_start + 25, (
        f"30 purchases of a sold-out product should mostly hit L1: flashsale_l1_hits_total {l1_start} -> {l1_sold_out}")

    r = srv.restock(pid, 4)
    assert r.status == 200, f"restock of a sold-out product: {r!r}"
    p = srv.product(pid)
    assert (p["stock"], p["remaining"], p["sold_out"]) == (6, 4, False), f"after restock +4: {p}"
    with srv.conn() as c:
        for u in (201, 202, 203):
            assert_sale(c.purchase(u, pid), "ACCEPTED", "after restock the L1 entry must be gone")
        l1_after = srv.metrics().total("flashsale_l1_hits_total")
        assert l1_after == l1_sold_out, (
            f"purchases after restock still hit L1: flashsale_l1_hits_total {l1_sold_out} -> {l1_after}")
        assert_sale(c.purchase(11, pid), "LIMIT_EXCEEDED", "restock keeps per-user records")
        assert_sale(c.purchase(204, pid), "ACCEPTED")
        assert_sale(c.purchase(205, pid), "SOLD_OUT")


def test_restock_validation_and_unknown_product(srv):
    assert_error(srv.restock(639, 5), 404, "restock of an unknown product")
    srv.get_json("/products/639", status=404)
    pid = 640
    srv.put_product(pid, 5, 1.0, expect=(201,))
    for body, what in [({"amount": 0}, "zero"), ({"amount": -3}, "negative"), ({"amount": "3"}, "string"),
                       ({}, "missing"), ({"amount": 1.5}, "float")]:
        assert_422(srv.call("POST", f"/admin/products/{pid}/restock", body, srv.auth()), ["amount"], msg=what)
    assert srv.product(pid)["stock"] == 5
    assert srv.restock(pid, 7).status == 200
    p = srv.product(pid)
    assert (p["stock"], p["remaining"]) == (12, 12), p


def test_sale_windows(srv):
    future, past = 650, 651
    srv.put_product(future, 10, 1.0, starts_at=utc_in(86400), expect=(201,))
    srv.put_product(past, 10, 1.0, starts_at=utc_in(-2 * 86400), ends_at=utc_in(-86400), expect=(201,))
    body = assert_sale(srv.purchase(20, future), "NOT_STARTED")
    assert body["data"] is False and body["code"] == 400
    assert_sale(srv.purchase(20, past), "ENDED")
    assert srv.remaining(future) == 10 and srv.remaining(past) == 10
    assert parse_rfc3339(srv.product(future)["starts_at"]) > parse_rfc3339(utc_in(3600))
    # Window opened by a replace: the answer changes immediately (nothing cached).
    srv.put_product(future, 10, 1.0, starts_at=utc_in(-60), ends_at=utc_in(3600), expect=(200,))
    assert_sale(srv.purchase(20, future), "ACCEPTED")
    srv.put_product(past, 10, 1.0, ends_at=None, expect=(200,))
    assert_sale(srv.purchase(20, past), "ACCEPTED", "ends_at null means open")


def test_sale_window_opens_on_time(srv):
    pid = 652
    start = utc_in(2)
    srv.put_product(pid, 10, 1.0, starts_at=start, expect=(201,))
    assert_sale(srv.purchase(21, pid), "NOT_STARTED")
    deadline = parse_rfc3339(start).timestamp() + 0.3
    time.sleep(max(0.0, deadline - time.time()))
    assert_sale(srv.purchase(21, pid), "ACCEPTED", f"the window opened at {start}")


def test_window_check_precedes_limit_and_stock(srv):
    # (Not sold out: the L1 sold-out check legitimately comes before the window.)
    pid = 653
    srv.put_product(pid, 3, 1.0, limit_per_user=1, expect=(201,))
    assert_sale(srv.purchase(22, pid), "ACCEPTED")
    srv.put_product(pid, 3, 1.0, limit_per_user=1, ends_at=utc_in(-10), expect=(200,))
    assert_sale(srv.purchase(22, pid), "ENDED", "window is checked before the limit")
    assert_sale(srv.purchase(23, pid, 3), "ENDED", "window is checked before limit and stock")
    assert srv.remaining(pid) == 2


# -- the waiting room (issue 10): a product field like payment_window_s ---------------------

ROOM = {"admit_per_s": 50, "pass_ttl_s": 120}


def put_room(srv, pid, room, expect=(200, 201), **extra):
    body = {"stock": 5, "price": 1.5, **extra}
    if room is not ...:
        body["waiting_room"] = room
    r = srv.call("PUT", f"/admin/products/{pid}", body, srv.auth())
    assert r.status in expect, f"PUT {body}: {r!r}"
    return r


def test_waiting_room_is_set_shown_and_cleared(srv):
    pid = 670
    r = put_room(srv, pid, ROOM, expect=(201,))
    assert r.json()["waiting_room"] == ROOM, f"the PUT answer shows it: {r!r}"
    assert srv.product(pid)["waiting_room"] == ROOM
    listed = {p["product_id"]: p for p in srv.get_json("/products?offset=0&limit=1000")}
    assert listed[pid]["waiting_room"] == ROOM, listed[pid]
    # The bounds are accepted.
    most = {"admit_per_s": 1_000_000, "pass_ttl_s": 86_400}
    put_room(srv, pid, most, expect=(200,))
    assert srv.product(pid)["waiting_room"] == most
    # A restock keeps it.
    r = srv.call("POST", f"/admin/products/{pid}/restock", {"amount": 1}, srv.auth())
    assert r.status == 200 and r.json()["waiting_room"] == most, r
    # null clears it; so does a PUT without it (PUT replaces the product).
    put_room(srv, pid, None, expect=(200,))
    p = srv.product(pid)
    assert "waiting_room" in p and p["waiting_room"] is None, p
    put_room(srv, pid, ROOM, expect=(200,))
    put_room(srv, pid, ..., expect=(200,))
    assert srv.product(pid)["waiting_room"] is None
    # Other products show null.
    srv.put_product(671, 1, 1.0, expect=(200, 201))
    assert srv.product(671)["waiting_room"] is None


@pytest.mark.parametrize("room,members,type_", [
    (5, [None], "model_type"),
    ("x", [None], "model_type"),
    ([50, 120], [None], "model_type"),
    ({}, ["admit_per_s", "pass_ttl_s"], "missing"),
    ({"admit_per_s": 5}, ["pass_ttl_s"], "missing"),
    ({"pass_ttl_s": 5}, ["admit_per_s"], "missing"),
    ({"admit_per_s": 0, "pass_ttl_s": 5}, ["admit_per_s"], "greater_than_equal"),
    ({"admit_per_s": 1_000_001, "pass_ttl_s": 5}, ["admit_per_s"], "less_than_equal"),
    ({"admit_per_s": 5, "pass_ttl_s": 0}, ["pass_ttl_s"], "greater_than_equal"),
    ({"admit_per_s": 5, "pass_ttl_s": 86_401}, ["pass_ttl_s"], "less_than_equal"),
    ({"admit_per_s": "5", "pass_ttl_s": 5}, ["admit_per_s"], "int_type"),
    ({"admit_per_s": 5.5, "pass_ttl_s": 5}, ["admit_per_s"], "int_from_float"),
    ({"admit_per_s": None, "pass_ttl_s": 5}, ["admit_per_s"], "int_type"),
    ({"admit_per_s": 5, "pass_ttl_s": 5, "colour": "red"}, ["colour"], "extra_forbidden"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_waiting_room_validation_is_422(srv, room, members, type_):
    pid = 672
    put_room(srv, pid, ROOM)
    before = srv.product(pid)
    r = srv.call("PUT", f"/admin/products/{pid}", {"stock": 9, "price": 2.0, "waiting_room": room},
                 srv.auth())
    detail = assert_422(r, ["waiting_room"], msg=str(room))
    want = [(["body", "waiting_room"] + ([m] if m else []), type_) for m in members]
    assert [(d["loc"], d["type"]) for d in detail] == want, r
    assert srv.product(pid) == before, f"a refused PUT {room} changed the product"
