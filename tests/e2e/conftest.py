"""Fixtures for the flashsale end-to-end suite.

The `Server` helper class (start/stop/kill9/restart on a free port with a temp-dir database,
log capture, raw keep-alive and http.client helpers) lives in harness.py and is re-exported
here; test files import what they need from harness directly.

Fixtures:
  make_server    function-scoped factory: make_server(**Server kwargs) -> started Server
  server_factory module-scoped factory, for one server shared by a test module
Both stop their servers with SIGTERM at teardown and fail if the exit code is not 0.
On a failing test the log tails of the servers involved are attached to the report.
"""

from __future__ import annotations

import itertools

import pytest

import harness
from harness import Server  # noqa: F401  (re-exported: "conftest provides Server")

_counter = itertools.count()


def _factory(tmp_dir_factory):
    servers: list[Server] = []

    def make(start: bool = True, **kwargs) -> Server:
        srv = Server(tmp_dir_factory(f"srv{next(_counter)}"), **kwargs)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    return make, servers


def _teardown(servers: list[Server]) -> None:
    problems = []
    for srv in servers:
        if srv.alive():
            rc = srv.stop()
            if rc != 0:
                problems.append(f"server exited {rc} on SIGTERM (expected 0)\n{srv.log_tail()}")
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def make_server(tmp_path_factory):
    harness.require_binary()
    make, servers = _factory(lambda name: tmp_path_factory.mktemp(name))
    yield make
    _teardown(servers)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory):
    harness.require_binary()
    make, servers = _factory(lambda name: tmp_path_factory.mktemp(name))
    yield make
    _teardown(servers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    before = getattr(item, "_flashsale_servers_before", None)
    if call.when == "setup":
        item._flashsale_servers_before = len(harness.ALL_SERVERS)
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        start = before if before is not None else len(harness.ALL_SERVERS)
        involved = [s for i, s in enumerate(harness.ALL_SERVERS) if i >= start or s.alive()]
        for srv in involved[-4:]:
            rep.sections.append((f"flashsale server {srv.workdir}", srv.log_tail(60)))
