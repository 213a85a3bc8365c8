"""The CLI when whoever reads its output goes away early (``tandem ... | head -1``)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, TANDEM, tandem


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with its standard output a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        return subprocess.run(
            [*TANDEM, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tandem.db"
    tandem("user", "create", "ann", db=path)  # a token-only account
    return path


def test_a_token_printed_into_a_closed_pipe_says_so_in_one_line(db: Path) -> None:
    proc = run_into_closed_pipe("token", "create", "ann", "--db", str(db))
    assert proc.returncode == 1
    assert proc.stderr == "tandem: the output was closed before all of it was written\n"
    assert "Traceback" not in proc.stderr


def test_a_reader_that_stays_gets_the_whole_output(db: Path) -> None:
    token = tandem("token", "create", "ann", db=db).strip().splitlines()[-1]
    assert len(token) >= 20


def test_a_command_started_with_its_output_closed_has_no_traceback(db: Path) -> None:
    for args in (["--help"], ["token", "create", "ann", "--db", str(db)]):
        proc = subprocess.run(
            ["sh", "-c", 'exec "$@" >&-', "sh", *TANDEM, *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert "Traceback" not in proc.stderr, proc.stderr


def serve(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TANDEM, "serve", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_serve_on_an_address_it_cannot_listen_on_says_why_in_one_line(tmp_path: Path) -> None:
    """A port out of range, a host that does not resolve, a port in use: one line and exit
    code 2, before anything starts (the server binds after its startup, and this was a
    traceback); nothing else on stderr (authlib's notice about httpx2 was printed at every
    start)."""
    db = tmp_path / "tandem.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, said in (
            (("--port", "99999"), "tandem: --port must be 0-65535, not 99999"),
            (("--host", "256.1.1.1"), "tandem: cannot listen on '256.1.1.1': "),
            (("--port", str(port)), f"tandem: cannot listen on 127.0.0.1:{port}: "),
        ):
            proc = serve(*args, db=db)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.startswith(said) and proc.stderr.count("\n") == 1, proc.stderr
