"""End-to-end harness for flashsale: runs the real binary and talks HTTP/1.1 to it.

Used by every tests/e2e/test_*.py file (through conftest.py's fixtures or directly).

Ground rules kept throughout:
  * every network call goes to 127.0.0.1, every socket has a timeout, every loop is bounded;
  * each Server lives in its own temporary directory (database, logs, captured output) and
    runs with a scrubbed environment, so a developer's REDIS_URL or .env cannot leak in;
  * helpers raise AssertionError with the exact request/response and the server's log tail,
    so a failure report says what the server did, not just that something differed.

Nothing here is thread-safe unless it says so: Storm is the only concurrent component, and
each of its worker threads owns its own connection.
"""

from __future__ import annotations

import http.client
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FLASHSALE_BIN", str(REPO_ROOT / "build" / "release" / "flashsale"))
HOST = "127.0.0.1"
ADMIN_TOKEN = "e2e-admin-token-0123456789"
STARTUP_TIMEOUT_S = 10.0

# SPEC §4: the seed's wording, per sale status.
SALE_MESSAGES = {
    "ACCEPTED": "抢购成功，订单正在处理中！",
    "SOLD_OUT": "商品已售罄",
    "INSUFFICIENT_STOCK": "商品库存不足",
    "LIMIT_EXCEEDED": "超出限购数量",
    "NOT_STARTED": "活动未开始",
    "ENDED": "活动已结束",
}
UNKNOWN_PRODUCT_MESSAGE = "商品不存在"

# SPEC §4 "Metrics (names are part of the contract)".
METRIC_NAMES = (
    "flashsale_requests_total",
    "flashsale_request_duration_seconds",
    "flashsale_l1_hits_total",
    "flashsale_stock_store_calls_total",
    "flashsale_stock_store_duration_seconds",
    "flashsale_handoff_duration_seconds",
    "flashsale_orders_accepted_total",
    "flashsale_orders_persisted_total",
    "flashsale_queue_depth",
    "flashsale_consumer_lag",
    "flashsale_connections",
)
HISTOGRAM_NAMES = (
    "flashsale_request_duration_seconds",
    "flashsale_stock_store_duration_seconds",
    "flashsale_handoff_duration_seconds",
)

# Environment variables the server reads (SPEC §3); removed so tests are hermetic.
_SCRUBBED_ENV = (
    "HOST", "PORT", "FLASHSALE_THREADS", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB",
    "REDIS_PASSWORD", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ADMIN_TOKEN",
    "FLASHSALE_MOCK_SEED", "FLASHSALE_JOURNAL_SYNC", "LOG_LEVEL", "LOG_DIR", "LOG_FILE",
    "LOG_MAX_BYTES", "LOG_MAX_FILES",
)

_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Binary / environment


def require_binary() -> str:
    """Skips (or, under CI=true, fails) the calling test when the binary is missing."""
    if os.path.isfile(BIN) and os.access(BIN, os.X_OK):
        return BIN
    msg = f"flashsale binary not found at {BIN} (build it or set FLASHSALE_BIN)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)
    raise AssertionError("unreachable")


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.setdefault("LANG", "C.UTF-8")
    return env


def _die_with_parent() -> None:
    """preexec_fn: the server gets SIGKILL if pytest dies (e.g. killed by a CTest timeout),
    so no orphan keeps a port or a database lock."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def run_cli(args: Sequence[str], timeout: float = 30.0, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Runs `flashsale <args>` to completion; returns the CompletedProcess (text mode)."""
    require_binary()
    work = cwd or tempfile.mkdtemp(prefix="flashsale-cli-")
    try:
        return subprocess.run([BIN, *args], cwd=work, env=server_env(), capture_output=True,
                              text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`flashsale {' '.join(args)}` did not finish within {timeout}s; "
                             f"stdout={e.stdout!r} stderr={e.stderr!r}") from e


def describe_cli(cp: subprocess.CompletedProcess) -> str:
    return (f"`{' '.join(map(str, cp.args))}` exited {cp.returncode}\n--- stdout ---\n"
            f"{cp.stdout[-4000:]}\n--- stderr ---\n{cp.stderr[-4000:]}")


