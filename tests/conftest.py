"""Shared fixtures: a real `tandem serve` process on a real SQLite file, and real clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# a real PostgreSQL server (session), a database per test (postgres_url), each engine's
# target in turn (storage_target)
from tests.postgres_server import (  # noqa: F401 (fixtures)
    postgres_server,
    postgres_url,
    storage_for_tests,
    storage_target,
)

ROOT = Path(__file__).resolve().parent.parent
TANDEM = [sys.executable, "-m", "sync_server.shell.cli"]
NODE_DIR = ROOT / "tests" / "node"


KEY_WRITER = "system:task-keys"
"""The actor of the server's task-key writes (sync_server.extensions.task_keys): each new
task is followed by one such transaction, which tests counting transactions leave out."""


def without_keys(tasks: dict) -> dict:
    """Tasks (id -> fields) without the server-assigned ``key``, which follows a new task in
    a transaction of its own: a client may not have received it yet when it reports."""
    return {i: {k: v for k, v in t.items() if k != "key"} for i, t in tasks.items()}


def api_client(server, user: str = "alice") -> httpx.Client:
    """An httpx client on the server's REST API (/api/v1), signed in as ``user``."""
    return httpx.Client(
        base_url=server.http_url + "/api/v1",
        headers={"Authorization": f"Bearer {server.token(user)}"},
        timeout=30,
    )


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    """``predicate()``'s first truthy value, polled every 50 ms; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tandem(*args: str, db: Path, stdin: str | None = None, check: bool = True) -> str:
    """Run the real CLI and return its standard output (and error, when ``check`` is off)."""
    proc = subprocess.run(
        [*TANDEM, *args, "--db", str(db)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tandem {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout if check else proc.stdout + proc.stderr


def grant_role(
    db: Path, user: str, project: str, role: str = "owner", added=(), removed=()
) -> None:
    """Write a grant straight into the server's SQLite file (the server sees it within 1 s...
    immediately for a user it has not looked up yet)."""
    from rules import Grant, parse_permissions
    from sync_server.identity import access
    from sync_server.storage.database import open_database

    conn = open_database(db).conn
    try:
        access.set_grant(
            conn,
            Grant(user, project, role, parse_permissions(added), parse_permissions(removed)),
            "test",
        )
    finally:
        conn.close()


def make_token(db: Path, user: str) -> str:
    """Create ``user`` if needed and return a fresh API token (the CLI's last line)."""
    tandem("user", "create", user, db=db, stdin="", check=False)
    return tandem("token", "create", user, db=db).strip().splitlines()[-1]


@dataclass
class InProcessServer:
    """What RawClient needs of a server run in the test's own process (create_app +
    hypercorn's serve): accounts and grants live in the SQLite file."""

    db: Path
    port: int
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = make_token(self.db, user)
        return self.tokens[user]

    def grant(self, user: str, project: str, role: str = "owner") -> None:
        grant_role(self.db, user, project, role)


@dataclass
class ServerProcess:
    db: Path  # or a postgresql:// URL (start_server(storage=...))
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # more `tandem serve` arguments (e.g. --extension)
    cwd: Path = ROOT

    def command(self) -> list[str]:
        """The ``tandem serve`` command line (another checkout runs its own CLI)."""
        return [*TANDEM, "serve", "--db", str(self.db), "--port", str(self.port), *self.args]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def token(self, user: str = "alice") -> str:
        if user not in self.tokens:
            self.tokens[user] = make_token(self.db, user)
        return self.tokens[user]

    def grant(self, user: str, project: str, role: str = "owner", **kw) -> None:
        grant_role(self.db, user, project, role, **kw)

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.http_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(tmp_path: Path, storage: str | None = None, **env_overrides: str) -> ServerProcess:
    """A real ``tandem serve`` on ``tmp_path/tandem.db``, or on ``storage`` (a PostgreSQL
    database's URL: the secrets' key then comes from TANDEM_SECRET_KEY, not a file)."""
    env = dict(os.environ)
    env.update({"TANDEM_ROOM_IDLE_SECONDS": "2", "TANDEM_EXTERNAL_POLL_SECONDS": "0.2"})
    if storage is None:
        storage = storage_for_tests()  # TANDEM_TEST_STORAGE=postgresql: any test on PostgreSQL
    if storage is not None:
        from cryptography.fernet import Fernet

        env["TANDEM_SECRET_KEY"] = Fernet.generate_key().decode()
    env.update(env_overrides)
    db: Any = storage if storage is not None else tmp_path / "tandem.db"
    server = ServerProcess(db=db, port=free_port(), env=env, log_path=tmp_path / "server.log")
    server.start()
    return server


def _served(srv: ServerProcess) -> Iterator[ServerProcess]:
    """A fixture's server: stopped after the test, its log shown if it holds a traceback."""
    try:
        yield srv
    finally:
        srv.stop()
        tail = srv.log()[-4000:]
        if "Traceback" in tail:
            print(f"--- server log ---\n{tail}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from _served(start_server(tmp_path))


@pytest.fixture(params=["sqlite", "postgresql"])
def server_on_each_storage(request, tmp_path: Path) -> Iterator[ServerProcess]:
    """``server``, once on a SQLite file and once on a fresh PostgreSQL database."""
    storage = None
    if request.param == "postgresql":
        storage = request.getfixturevalue("postgres_server").create_database()
    yield from _served(start_server(tmp_path, storage))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def utf8_offset(chars: str, index: int) -> int:
    """The position pycrdt's Text takes for the ``index``-th character of ``chars``.

    pycrdt 0.14 counts Text positions and lengths in UTF-8 bytes; a position inside a
    multi-byte character makes its document encode an update that differs from what it
    shows (it deleted the other characters of a title in the offline-sessions property:
    pycrdt issue/PR y-crdt/pycrdt#379), so a stock pycrdt client must only use positions
    at character boundaries."""
    return len(chars[:index].encode("utf-8"))


def node_available() -> bool:
    return (NODE_DIR / "node_modules" / "y-websocket").is_dir()


def run_node(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["node", str(NODE_DIR / script), *args],
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"node {script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def stored_doc(db: Path, doc_name: str):
    """The document exactly as SQLite holds it (snapshot + log), read by a fresh store."""
    import anyio

    from doc_model import parse_doc_name
    from sync_server.storage.sqlite_store import SQLiteStore, build_document

    async def load():
        store = SQLiteStore(db)
        try:
            return await store.load(doc_name)
        finally:
            await store.close()

    # a thread of its own, so async tests can call it too
    with ThreadPoolExecutor(1) as pool:
        stored = pool.submit(anyio.run, load).result()
    return build_document(stored, parse_doc_name(doc_name))


def project_with_tasks(count: int):
    """A project document of ``count`` real tasks (doc_model's create_task, schema and all),
    built in one transaction; task ids are t0, t1, ..."""
    from pycrdt import Doc

    from doc_model import TaskCreate, create_project_meta, create_task
    from doc_model.order import order_key_between

    doc: Doc = Doc()
    create_project_meta(doc, f"{count} tasks")
    order = None
    with doc.transaction():
        for i in range(count):
            order = order_key_between(order, None)  # given: finding the last key is O(n)
            create_task(
                doc, TaskCreate(title=f"task {i}", order=order), created_by="test", task_id=f"t{i}"
            )
    return doc


REDIS_SERVER = "/usr/bin/redis-server"


@dataclass
class RedisProcess:
    """A throwaway ``redis-server`` (Debian's package) on a free port in a temporary
    directory, without persistence: a restart starts it empty, as a lost Redis would."""

    dir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start:\n{(self.dir / 'redis.log').read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisProcess]:
    """A real Redis in ``directory`` for scale-out tests; the test is skipped (saying why)
    where Debian's redis-server is not installed (`make redis` installs it; `make test`
    runs that)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server; make redis)")
    directory.mkdir()
    server = RedisProcess(directory, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with running_redis(tmp_path / "redis") as server:
        yield server
