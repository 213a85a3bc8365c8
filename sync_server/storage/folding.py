"""Folding a document's snapshot and log into one snapshot, in a helper process.

pycrdt holds the GIL while it decodes and encodes, so a fold on one of the
server's threads stops the event loop, and with it every room, for as long as
the fold takes: 100 ms for a 20,000-task document, and a busy room folds every
``compact_threshold`` updates. The fold is bytes in, bytes out, so it runs in
a child process instead, started on first use; the compactor's thread waits
for it on a pipe with the GIL released.

    parent -> child   u32 n, then n x (u32 length, bytes): the snapshot (empty if
                      none), then the log's updates in order
    child -> parent   0x00, (u32 length, snapshot), (u32 length, state vector)
                      or 0x01, (u32 length, UTF-8 error message)

The child reads requests until its stdin closes, so it ends with the server
however the server ends, ``kill -9`` included. If it dies, the fold that was
under way fails (compaction is retried after a later append) and the next one
starts a new child. Where no child can be started, folds run in the caller.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any, BinaryIO

from pycrdt import Doc

log = logging.getLogger("tandem.storage")

_U32 = struct.Struct(">I")


class FoldFailed(RuntimeError):
    """The fold could not be done: the stored data does not decode, or the child died."""


def fold(snapshot: bytes | None, updates: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The snapshot and the updates as one update, and its state vector."""
    doc: Doc[Any] = Doc()
    with doc.transaction():
        if snapshot:
            doc.apply_update(snapshot)
        for update in updates:
            doc.apply_update(update)
    return doc.get_update(), doc.get_state()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError(f"pipe closed after {len(data or b'')} of {n} bytes")
    return data


def _read_part(stream: IO[bytes]) -> bytes:
    (length,) = _U32.unpack(_read_exact(stream, 4))
    return _read_exact(stream, length)


def _parts(*parts: bytes) -> bytes:
    return b"".join(_U32.pack(len(p)) + p for p in parts)


class FoldProcess:
    """A child process that folds; call :meth:`fold` from one thread at a time."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._inline = False  # no child could be started: fold here

    def fold(self, snapshot: bytes | None, updates: Sequence[bytes]) -> tuple[bytes, bytes]:
        if self._inline:
            return self._fold_here(snapshot, updates)
        child = self._child if self._child is not None else self._start()
        if child is None:
            return self._fold_here(snapshot, updates)
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(_U32.pack(1 + len(updates)) + _parts(snapshot or b"", *updates))
            child.stdin.flush()
            status = _read_exact(child.stdout, 1)
            if status == b"\x00":
                return _read_part(child.stdout), _read_part(child.stdout)
            message = _read_part(child.stdout).decode(errors="replace")
        except (OSError, EOFError, ValueError) as e:
            self._stop(child)
            raise FoldFailed(f"the fold process failed: {e}") from e
        raise FoldFailed(message)

    @staticmethod
    def _fold_here(snapshot: bytes | None, updates: Sequence[bytes]) -> tuple[bytes, bytes]:
        try:
            return fold(snapshot, updates)
        except ValueError as e:
            raise FoldFailed(str(e)) from e

    def _start(self) -> subprocess.Popen[bytes] | None:
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C in a terminal is the server's to handle
            )
        except OSError as e:
            log.warning("cannot start a fold process (%s); folding on a server thread", e)
            self._inline = True
            return None
        return self._child

    def _stop(self, child: subprocess.Popen[bytes]) -> None:
        if self._child is child:
            self._child = None
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead child's pipe
                    stream.close()
        try:
            child.wait(timeout=5)  # it exits when its stdin closes
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one is running."""
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        if self._child is not None:
            self._stop(self._child)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The child's loop: one fold per request, until ``requests`` closes."""
    while True:
        head = requests.read(4)
        if len(head) < 4:
            return
        (count,) = _U32.unpack(head)
        parts = [_read_part(requests) for _ in range(count)]
        try:
            snapshot, state = fold(parts[0] if parts else None, parts[1:])
            reply = b"\x00" + _parts(snapshot, state)
        except Exception as e:  # a corrupt update: the parent logs it, the child goes on
            reply = b"\x01" + _parts(f"stored data does not fold: {e}".encode())
        replies.write(reply)
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