# --------------------------------------------------------------------------------------------
# HTTP: responses, a raw keep-alive connection, request building


class ConnectionClosed(Exception):
    """The peer closed (FIN or RST) before a complete response arrived."""


class Resp:
    """One HTTP response: status, header list (original case), body bytes."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                 request: bytes | None = None):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.request = request

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError(f"response body is not UTF-8 JSON ({e}): {self!r}") from None

    def __repr__(self) -> str:
        req = ""
        if self.request is not None:
            req = f" for request {self.request[:700]!r}"
        return (f"<HTTP {self.status} {self.reason!r} headers={self.headers!r} "
                f"body={self.body[:1200]!r}{req}>")


def build_request(method: str, path: str, body: Any = None,
                  headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
                  version: str = "HTTP/1.1") -> bytes:
    """Serialises a request. dict/list bodies become JSON (with Content-Type), str → UTF-8.

    Content-Length is added for any non-None body unless the caller set it; Host is added
    unless the caller set it.
    """
    hdrs: list[tuple[str, str]] = list(headers.items() if isinstance(headers, dict) else (headers or []))
    names = {k.lower() for k, _ in hdrs}
    data: bytes | None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        if "content-type" not in names:
            hdrs.append(("Content-Type", "application/json"))
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    if "host" not in names:
        hdrs.insert(0, ("Host", HOST))
    if data is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(data))))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("latin-1") + (data or b"")


def purchase_body(user: Any, product: Any, amount: Any = 1) -> bytes:
    return f'{{"user_id":{user},"product_id":{product},"amount":{amount}}}'.encode()


class HttpConn:
    """A raw HTTP/1.1 client connection, kept alive across requests (pipelining allowed).

    Parses responses itself (Content-Length, chunked, or read-until-close), so tests see
    exactly what the server wrote. Not thread-safe: one connection per thread.
    """

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.last_request: bytes | None = None

    def __enter__(self) -> "HttpConn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.last_request = data
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: Any = None,
                headers: Iterable[tuple[str, str]] | dict[str, str] | None = None) -> Resp:
        self.send(build_request(method, path, body, headers))
        return self.read_response(head=(method == "HEAD"))

    def purchase(self, user: Any, product: Any, amount: Any = 1, key: str | None = None) -> Resp:
        hdrs = [("Content-Type", "application/json")]
        if key is not None:
            hdrs.append(("Idempotency-Key", key))
        return self.request("POST", "/purchase", purchase_body(user, product, amount), hdrs)

    # -- reading ---------------------------------------------------------------------------

    def _recv(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            raise ConnectionClosed(f"connection closed by server; unparsed bytes: {bytes(self.buf)[:300]!r}")
        self.buf += data

    def _read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        for _ in range(1_000_000):  # bounded: every iteration either returns or receives
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise AssertionError(f"no {sep!r} within {limit} bytes: {bytes(self.buf[:300])!r}")
            start = max(0, len(self.buf) - len(sep))
            self._recv()
        raise AssertionError("unreachable")

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._recv()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, head: bool = False) -> Resp:
        for _ in range(10):  # skip up to 10 interim (1xx) responses
            raw = self._read_until(b"\r\n\r\n", 1 << 20)
            lines = raw.split(b"\r\n")
            m = re.match(rb"^HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise AssertionError(f"bad status line {lines[0]!r} (response head {raw[:300]!r}, "
                                     f"request {(self.last_request or b'')[:300]!r})")
            status = int(m.group(1))
            reason = (m.group(2) or b"").decode("latin-1")
            headers: list[tuple[str, str]] = []
            for line in lines[1:]:
                k, sep, v = line.partition(b":")
                if not sep:
                    raise AssertionError(f"bad header line {line!r} in response {raw[:300]!r}")
                headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
            if 100 <= status < 200:
                continue
            resp = Resp(status, reason, headers, b"", self.last_request)
            if head or status in (204, 304):
                return resp
            te = (resp.header("Transfer-Encoding") or "").lower()
            cl = resp.header("Content-Length")
            if "chunked" in te:
                body = bytearray()
                for _ in range(100_000):
                    size_line = self._read_until(b"\r\n", 1024)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        # trailers until empty line
                        for _ in range(100):
                            if self._read_until(b"\r\n", 8192) == b"":
                                break
                        break
                    body += self._read_exact(size)
                    self._read_exact(2)
                resp.body = bytes(body)
            elif cl is not None:
                resp.body = self._read_exact(int(cl))
            else:
                body = bytearray()
                try:
                    for _ in range(1_000_000):
                        self._recv()
                        body += self.buf
                        self.buf.clear()
                except ConnectionClosed:
                    pass
                resp.body = bytes(body)
            return resp
        raise AssertionError("more than 10 interim 1xx responses")

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the server closes the connection, or None if still open after `timeout`.

        Bytes arriving meanwhile (e.g. a 408 response) are kept in self.buf.
        """
        start = time.monotonic()
        deadline = start + timeout
        try:
            for _ in range(100_000):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(min(left, 0.25))
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    return time.monotonic() - start
                if not data:
                    return time.monotonic() - start
                self.buf += data
            return None
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[Resp | None, bytes, float | None]:
    """Sends raw bytes on a fresh connection; returns (response or None, leftover, seconds-to-close).

    Tolerates the server closing early (a send error or RST after it answered).
    """
    with HttpConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            resp = c.read_response()
        except ConnectionClosed:
            return None, bytes(c.buf), 0.0
        closed = c.wait_closed(timeout)
        return resp, bytes(c.buf), closed


