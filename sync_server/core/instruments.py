"""What a room reports about its hot path, for whoever measures it (shell.monitoring).

The core does not import a metrics library: a room is given an object with these
methods (or none, and reports nothing). Every call is cheap and never raises into
the room; label values are bounded (a denial's permission code or "schema"), never
a document name or a user id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class RoomInstruments(Protocol):
    def accepted(self, updates: int) -> None:
        """``updates`` transactions passed the gate."""

    def rejected(self, reason: str) -> None:
        """One transaction was refused: ``reason`` is the permission it lacked, or "schema"."""

    def appended(self, seconds: float) -> None:
        """One batch's ``store.append`` took ``seconds``."""

    def delivered(self, seconds: float) -> None:
        """One accepted update reached the last of its room's other clients' sockets
        ``seconds`` after the gate accepted it."""


class TrackedFrame(bytes):
    """A broadcast frame that says when the last of its recipients' senders wrote it.

    ``Connection.run_sender`` calls ``sent()`` after each socket write of a frame that
    has it; a frame dropped with its connection (closed, cut off) never completes,
    and nothing is reported for it."""

    remaining: int
    done: Callable[[], None]

    def sent(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.done()


def tracked(
    frame: bytes, recipients: int, accepted_at: list[float], instruments: RoomInstruments
) -> bytes:
    """``frame`` to be sent to ``recipients`` sockets, reporting each accepted update's
    delivery latency (``accepted_at``: their ``time.perf_counter()`` at the gate) once
    the last socket took it."""
    if recipients <= 0 or not accepted_at:
        return frame
    out = TrackedFrame(frame)
    out.remaining = recipients

    def done() -> None:
        now = time.perf_counter()
        for t in accepted_at:
            instruments.delivered(now - t)

    out.done = done
    return out
