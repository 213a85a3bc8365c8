"""Yjs state vectors (client id -> next clock), decoded, merged and encoded without a Doc."""

from __future__ import annotations

from collections.abc import Iterable

EMPTY = b"\x00"


def _read_varuint(buf: bytes, pos: int) -> tuple[int, int]:
    num = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        num |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return num, pos


def _varuint(num: int) -> bytes:
    out = bytearray()
    while num > 0x7F:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)
    return bytes(out)


def decode(sv: bytes) -> dict[int, int]:
    """Decode a lib0-encoded state vector; raises ValueError on malformed input."""
    try:
        count, pos = _read_varuint(sv, 0)
        out: dict[int, int] = {}
        for _ in range(count):
            client, pos = _read_varuint(sv, pos)
            clock, pos = _read_varuint(sv, pos)
            out[client] = clock
    except IndexError as e:
        raise ValueError("truncated state vector") from e
    return out


def encode(sv: dict[int, int]) -> bytes:
    parts = [_varuint(len(sv))]
    for client, clock in sorted(sv.items()):
        parts += [_varuint(client), _varuint(clock)]
    return b"".join(parts)


def merge(vectors: Iterable[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for sv in vectors:
        for client, clock in sv.items():
            if clock > out.get(client, 0):
                out[client] = clock
    return out