# --------------------------------------------------------------------------------------------
# Response shape checks (SPEC §4)


def assert_sale(resp: Resp, status: str, msg: str = "") -> dict:
    """Asserts a sale outcome: HTTP 200, seed envelope, wording, code, data, order_id."""
    assert resp.status == 200, f"expected HTTP 200 sale outcome {status}, got {resp!r} {msg}"
    body = resp.json()
    assert isinstance(body, dict), f"sale outcome is not an object: {resp!r}"
    assert body.get("status") == status, f"expected status {status}, got {body.get('status')!r}: {resp!r} {msg}"
    assert body.get("message") == SALE_MESSAGES[status], f"wrong message for {status}: {resp!r}"
    assert body.get("code") == (200 if status == "ACCEPTED" else 400), f"wrong code for {status}: {resp!r}"
    assert body.get("data") is (status == "ACCEPTED"), f"wrong data for {status}: {resp!r}"
    if status == "ACCEPTED":
        oid = body.get("order_id")
        assert isinstance(oid, str) and oid, f"ACCEPTED without a string order_id: {resp!r}"
    ctype = resp.header("Content-Type") or ""
    assert ctype.startswith("application/json"), f"sale outcome Content-Type {ctype!r}: {resp!r}"
    return body


def assert_error(resp: Resp, http_status: int, msg: str = "") -> dict:
    """Asserts the non-422 error envelope {code, message, data: null, status: UPPER_SNAKE}."""
    assert resp.status == http_status, f"expected HTTP {http_status}, got {resp!r} {msg}"
    body = resp.json()
    assert isinstance(body, dict), f"error body is not an object: {resp!r}"
    assert body.get("code") == http_status, f"error body code != {http_status}: {resp!r}"
    assert isinstance(body.get("message"), str) and body["message"], f"error body without message: {resp!r}"
    assert "data" in body and body["data"] is None, f"error body data must be null: {resp!r}"
    assert isinstance(body.get("status"), str) and _UPPER_SNAKE.match(body["status"]), (
        f"error body status must be UPPER_SNAKE: {resp!r}")
    return body


