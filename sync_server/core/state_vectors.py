"""Yjs state vectors (client id -> next clock), decoded, merged and encoded without a Doc."""

from __future__ import annotations

from collections.abc import Iterable

from sync_server.core.protocol import ProtocolError, Reader, varuint

EMPTY = b"\x00"


def decode(sv: bytes) -> dict[int, int]:
    """Decode a lib0-encoded state vector; raises ValueError (ProtocolError) when malformed."""
    reader = Reader(sv)
    count = reader.varuint()
    if count > len(sv):
        raise ProtocolError(f"state vector claims {count} entries in {len(sv)} bytes")
    out: dict[int, int] = {}
    for _ in range(count):
        client = reader.varuint()
        out[client] = reader.varuint()
    reader.done()
    return out


def encode(sv: dict[int, int]) -> bytes:
    parts = [varuint(len(sv))]
    for client, clock in sorted(sv.items()):
        parts += [varuint(client), varuint(clock)]
    return b"".join(parts)


def merge(vectors: Iterable[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for sv in vectors:
        for client, clock in sv.items():
            if clock > out.get(client, 0):
                out[client] = clock
    return out
