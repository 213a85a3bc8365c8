"""Readiness: whether this node can serve, asked by a load balancer at ``/readyz``.

``/healthz`` says the process is alive (its event loop answers); ``/readyz`` says
it can serve a document now: it has started, it is not draining for shutdown, and
every registered probe answers within ``timeout`` seconds. A probe is an async
callable that returns when its service answers and raises (with a message saying
what is wrong) when it does not. The storage probe is registered by the app; other
backends add theirs at startup, e.g. ``ctx.readiness.add("redis", client.ping)``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Probe = Callable[[], Awaitable[Any]]

# a probe's error may quote a connection URL: its password must not reach a response
_CREDENTIALS = re.compile(r"(//[^/@\s:]*:)[^/\s]*@")  # up to the last @ of the authority
DETAIL_CHARS = 200


def redact(text: str) -> str:
    return _CREDENTIALS.sub(r"\1***@", text)[:DETAIL_CHARS]


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str  # "ok", or what failed
    seconds: float


class Readiness:
    """The registry of probes and the node's state (starting, serving, draining)."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.probes: list[tuple[str, Probe]] = []
        self.started = False  # set once the app's startup has finished
        self.draining = False  # set on SIGTERM / at shutdown: no new connections, please

    def add(self, name: str, probe: Probe) -> None:
        """Register ``probe`` under ``name`` (unique: it names the failure in the 503)."""
        if any(n == name for n, _ in self.probes):
            raise ValueError(f"a readiness probe named {name!r} is already registered")
        self.probes.append((name, probe))

    def remove(self, name: str) -> None:
        self.probes = [(n, p) for n, p in self.probes if n != name]

    async def _run(self, name: str, probe: Probe) -> ProbeResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(probe(), self.timeout)
        except TimeoutError:
            detail = f"no answer within {self.timeout:g} s"
        except Exception as e:
            detail = redact(f"{type(e).__name__}: {e}")
        else:
            return ProbeResult(name, True, "ok", time.perf_counter() - started)
        return ProbeResult(name, False, detail, time.perf_counter() - started)

    def state(self) -> str | None:
        """Why the node is not ready regardless of its probes, or None."""
        if self.draining:
            return "draining: the server is shutting down"
        if not self.started:
            return "starting"
        return None

    async def check(self) -> list[ProbeResult]:
        """Every probe, concurrently, each within ``timeout``."""
        return list(await asyncio.gather(*(self._run(n, p) for n, p in self.probes)))


def storage_probe(store: object) -> Probe:
    """The store's ``ping()`` if it has one (SQLite: the write lock can be taken;
    PostgreSQL: ``SELECT 1``), else a trivial read through its own worker."""
    ping = getattr(store, "ping", None)
    if callable(ping):
        return ping
    last_seq = store.last_seq  # type: ignore[attr-defined]

    async def read() -> None:
        await last_seq("")

    return read