def assert_422(resp: Resp, fields: Iterable[str] | None, where: str = "body", msg: str = "") -> list[dict]:
    """Asserts FastAPI's 422 shape. With `fields`, the set of fields named in loc
    [where, field] must be exactly `fields`; without, every loc must start with `where`."""
    assert resp.status == 422, f"expected 422, got {resp!r} {msg}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), list) and body["detail"], (
        f"422 must be {{'detail': [..non-empty..]}}: {resp!r}")
    named: set[str] = set()
    for d in body["detail"]:
        assert isinstance(d, dict), f"422 detail entry not an object: {resp!r}"
        loc = d.get("loc")
        assert isinstance(loc, list) and loc and loc[0] == where, (
            f"422 detail loc must be a list starting with {where!r}: {d!r} in {resp!r}")
        assert isinstance(d.get("msg"), str) and d["msg"], f"422 detail without msg: {d!r} in {resp!r}"
        assert isinstance(d.get("type"), str) and d["type"], f"422 detail without type: {d!r} in {resp!r}"
        if len(loc) >= 2 and isinstance(loc[1], str):
            named.add(loc[1])
    if fields is not None:
        want = set(fields)
        assert named == want, (f"422 should name exactly {sorted(want)} as loc [{where!r}, field]; "
                               f"named {sorted(named)}: {resp!r} {msg}")
    return body["detail"]


# --------------------------------------------------------------------------------------------
# Time


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_in(seconds: float) -> str:
    return rfc3339(datetime.now(timezone.utc) + timedelta(seconds=seconds))


def parse_rfc3339(s: Any) -> datetime:
    assert isinstance(s, str) and s.endswith("Z"), f"time must be an RFC 3339 UTC string ending in Z: {s!r}"
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise AssertionError(f"not an RFC 3339 time: {s!r}") from None


# --------------------------------------------------------------------------------------------
# Waiting


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Polls pred() until truthy (returns its value) or raises AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 2):
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


# --------------------------------------------------------------------------------------------
# Database (read-only)


def db_query(db_path: str | Path, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    """Runs a read-only query against the server's SQLite file (safe beside a running server).

    Falls back to querying a private copy (db + WAL) when a read-only open is impossible,
    e.g. right after kill -9 left a WAL that needs recovery.
    """
    db_path = Path(db_path)
    assert db_path.exists(), f"database file {db_path} does not exist"
    uri = "file:" + urllib.parse.quote(str(db_path)) + "?mode=ro"
    last: Exception | None = None
    for _ in range(30):
        try:
            con = sqlite3.connect(uri, uri=True, timeout=5)
            try:
                con.row_factory = sqlite3.Row
                return [dict(r) for r in con.execute(sql, params)]
            finally:
                con.close()
        except sqlite3.OperationalError as e:
            last = e
            if "no such table" in str(e) or "no such column" in str(e):
                raise AssertionError(f"database schema mismatch ({e}) for query {sql!r} on {db_path}") from e
            if "locked" not in str(e) and "busy" not in str(e):
                break  # e.g. a WAL needing recovery after kill -9: read a private copy instead
            time.sleep(0.1)
    with tempfile.TemporaryDirectory(prefix="flashsale-dbcopy-") as d:
        copy = Path(d) / db_path.name
        shutil.copyfile(db_path, copy)
        for suffix in ("-wal",):
            side = Path(str(db_path) + suffix)
            if side.exists():
                shutil.copyfile(side, Path(str(copy) + suffix))
        try:
            con = sqlite3.connect(str(copy), timeout=5)
            con.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in con.execute(sql, params)]
            finally:
                con.close()
        except sqlite3.Error as e:
            raise AssertionError(f"cannot read {db_path}: {e} (read-only attempt: {last})") from e


def db_orders(db_path: str | Path) -> list[dict]:
    """Every order of an embedded database: orders, plus the rows of its journal file
    (`<path>.journal`: accepted, not settled yet) as PENDING, each order once (orders' row
    wins, as in the server's view all_orders). The journal is read first, so an order
    settled while this reads is not missed."""
    journal = Path(str(db_path) + ".journal")
    pending = []
    if journal.exists():
        pending = db_query(journal, "SELECT order_id, user_id, product_id, quantity, price, "
                           "'PENDING' AS status, created_at, idempotency_key, pay_by FROM order_journal")
    settled = db_query(db_path, "SELECT * FROM orders")
    seen = {r["order_id"] for r in settled}
    return settled + [r for r in pending if r["order_id"] not in seen]


def db_columns(db_path: str | Path, table: str) -> list[str]:
    return [r["name"] for r in db_query(db_path, f"PRAGMA table_info({table})")]


