"""Logs during a sale (issue 7, 2i): at the default level an accepted order writes no line (the
journal / database is the record of orders), and the log file rotates by size, keeping at most
the configured number of files."""

from __future__ import annotations

from pathlib import Path

from harness import HttpConn, Server, assert_sale

ORDERS = 300


class LevelServer(Server):
    """A server at log level `level` (the harness passes --log-level info); None: no
    --log-level at all, the default level."""

    def __init__(self, workdir: Path, level: str | None, **kw) -> None:
        super().__init__(workdir, **kw)
        self.level = level

    def args(self) -> list[str]:
        a = super().args()
        i = a.index("--log-level")
        return a[:i] + a[i + 2:] + ([] if self.level is None else ["--log-level", self.level])


def buy_distinct(srv: Server, product: int, n: int) -> list[str]:
    """`n` ACCEPTED purchases of `product` by distinct users on one keep-alive connection."""
    ids = []
    with HttpConn(srv.port) as c:
        for user in range(1, n + 1):
            ids.append(assert_sale(c.purchase(user, product), "ACCEPTED")["order_id"])
    return ids


def log_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("app*.log"))


def test_default_level_writes_no_line_per_accepted_order(tmp_path):
    srv = LevelServer(tmp_path / "srv", None).start()
    try:
        # Stock to spare: the one line per product when it sells out would name an order.
        srv.put_product(1, 2 * ORDERS, 1.0, limit_per_user=1, expect=(201,))
        ids = buy_distinct(srv, 1, ORDERS)
    finally:
        assert srv.stop() == 0, srv.log_tail()
    logged = "".join(p.read_text(errors="replace") for p in log_files(srv.log_dir))
    output = "".join(p.read_text(errors="replace") for p in srv.outputs)
    for text, where in ((logged, "logs/app.log"), (output, "stderr")):
        lines = text.splitlines()
        # Start-up, the admin PUT and the clean stop: a handful of lines whatever ORDERS is.
        assert len(lines) < 30, f"{where} grew with the orders: {len(lines)} lines, e.g. {lines[10:13]}"
        assert not [i for i in ids if i in text], f"{where} names accepted orders at the default level"


def test_log_file_rotates_by_size_keeping_at_most_max_files(tmp_path):
    max_bytes, max_files = 4096, 3
    # debug: every order writes lines, so the tiny size is passed many times over.
    srv = LevelServer(tmp_path / "srv", "debug", extra_args=["--log-max-bytes", str(max_bytes),
                                                             "--log-max-files", str(max_files)]).start()
    try:
        srv.put_product(1, ORDERS, 1.0, limit_per_user=1, expect=(201,))
        buy_distinct(srv, 1, ORDERS)
    finally:
        assert srv.stop() == 0, srv.log_tail()
    files = log_files(srv.log_dir)
    names = [p.name for p in files]
    assert 2 <= len(files) <= max_files, f"expected rotation into at most {max_files} files: {names}"
    assert "app.log" in names, names
    for p in files:
        # spdlog rotates before a line would take the file past the size; one long line may not.
        assert p.stat().st_size <= max_bytes + 512, (p.name, p.stat().st_size)
    newest = (srv.log_dir / "app.log").read_text(errors="replace")
    assert "stopped cleanly" in newest, "the current file holds the latest lines"
