"""Open N sync connections to one document, sync each, print READY, then hold them idle
until killed (a separate process, so a test counting the server's objects counts only
the server's). Usage: idle_clients.py PORT TOKEN DOC N"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.raw_client import RawClient


@dataclass
class _Server:
    port: int
    secret: str

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def token(self, user: str) -> str:
        return self.secret


async def main(port: int, token: str, doc: str, n: int) -> None:
    server = _Server(port, token)
    ready = 0

    async def one() -> None:
        nonlocal ready
        async with RawClient.connect(server, doc, "alice", token=token, role=None) as client:
            await client.sync()
            ready += 1
            if ready == n:
                print("READY", flush=True)
            await anyio.sleep(3600)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
            await anyio.sleep(0.005)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