def price_matches(stored: Any, price: float) -> bool:
    """Prices may be stored as a number or as integer cents."""
    if isinstance(stored, str):
        try:
            stored = float(stored)
        except ValueError:
            return False
    if not isinstance(stored, (int, float)):
        return False
    return abs(stored - price) < 1e-9 or (isinstance(stored, int) and stored == round(price * 100))


def wait_orders_confirmed(db_path: str | Path, order_ids: Iterable[str], timeout: float = 10.0) -> dict[str, dict]:
    """Waits until every order id is in the db with status CONFIRMED; returns rows by id."""
    want = set(order_ids)
    state: dict[str, Any] = {}

    def check() -> bool:
        rows = {r["order_id"]: r for r in db_orders(db_path)}
        missing = want - rows.keys()
        not_confirmed = {o: rows[o]["status"] for o in want & rows.keys() if rows[o]["status"] != "CONFIRMED"}
        state.update(rows=rows, missing=missing, not_confirmed=not_confirmed)
        return not missing and not not_confirmed

    try:
        wait_until(check, timeout, "orders CONFIRMED in the database", interval=0.2)
    except AssertionError:
        missing = sorted(state.get("missing", set()))
        bad = state.get("not_confirmed", {})
        raise AssertionError(f"after {timeout}s: {len(missing)} accepted orders missing from the db "
                             f"(e.g. {missing[:5]}), {len(bad)} not CONFIRMED "
                             f"(e.g. {list(bad.items())[:5]})") from None
    return state["rows"]


# --------------------------------------------------------------------------------------------
# Metrics


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class Metrics:
    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}

    def total(self, name: str, **labels: str) -> float:
        """Sum of every sample of `name` whose labels include `labels` (case-insensitive values)."""
        out = 0.0
        for n, lab, v in self.samples:
            if n != name:
                continue
            if all(lab.get(k, "").lower() == str(val).lower() for k, val in labels.items()):
                out += v
        return out

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(lab, v) for n, lab, v in self.samples if n == name]


