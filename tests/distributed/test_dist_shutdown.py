"""SIGTERM of a distributed `flashsale serve` during a race (issue 7, 2f): the process exits 0,
and every order it answered ACCEPTED is in Kafka and reaches the database.

The hand-offs are made to outlive the shutdown grace period on purpose (deterministically,
not by luck of timing): the broker is frozen (SIGSTOP keeps its sockets open, so produce
requests stay unanswered) while purchases are in flight, the server gets SIGTERM with
`--shutdown-grace 0`, and the broker thaws only after the grace period closed the
connections. The delivery reports, and so the purchases' completions, then arrive while the
server shuts down: they must find the HTTP side still there (nothing posted into a destroyed
event loop) and the orders must all be flushed before the process exits."""

from __future__ import annotations

import json
import signal
import time

from dist_harness import Backends, DistServer
from harness import Storm, assert_sale, run_cli, tally, wait_until


def test_sigterm_while_handoffs_outlive_the_grace_period(tmp_path_factory):
    b = Backends()
    b.reset()
    s = DistServer(tmp_path_factory.mktemp("api"), b, threads=1,
                   extra_args=["--shutdown-grace", "0"]).start(timeout=60)
    frozen = False
    try:
        s.put_product(801, 5000, 2.0, limit_per_user=1, expect=(201,))
        first = assert_sale(s.purchase(1, 801), "ACCEPTED")["order_id"]  # producer connected
        storm = Storm(s.port, [(u, 801, 1) for u in range(2, 5000)], connections=16,
                      timeout=15).start()
        wait_until(lambda: storm.accepted_units >= 50, 30, "the race under way", interval=0.05)
        b.signal_server("kafka", signal.SIGSTOP)
        frozen = True
        time.sleep(0.5)  # every connection now waits on a hand-off the broker does not answer
        s.send_signal(signal.SIGTERM)
        time.sleep(2.5)  # grace 0: the sweep (every second) has closed the busy connections
        b.signal_server("kafka", signal.SIGCONT)
        frozen = False
        rc = s.wait(60)
        outcomes = storm.join(60)
    finally:
        if frozen:
            b.signal_server("kafka", signal.SIGCONT)
        s.kill9()
    assert rc == 0, f"SIGTERM exit code {rc}, expected 0\n{s.log_tail()}"
    t = tally(o for o in outcomes if o.http_status is not None)
    assert not t.bad, t.bad[:5]
    accepted = set(t.accepted) | {first}
    assert len(accepted) > 50
    # Every ACCEPTED order is in Kafka...
    in_kafka = {json.loads(m["payload"])["order_id"] for m in b.consume_all("product_orders")}
    assert accepted <= in_kafka, f"{len(accepted - in_kafka)} ACCEPTED orders not in Kafka"
    # ...and reaches the database.
    drain = run_cli(["consume", "--drain", *b.backend_args()], timeout=120)
    assert drain.returncode == 0, drain.stdout + drain.stderr
    stored = set(b.orders())
    assert accepted <= stored, f"{len(accepted - stored)} ACCEPTED orders not in the database"
