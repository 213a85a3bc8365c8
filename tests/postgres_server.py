"""A real PostgreSQL server for the tests: Debian's binaries, ``initdb`` + ``postgres`` in a
temporary directory on a free port, once per test session (as ``nobody`` when the tests run
as root: postgres refuses to run as root). ``make postgresql`` installs the binaries; where
they are absent the tests that need them are skipped, saying so."""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

SUPERUSER = "tandem"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        """``durable``: fsync on (benchmarks); the tests kill Tandem's servers, not this one."""
        self.bindir = bindir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="tandem-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._user: str | None = None
        self._group: str | None = None
        self._groups: list[str] | None = None
        if os.geteuid() == 0:  # postgres refuses root: run it as nobody, in a dir it owns
            self._user, self._group, self._groups = "nobody", "nogroup", []
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody", "nogroup")

    def start(self) -> None:
        """initdb (the first time), then the server; returns once it accepts connections."""
        env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        if not self.data.exists():
            self._initdb(env)
        self._serve(env)

    def _initdb(self, env: dict[str, str]) -> None:
        subprocess.run(
            [
                *(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER),
                *("-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"),
            ],
            check=True,
            capture_output=True,
            env=env,
            user=self._user,
            group=self._group,
            extra_groups=self._groups,
        )

    def _serve(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [
                *(str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                *("-k", str(self.root), "-c", "listen_addresses=127.0.0.1"),
                *("-c", "max_connections=500", "-c", "shared_buffers=32MB"),
                *("-c", f"fsync={'on' if self.durable else 'off'}"),
            ],
            stdout=subprocess.DEVNULL,
            user=self._user,
            group=self._group,
            extra_groups=self._groups,
            stderr=open(self.root / "server.log", "ab"),  # noqa: SIM115 (the server's life)
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [
                    str(self.bindir / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    SUPERUSER,
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        log = (self.root / "server.log").read_text(errors="replace")
        raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def halt(self) -> None:
        """Stop the server (its data kept: ``start`` serves it again)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: clients are disconnected
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer | None:
    """The test process's one PostgreSQL server, started on first use (stopped at exit);
    None where PostgreSQL is not installed."""
    global _shared
    if _shared is None:
        bindir = postgres_bin()
        if bindir is None:
            return None
        server = PostgresServer(bindir)
        server.start()
        atexit.register(server.stop)
        _shared = server
    return _shared


def storage_for_tests() -> str | None:
    """``TANDEM_TEST_STORAGE=postgresql``: every ``start_server`` (the ``server`` fixture
    included) on a fresh PostgreSQL database instead of a SQLite file, to run any test
    module against PostgreSQL (tests reading the SQLite file themselves fail there)."""
    if os.environ.get("TANDEM_TEST_STORAGE", "") != "postgresql":
        return None
    server = shared_server()
    if server is None:
        pytest.skip("TANDEM_TEST_STORAGE=postgresql but PostgreSQL is not installed")
    return server.create_database()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    server = shared_server()
    if server is None:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres):"
            " `make postgresql` installs Debian's package"
        )
    return server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's PostgreSQL server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_target(request, tmp_path) -> str:
    """Each storage engine's target in turn: a SQLite file, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "tandem.db")
    return request.getfixturevalue("postgres_server").create_database()