def parse_metrics(text: str) -> Metrics:
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable Prometheus line {line!r}"
        labels = {k: v for k, v in _LABEL.findall(m.group(2) or "")}
        val = m.group(3)
        value = float("nan") if val == "NaN" else float(val.replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((m.group(1), labels, value))
    return Metrics(types, samples)


# --------------------------------------------------------------------------------------------
# Server


ALL_SERVERS: list["Server"] = []


# The payment service's webhook secret the lifecycle tests give their servers.
PAYMENT_SECRET = "e2e-payment-secret"


def payment_signature(secret: str, body: bytes, t: int | None = None) -> str:
    """Flashsale-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Server:
    """One `flashsale serve` process on a free port, with its own db, log dir and output file.

    start()/stop()/kill9()/restart() may be called repeatedly; the database persists across
    them (that is the point of the crash tests). Each start picks a fresh free port.
    """

    def __init__(self, workdir: str | Path, *, admin_token: str | None = ADMIN_TOKEN, threads: int = 2,
                 mock_products: int | None = 0, extra_args: Sequence[str] = (),
                 db_path: str | Path | None = None, extra_env: dict[str, str] | None = None):
        require_binary()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = Path(db_path) if db_path else self.workdir / "flashsale.db"
        self.log_dir = self.workdir / "logs"
        self.admin_token = admin_token
        self.threads = threads
        self.mock_products = mock_products
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})  # e.g. FLASHSALE_FAULT; may be changed between starts
        self.port: int = 0
        self.proc: subprocess.Popen | None = None
        self.outputs: list[Path] = []
        ALL_SERVERS.append(self)

    # -- lifecycle -------------------------------------------------------------------------

    def args(self) -> list[str]:
        a = [BIN, "serve", "--host", HOST, "--port", str(self.port),
             "--database", f"sqlite:{self.db_path}", "--threads", str(self.threads),
             "--mock-seed", "7", "--log-dir", str(self.log_dir), "--log-level", "info"]
        if self.admin_token is not None:
            a += ["--admin-token", self.admin_token]
        if self.mock_products is not None:
            a += ["--mock-products", str(self.mock_products)]
        return a + self.extra_args

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "Server":
        assert not self.alive(), "server already running"
        for attempt in range(3):
            self.port = free_port()
            out_path = self.workdir / f"server-{len(self.outputs)}.out"
            self.outputs.append(out_path)
            with open(out_path, "wb") as out:
                self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.workdir,
                                             env={**server_env(), **self.extra_env},
                                             start_new_session=True, preexec_fn=_die_with_parent)
            t0 = time.monotonic()
            for _ in range(int(timeout / 0.05) + 1):
                if self.proc.poll() is not None:
                    break
                if self._healthz_ok():
                    self.started_in = time.monotonic() - t0
                    return self
                if time.monotonic() - t0 > timeout:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill9()
                raise AssertionError(f"server not healthy within {timeout}s\n{self.log_tail()}")
            tail = self.log_tail()
            if "in use" in tail.lower() and attempt < 2:
                continue  # lost the free-port race; try another port
            raise AssertionError(f"server exited with {self.proc.returncode} during start-up\n{tail}")
        raise AssertionError("could not start server")

    def _healthz_ok(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                s.settimeout(1.0)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                data = s.recv(64)
                return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"server did not exit within {timeout}s; killed\n{self.log_tail()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Graceful stop; returns the exit code (not asserted here)."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        self.send_signal(sig)
        return self.wait(timeout)

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> "Server":
        rc = self.stop()
        assert rc == 0, f"SIGTERM exit code {rc}, expected 0\n{self.log_tail()}"
        return self.start()

    def close(self) -> int | None:
        """Stops the server if running; returns its exit code for a graceful stop, else None."""
        if self.alive():
            return self.stop()
        return None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill9()

    # -- diagnostics -----------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for p in self.outputs[-2:]:
            try:
                text = p.read_text(errors="replace").splitlines()
            except OSError:
                continue
            parts.append(f"--- {p} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        if self.log_dir.is_dir():
            for p in sorted(self.log_dir.iterdir())[:3]:
                if p.is_file():
                    text = p.read_text(errors="replace").splitlines()
                    parts.append(f"--- {p} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        rc = None if self.proc is None else self.proc.poll()
        return f"[server pid={getattr(self.proc, 'pid', None)} port={self.port} exit={rc}]\n" + "\n".join(parts)

    # -- HTTP ------------------------------------------------------------------------------

    def conn(self, timeout: float = 10.0) -> HttpConn:
        try:
            return HttpConn(self.port, timeout)
        except OSError as e:
            raise AssertionError(f"cannot connect to server: {e!r}\n{self.log_tail()}") from e

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0) -> Resp:
        """One request through the stdlib http.client (a second, independent HTTP parser)."""
        hdrs = dict(headers or {})
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            payload = r.read()
            req = f"{method} {path} {hdrs} ".encode() + (data or b"")
            return Resp(r.status, r.reason, r.getheaders(), payload, req)
        except (OSError, http.client.HTTPException) as e:
            raise AssertionError(f"{method} {path} failed: {e!r}\n{self.log_tail()}") from e
        finally:
            c.close()

    def get_json(self, path: str, status: int = 200) -> Any:
        r = self.call("GET", path)
        assert r.status == status, f"GET {path}: expected {status}, got {r!r}"
        return r.json()

    def auth(self, token: Any = ...) -> dict[str, str]:
        token = self.admin_token if token is ... else token
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def put_product(self, pid: int, stock: int, price: float = 9.99, *, limit_per_user: int | None = None,
                    starts_at: str | None = None, ends_at: str | None = None, token: Any = ...,
                    expect: Iterable[int] = (200, 201), payment_window_s: int | None = None) -> Resp:
        body: dict[str, Any] = {"stock": stock, "price": price}
        if payment_window_s is not None:
            body["payment_window_s"] = payment_window_s
        if limit_per_user is not None:
            body["limit_per_user"] = limit_per_user
        if starts_at is not None:
            body["starts_at"] = starts_at
        if ends_at is not None:
            body["ends_at"] = ends_at
        r = self.call("PUT", f"/admin/products/{pid}", body, self.auth(token))
        assert r.status in tuple(expect), f"PUT /admin/products/{pid} {body}: expected {tuple(expect)}, got {r!r}"
        return r

    def restock(self, pid: int, amount: Any, token: Any = ...) -> Resp:
        return self.call("POST", f"/admin/products/{pid}/restock", {"amount": amount}, self.auth(token))

    def product(self, pid: int) -> dict:
        p = self.get_json(f"/products/{pid}")
        for k in ("product_id", "price", "stock", "remaining", "sold_out", "starts_at", "ends_at", "limit_per_user"):
            assert k in p, f"GET /products/{pid} lacks {k!r}: {p!r}"
        return p

    def remaining(self, pid: int) -> int:
        return self.product(pid)["remaining"]

    def purchase(self, user: Any, product: Any, amount: Any = 1, key: str | None = None) -> Resp:
        with self.conn() as c:
            return c.purchase(user, product, amount, key)

    def metrics(self) -> Metrics:
        r = self.call("GET", "/metrics")
        assert r.status == 200, f"GET /metrics: {r!r}"
        return parse_metrics(r.body.decode("utf-8"))

    def pay(self, order_id: str, payment_ref: str, amount: Any, *, secret: str | None = None,
            t: int | None = None, body: bytes | None = None, signature: str | None = None) -> Resp:
        """POST /orders/{id}/pay signed like the shop's payment service (payment_signature)."""
        if body is None:
            body = json.dumps({"payment_ref": payment_ref, "amount": amount}).encode()
        if signature is None:
            signature = payment_signature(secret if secret is not None else PAYMENT_SECRET, body, t)
        headers = {"Content-Type": "application/json"}
        if signature:
            headers["Flashsale-Signature"] = signature
        return self.call("POST", f"/orders/{order_id}/pay", body, headers)

    def audit(self, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return run_cli(["audit", "--database", f"sqlite:{self.db_path}"], timeout=timeout, cwd=self.workdir)


# --------------------------------------------------------------------------------------------
# Storm: many keep-alive connections firing planned purchases at once


@dataclass
class Outcome:
    index: int
    user: int
    product: int
    amount: int
    http_status: int | None  # None: no answer (connection failed / server died)
    body: Any
    error: str | None

    @property
    def status(self) -> str | None:
        return self.body.get("status") if isinstance(self.body, dict) else None

    @property
    def order_id(self) -> str | None:
        return self.body.get("order_id") if isinstance(self.body, dict) else None


class Storm:
    """Fires `plan` [(user, product, amount), ...] in order from `connections` threads, each on
    its own keep-alive connection, all released together by a barrier.

    A worker stops at its first transport error (recorded as an Outcome with http_status None),
    so a killed server ends the storm. Thread-safe recording: list.append under the GIL.
    """

    def __init__(self, port: int, plan: Sequence[tuple[int, int, int]], connections: int = 128,
                 timeout: float = 10.0):
        self.port = port
        self.plan = plan
        self.connections = connections
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self.connect_errors: list[str] = []
        self._next = 0
        self.accepted_units = 0  # live count of units answered ACCEPTED (under _lock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._barrier = threading.Barrier(connections)
        self._threads: list[threading.Thread] = []

    def start(self) -> "Storm":
        for w in range(self.connections):
            t = threading.Thread(target=self._worker, name=f"storm-{w}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 120.0) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        self._stop.set()
        assert not stuck, f"storm workers still running after {timeout}s: {stuck[:5]}"
        return self.outcomes

    def run(self, timeout: float = 120.0) -> list[Outcome]:
        return self.start().join(timeout)

    @property
    def sent(self) -> int:
        return min(self._next, len(self.plan))

    def _worker(self) -> None:
        try:
            conn = HttpConn(self.port, timeout=self.timeout)
        except OSError as e:
            self.connect_errors.append(repr(e))
            self._barrier.abort()
            return
        try:
            try:
                self._barrier.wait(timeout=15)
            except threading.BrokenBarrierError:
                pass
            for _ in range(len(self.plan) + 1):
                if self._stop.is_set():
                    return
                with self._lock:
                    i = self._next
                    self._next += 1
                if i >= len(self.plan):
                    return
                user, product, amount = self.plan[i]
                try:
                    resp = conn.purchase(user, product, amount)
                except (OSError, ConnectionClosed) as e:
                    self.outcomes.append(Outcome(i, user, product, amount, None, None, repr(e)))
                    return
                try:
                    body = json.loads(resp.body)
                except ValueError:
                    body = {"_raw": resp.body[:200].decode("latin-1")}
                self.outcomes.append(Outcome(i, user, product, amount, resp.status, body, None))
                if resp.status == 200 and isinstance(body, dict) and body.get("status") == "ACCEPTED":
                    with self._lock:
                        self.accepted_units += amount
                if (resp.header("Connection") or "").lower() == "close":
                    return
        finally:
            conn.close()


def systematic_plan(products: dict[int, tuple[int, int]], users: Sequence[int], rng: random.Random,
                    extra_big: bool = True) -> list[tuple[int, int, int]]:
    """Demand that must sell out every product exactly (when users*limit >= stock):
    each user sends limit+1 one-unit requests per product, plus one 2-3 unit request.
    products: {product_id: (stock, limit_per_user)}. Shuffled with `rng`."""
    plan = []
    for pid, (_stock, limit) in products.items():
        for u in users:
            plan += [(u, pid, 1)] * (limit + 1)
            if extra_big:
                plan.append((u, pid, rng.choice((2, 3))))
    rng.shuffle(plan)
    return plan


def random_plan(products: Sequence[int], users: Sequence[int], n: int, rng: random.Random) -> list[tuple[int, int, int]]:
    plan = []
    for _ in range(n):
        amount = 1 if rng.random() < 0.85 else rng.choice((2, 3))
        plan.append((rng.choice(users), rng.choice(products), amount))
    return plan


@dataclass
class Tally:
    """What the clients were told, aggregated."""
    accepted: dict[str, Outcome]                 # order_id -> outcome
    units: dict[int, int]                        # product -> accepted units
    user_units: dict[tuple[int, int], int]       # (user, product) -> accepted units
    by_status: dict[str, int]
    unanswered: list[Outcome]
    bad: list[Outcome]                           # non-200 answers or unknown statuses
    duplicate_ids: list[str]


def tally(outcomes: Iterable[Outcome]) -> Tally:
    t = Tally({}, {}, {}, {}, [], [], [])
    for o in outcomes:
        if o.http_status is None:
            t.unanswered.append(o)
            continue
        st = o.status
        if o.http_status != 200 or st not in SALE_MESSAGES:
            # 404 for unknown products is still a well-formed answer.
            if not (o.http_status == 404 and st == "UNKNOWN_PRODUCT"):
                t.bad.append(o)
        t.by_status[st or f"HTTP{o.http_status}"] = t.by_status.get(st or f"HTTP{o.http_status}", 0) + 1
        if st == "ACCEPTED" and o.http_status == 200:
            oid = o.order_id
            if oid in t.accepted:
                t.duplicate_ids.append(oid)
            t.accepted[oid] = o
            t.units[o.product] = t.units.get(o.product, 0) + o.amount
            key = (o.user, o.product)
            t.user_units[key] = t.user_units.get(key, 0) + o.amount
    return t


def pipelined_keyed_purchases(port: int, requests: list[tuple[int, int, str]],
                              batch: int = 256) -> list[dict]:
    """POST /purchase of 1 unit for each (user, product, Idempotency-Key), `batch`
    requests per write on one connection; every answer must be a 200. Bodies in order."""
    answers = []
    with HttpConn(port, timeout=30) as c:
        for i in range(0, len(requests), batch):
            chunk = requests[i:i + batch]
            c.send(b"".join(
                build_request("POST", "/purchase", purchase_body(u, p, 1),
                              [("Content-Type", "application/json"), ("Idempotency-Key", k)])
                for u, p, k in chunk))
            for _ in chunk:
                r = c.read_response()
                assert r.status == 200, r
                answers.append(r.json())
    return answers
