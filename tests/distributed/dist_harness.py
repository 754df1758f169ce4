"""Harness of the distributed-mode tests: the real `flashsale serve` / `flashsale consume`
binaries against the real Redis, Kafka and PostgreSQL that the CTest fixture `servers`
started (scripts/servers/all.sh; URLs in FLASHSALE_TEST_*). No mocks.

Isolation: the tests run one at a time (RESOURCE_LOCK); each starts from an empty Redis
(FLUSHALL), an empty database (public schema recreated) and topics of its own (a fresh
--topic-prefix, created by flashsale at start-up). Tests that stop a server start it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from harness import (BIN, HOST, REPO_ROOT, Server, _die_with_parent, require_binary,  # noqa: E402
                     run_cli, server_env, wait_until)

SERVERS = REPO_ROOT / "scripts" / "servers"


def _env(name: str) -> str:
    v = os.environ.get(name, "")
    if not v:
        msg = f"{name} is not set: run through ctest (fixture 'servers') or export it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return v


class Backends:
    """The three servers: URLs, control, and per-test reset."""

    def __init__(self) -> None:
        self.redis_url = _env("FLASHSALE_TEST_REDIS_URL")
        self.kafka = _env("FLASHSALE_TEST_KAFKA")
        self.database_url = _env("FLASHSALE_TEST_DATABASE_URL")
        self.topic_prefix = f"t{os.getpid()}_{uuid.uuid4().hex[:6]}_"

    # -- control (same FLASHSALE_VAR and ports as the fixture: inherited environment) --------

    def control(self, server: str, action: str, timeout: float = 120) -> None:
        cp = subprocess.run([str(SERVERS / f"{server}.sh"), action], capture_output=True, text=True,
                            timeout=timeout)
        assert cp.returncode == 0, f"{server}.sh {action} failed: {cp.stdout}\n{cp.stderr}"

    def signal_server(self, server: str, sig: int) -> None:
        """Sends `sig` to a server of the set (e.g. SIGSTOP/SIGCONT to freeze one without
        closing its sockets), found by the pid file scripts/servers writes."""
        var = Path(os.environ.get("FLASHSALE_VAR", str(SERVERS.parent.parent / "var")))
        pid_file = {"kafka": var / "kafka" / "kafka.pid", "redis": var / "redis" / "redis.pid"}[server]
        os.kill(int(pid_file.read_text().strip()), sig)

    def redis_cli(self, *args: str) -> str:
        cp = subprocess.run([str(SERVERS / "redis.sh"), "cli", *args], capture_output=True, text=True,
                            timeout=30)
        assert cp.returncode == 0, f"redis-cli {args}: {cp.stderr}"
        return cp.stdout.strip()

    def sql(self, query: str) -> list[list[str]]:
        cp = subprocess.run([str(SERVERS / "postgres.sh"), "psql", "-At", "-F", "\t", "-v",
                             "ON_ERROR_STOP=1", "-c", query], capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, f"psql {query!r}: {cp.stderr}"
        return [line.split("\t") for line in cp.stdout.splitlines() if line]

    def reset(self) -> None:
        self.redis_cli("FLUSHALL")
        self.sql("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")

    # -- database figures --------------------------------------------------------------------

    def orders(self) -> dict[str, dict[str, Any]]:
        rows = self.sql("SELECT order_id, user_id, product_id, quantity, status FROM orders")
        return {r[0]: {"user": int(r[1]), "product": int(r[2]), "quantity": int(r[3]), "status": r[4]}
                for r in rows}

    def order_count(self) -> int:
        try:
            return int(self.sql("SELECT count(*) FROM orders")[0][0])
        except AssertionError:
            return 0  # table not created yet

    # -- kafka -------------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def produce_raw(self, topic: str, key: str, value: bytes) -> None:
        cp = subprocess.run(["kcat", "-P", "-b", self.kafka, "-t", self.topic(topic), "-k", key,
                             "-X", "acks=all"], input=value, capture_output=True, timeout=30)
        assert cp.returncode == 0, f"kcat produce: {cp.stderr!r}"

    def consume_all(self, topic: str, timeout: float = 20) -> list[dict[str, Any]]:
        """Every message of `topic` as kcat's JSON envelope (payload, headers, partition, offset)."""
        cp = subprocess.run(["kcat", "-C", "-b", self.kafka, "-t", self.topic(topic), "-o", "beginning",
                             "-e", "-J", "-q"], capture_output=True, text=True, timeout=timeout)
        assert cp.returncode == 0, f"kcat consume: {cp.stderr}"
        return [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]

    # -- processes ---------------------------------------------------------------------------

    def backend_args(self) -> list[str]:
        return ["--redis", self.redis_url, "--kafka", self.kafka, "--database", self.database_url,
                "--topic-prefix", self.topic_prefix]


