"""Prometheus metrics of one server (``/metrics``), in a registry of its own.

Each app has its own ``CollectorRegistry`` (never prometheus-client's global one),
so several in-process servers (tests) do not collide. No label carries a document
name, a project, a user or a token: the label values are bounded sets (a denial's
permission code, a status class, a feed consumer's name, an outbox status).

Counters and histograms are updated on the hot path (cheap: a lock and an add);
gauges are read when scraped: connections and rooms from the room manager, outbox
depth and change-feed lag with one SQL read each, off the event loop.

Who may read them: see ``may_read``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from integrations.outbox import depth as outbox_depth
from sync_server.storage.database import SQLiteWorker

if TYPE_CHECKING:
    from sync_server.core.room import Room

log = logging.getLogger("tandem.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def may_read(remote_addr: str | None, headers: Mapping[str, str], token: str) -> bool:
    """Whether a request may read ``/metrics``.

    With ``token`` set (TANDEM_METRICS_TOKEN): a request with ``Authorization: Bearer
    <token>``, from anywhere. Otherwise, or without it: only a request made directly
    from a loopback address. A request a proxy forwarded (it says so in Forwarded /
    X-Forwarded-For / X-Real-IP) is not direct, even when the proxy runs on this host
    and connects from 127.0.0.1: the internet behind the proxy must not read metrics.
    """
    if token:
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        if auth[:7].lower() == "bearer " and hmac.compare_digest(
            auth[7:].strip().encode(), token.encode()
        ):
            return True
    lowered = {k.lower() for k in headers}
    if any(h in lowered for h in FORWARDED_HEADERS):
        return False
    try:
        return ipaddress.ip_address((remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


class Tally:
    """A histogram's counts, kept in plain numbers on the event loop's thread."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


class _HotPath(Collector):
    def __init__(self, owner: ServerMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        o = self.owner
        yield CounterMetricFamily(
            "tandem_updates_accepted", "Transactions that passed the gate", o.accepted_total
        )
        yield o.fanout.family(
            "tandem_fanout_seconds",
            "From an update's acceptance by the gate to the last of its room's other"
            " clients' sockets taking it (coalescing, append and send queues included)",
        )
        yield o.append.family(
            "tandem_storage_append_seconds",
            "Duration of one batch's append to storage (durable when it returns)",
        )


class _Gauges(Collector):
    """Gauges read at scrape time (``ServerMetrics.refresh`` fills the SQL-backed ones)."""

    def __init__(self, owner: ServerMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        o = self.owner
        rooms = o.rooms_source() if o.rooms_source is not None else {}
        loaded = [r for r in rooms.values() if not r.closed]
        yield GaugeMetricFamily(
            "tandem_websocket_connections",
            "Open sync WebSocket connections",
            value=sum(len(r.connections) for r in loaded),
        )
        yield GaugeMetricFamily("tandem_rooms_loaded", "Documents loaded in memory", len(loaded))
        yield GaugeMetricFamily(
            "tandem_ready", "1 if /readyz would answer 200 at the last scrape", o.ready
        )
        outbox = GaugeMetricFamily(
            "tandem_outbox_depth", "Outbound deliveries not finished, by status", labels=["status"]
        )
        for status, n in sorted(o.outbox.items()):
            outbox.add_metric([status], n)
        yield outbox
        lag = GaugeMetricFamily(
            "tandem_feed_consumer_lag",
            "Change-feed rows a consumer has yet to finish",
            labels=["consumer"],
        )
        for name, n in sorted(o.feed_lag.items()):
            lag.add_metric([name], n)
        yield lag


class ServerMetrics:
    """The server's metrics; also the rooms' ``RoomInstruments`` (core.instruments)."""

    def __init__(self) -> None:
        self.rooms_source: Callable[[], Mapping[str, Room]] | None = None
        self.outbox: dict[str, int] = {}
        self.feed_lag: dict[str, int] = {}
        self.ready = 0
        # SQL-backed gauges, read off the event loop at scrape time (bound at startup)
        self.read_outbox: Callable[[], Awaitable[dict[str, int]]] | None = None
        self.read_feed_lag: Callable[[], Awaitable[dict[str, int]]] | None = None
        # the hot path's figures: plain numbers, exposed at scrape time (_HotPath). A
        # prometheus-client Counter.inc / Histogram.observe takes a lock: 4.2 / 11.0 us per
        # call here against 1.6 / 2.5 us for these (python -m bench.metrics_cost)
        self.accepted_total = 0
        self.fanout = Tally(LATENCY_BUCKETS)
        self.append = Tally(LATENCY_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._rejected = Counter(
            "tandem_updates_rejected",
            "Transactions the gate refused, by the permission lacked (or schema)",
            ["reason"],
            registry=r,
        )
        self._requests = Counter(
            "tandem_http_requests",
            "REST API requests (/api/) by status class",
            ["code"],
            registry=r,
        )
        self._readyz = Counter(
            "tandem_readyz_failures",
            "/readyz answers of 503, by what failed",
            ["check"],
            registry=r,
        )
        ProcessCollector(registry=r)  # RSS, CPU seconds, open files of this process
        r.register(_Gauges(self))
        r.register(_HotPath(self))

    # -- RoomInstruments --------------------------------------------------------

    def accepted(self, updates: int) -> None:
        self.accepted_total += updates

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def appended(self, seconds: float) -> None:
        self.append.observe(seconds)

    def delivered(self, seconds: float) -> None:
        self.fanout.observe(seconds)

    # -- the rest -------------------------------------------------------------

    def request_done(self, status: int) -> None:
        self._requests.labels(f"{status // 100}xx").inc()

    def readyz_failed(self, check: str) -> None:
        self._readyz.labels(check).inc()

    async def refresh(self) -> None:
        """Read the SQL-backed gauges (each failure logged and left at its last value)."""
        for attr, read in (("outbox", self.read_outbox), ("feed_lag", self.read_feed_lag)):
            if read is None:
                continue
            try:
                setattr(self, attr, await read())
            except Exception as e:  # a locked or unreachable database: the scrape goes on
                log.warning("metrics: reading %s failed: %s", attr, e)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def sqlite_outbox_depth(worker: SQLiteWorker) -> Callable[[], Awaitable[dict[str, int]]]:
    """``read_outbox`` for the SQLite file, on ``worker``'s thread."""

    async def read() -> dict[str, int]:
        return await worker.run(outbox_depth, worker.conn)

    return read
