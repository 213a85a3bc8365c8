"""A full disk is an answer that says so, never a bare 500 or damaged data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import ServerProcess, free_port

ONE = "0b9d4e62-7f15-4a3c-8e20-c1a5d6f7b398"  # chosen project ids are UUIDs
TWO = "e47a1c93-2d68-4b05-9f3e-6a8b0c1d2e57"


def _mount_small_disk(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_rest_write_on_a_full_disk_is_507_with_retry_after_and_works_once_there_is_room(
    tmp_path,
) -> None:
    disk = tmp_path / "disk"
    if not _mount_small_disk(disk, "8m"):
        pytest.skip("needs root to mount a small tmpfs")
    server = ServerProcess(
        db=disk / "tandem.db",
        port=free_port(),
        env={**os.environ, "TANDEM_ROOM_IDLE_SECONDS": "2"},
        log_path=tmp_path / "server.log",
    )
    try:
        server.start()
        headers = {"Authorization": f"Bearer {server.token('alice')}"}
        with httpx.Client(base_url=server.http_url, headers=headers, timeout=30) as http:
            assert http.post("/api/v1/projects/", json={"id": ONE, "name": "One"}).is_success
            filler = _fill(disk)
            refused = [http.post("/api/v1/projects/", json={"name": "x" * 200}) for i in range(3)]
            assert http.get("/healthz").status_code == 200
            full = [r for r in refused if r.status_code == 507]
            assert full, [(r.status_code, r.text) for r in refused]
            for r in full:
                assert r.headers["content-type"] == "application/problem+json"
                assert int(r.headers["Retry-After"]) > 0
                assert "disk is full" in r.json()["detail"]
            filler.unlink()
            # room again: the same request succeeds, and what was there is intact
            again = http.post("/api/v1/projects/", json={"id": TWO, "name": "Two"})
            assert again.status_code == 201, again.text
            listed = {p["id"] for p in http.get("/api/v1/projects/").json()["items"]}
            assert {ONE, TWO} <= listed
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