class DistServer(Server):
    """`flashsale serve` in distributed mode (same lifecycle helpers as the embedded one)."""

    def __init__(self, workdir: str | Path, backends: Backends, **kw: Any) -> None:
        kw.setdefault("mock_products", 0)
        super().__init__(workdir, **kw)
        self.backends = backends

    def args(self) -> list[str]:
        a = [BIN, "serve", "--host", HOST, "--port", str(self.port), "--threads", str(self.threads),
             "--mock-seed", "7", "--log-dir", str(self.log_dir), "--log-level", "info",
             "--kafka-timeout-ms", "3000", *self.backends.backend_args()]
        if self.admin_token is not None:
            a += ["--admin-token", self.admin_token]
        if self.mock_products is not None:
            a += ["--mock-products", str(self.mock_products)]
        return a + self.extra_args

    def audit(self, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return run_cli(["audit", *self.backends.backend_args()], timeout=timeout, cwd=self.workdir)


class Consumer:
    """`flashsale consume` as a child process."""

    def __init__(self, workdir: str | Path, backends: Backends, extra: Sequence[str] = ()) -> None:
        require_binary()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backends = backends
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.outputs: list[Path] = []

    def start(self) -> "Consumer":
        assert not self.alive()
        out = self.workdir / f"consumer-{len(self.outputs)}.out"
        self.outputs.append(out)
        args = [BIN, "consume", "--log-dir", str(self.workdir / "consumer-logs"), "--log-level", "info",
                "--batch-wait-ms", "10", *self.backends.backend_args(), *self.extra]
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, env=server_env(), start_new_session=True,
                                         preexec_fn=_die_with_parent)
        time.sleep(0.3)
        assert self.alive(), f"consumer exited at start\n{self.log_tail()}"
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"consumer did not stop within {timeout}s\n{self.log_tail()}") from None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for p in self.outputs[-2:]:
            try:
                parts.append(f"--- {p} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
            except OSError:
                pass
        return "\n".join(parts)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.outputs if p.exists())


def wait_orders(backends: Backends, expected: int, timeout: float = 60, consumer: Consumer | None = None) -> None:
    def done() -> bool:
        return backends.order_count() >= expected

    try:
        wait_until(done, timeout, f"{expected} orders in the database", interval=0.3)
    except AssertionError as e:
        tail = consumer.log_tail() if consumer else ""
        raise AssertionError(f"{e}; database has {backends.order_count()}\n{tail}") from None


@contextmanager
def running_stack(tmp_path_factory: Any, *, servers: int = 1, consumer: bool = True,
                  database_url: str | None = None) -> Iterator[tuple[Backends, list[DistServer],
                                                                     Consumer | None]]:
    """Fresh backends (reset), `servers` distributed servers and optionally a consumer; all
    stopped (servers first) on exit. `database_url` replaces the PostgreSQL one (sqlite:...)."""
    b = Backends()
    b.reset()
    if database_url is not None:
        b.database_url = database_url
    started = [DistServer(tmp_path_factory.mktemp(f"api{i}"), b).start(timeout=60)
               for i in range(servers)]
    c = Consumer(tmp_path_factory.mktemp("consumer"), b).start() if consumer else None
    try:
        yield b, started, c
    finally:
        for srv in started:
            srv.stop()
        if c is not None:
            c.stop()
