"""Squash a Yjs update: one struct for each run of text a client typed in sequence.

A room broadcasts each batch of gated transactions as one update,
``merge_updates`` of the batch. That merge keeps every transaction's structs as
they came: a client that typed ten characters into one batch sends ten
one-character items, and every receiver integrates ten items. The same
characters in the server's own document are one item (Yjs and yrs squash
adjacent items after every transaction), which is what an update encoded from a
document holds, but such an update always carries the document's whole delete
set, built by walking every block: 1.5 ms and 54 KB for a 64-edit batch in
a 20,000-task project, against 124 us and 868 bytes merged and squashed
(``bench.squash_broadcast``).

:func:`squash_update` rewrites the merged update instead: two consecutive
string items of one client (the second's clock follows the first's) become one
item when the second was typed right after the first, that is its left origin
is the first's last character and both have the same right origin. That is the
case Yjs's own ``Item.mergeWith`` squashes in a document, and a receiver
integrates the result to the same document: one that already holds the first
part splits the item where its own state ends, and the rest carries exactly the
second item's origins (Yjs ``Item.integrate`` with an offset). Every other
struct, and the delete set, is copied byte for byte.

Under load this is where the work goes: a busy room's batches hold several
edits per typist, and each receiver (a phone, say) pays per item.
``bench.squash_broadcast``, a batch of 50 typists x 16 keystrokes: 17,126 ->
2,291 bytes, and 0.33 -> 0.07 ms for a stock Yjs receiver to apply, for 1.9 ms
of the server's time once per batch (merging it took 2.5 ms). The room skips
the squash when no connection has two edits in the batch, as nothing can merge.

Update v1 layout (lib0 encoding; yjs ``src/utils/encoding.js``)::

    varuint clients; per client: varuint structs, varuint client, varuint clock, structs
    struct: info byte; GC (0) / Skip (10): varuint length; an item otherwise:
      [origin: varuint client, varuint clock]         if info & 0x80
      [right origin: varuint client, varuint clock]   if info & 0x40
      parent info (varuint 1 + root name, or 0 + id)   if neither origin
      [parent sub: varstring]                          if neither origin and info & 0x20
      content by info & 0x1F: 1 deleted, 2 JSON, 3 binary, 4 string, 5 embed,
                              6 format, 7 type, 8 any, 9 subdocument
    then the delete set
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sync_server.core.protocol import ProtocolError, varuint, varuint_at

log = logging.getLogger(__name__)

ORIGIN = 0x80
RIGHT_ORIGIN = 0x40
PARENT_SUB = 0x20
CONTENT_REF = 0x1F
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, SUBDOC, SKIP = range(11)
XML_ELEMENT, XML_HOOK = 3, 5  # type refs followed by a name


def squash_update(update: bytes) -> bytes:
    """The same update with each client's sequentially typed string items merged.

    Returns ``update`` itself when nothing merges, or when it cannot be read (the
    caller's update then goes out as it was; nothing here ever changes its meaning).
    """
    try:
        return _squash(update)
    except (ProtocolError, IndexError, UnicodeDecodeError) as e:
        log.warning("update not squashed: %s", e)
        return update


class _Struct(NamedTuple):
    """One parsed struct. Origins are kept as their encoded bytes (client, clock): equal
    bytes, equal ids, and that is all a merge compares."""

    ref: int
    length: int
    origin: bytes | None
    right: bytes | None
    start: int
    content_start: int
    end: int
    parent: bytes | None = None  # the parent's id (client, clock) when it is not a root

    def encoded(self, buf: bytes) -> bytes:
        return buf[self.start : self.end]


class _TypedRun:
    """A string item that the keystrokes typed right after it were merged into."""

    __slots__ = ("header", "length", "right", "text")
    ref = STRING

    def __init__(self, buf: bytes, first: _Struct) -> None:
        self.header = buf[first.start : first.content_start]  # info byte, origins, parent
        self.right = first.right
        self.length = first.length
        self.text = bytearray(_string_bytes(buf, first.content_start))

    def extend(self, buf: bytes, item: _Struct) -> None:
        self.text += _string_bytes(buf, item.content_start)
        self.length += item.length

    def encoded(self, buf: bytes) -> bytes:
        return self.header + varuint(len(self.text)) + self.text


def _squash(buf: bytes) -> bytes:
    clients, pos = varuint_at(buf, 0)
    runs: list[bytes | None] = []  # per client: its structs rewritten, or None if unchanged
    bounds: list[tuple[int, int]] = []  # per client: where its structs are in ``buf``
    for _ in range(clients):
        run_start = pos
        count, pos = varuint_at(buf, pos)
        client_at = pos
        pos = _skip_uint(buf, pos)
        client = buf[client_at:pos]
        first_clock, pos = varuint_at(buf, pos)
        clock = first_clock
        kept: list[_Struct | _TypedRun] = []
        merged = False
        for _ in range(count):
            item = read_struct(buf, pos)
            pos = item.end
            prev = kept[-1] if kept else None
            if (  # typed right after the previous item: what Yjs's Item.mergeWith merges
                prev is not None
                and prev.ref == STRING
                and item.ref == STRING
                and item.right == prev.right
                and item.origin == client + varuint(clock - 1)
            ):
                if isinstance(prev, _Struct):
                    prev = kept[-1] = _TypedRun(buf, prev)
                prev.extend(buf, item)
                merged = True
            else:
                kept.append(item)
            clock += item.length
        bounds.append((run_start, pos))
        runs.append(
            varuint(len(kept))
            + client
            + varuint(first_clock)
            + b"".join(k.encoded(buf) for k in kept)
            if merged
            else None
        )
    if all(run is None for run in runs):
        return buf
    out = bytearray(varuint(clients))
    for run, (start, end) in zip(runs, bounds, strict=True):
        out += buf[start:end] if run is None else run
    out += buf[pos:]  # the delete set
    return bytes(out)


def read_struct(buf: bytes, pos: int) -> _Struct:
    """The struct encoded at ``pos`` (raises ProtocolError or IndexError when malformed)."""
    start = pos
    info = buf[pos]
    pos += 1
    ref = info & CONTENT_REF
    if ref in (GC, SKIP):
        length, pos = varuint_at(buf, pos)
        return _Struct(ref, length, None, None, start, start + 1, pos)
    origin = right = None
    if info & ORIGIN:
        at = pos
        pos = _skip_uint(buf, _skip_uint(buf, pos))
        origin = buf[at:pos]
    if info & RIGHT_ORIGIN:
        at = pos
        pos = _skip_uint(buf, _skip_uint(buf, pos))
        right = buf[at:pos]
    parent = None
    if not info & (ORIGIN | RIGHT_ORIGIN):
        is_root, pos = varuint_at(buf, pos)
        # the root type's name, or the parent's id
        if is_root == 1:
            pos = _skip_bytes(buf, pos)
        else:
            at = pos
            pos = _skip_uint(buf, _skip_uint(buf, pos))
            parent = buf[at:pos]
        if info & PARENT_SUB:
            pos = _skip_bytes(buf, pos)
    content_start = pos
    if ref == STRING:
        size, at = varuint_at(buf, pos)
        pos = at + size
        if pos > len(buf):
            raise ProtocolError("string runs past the end of the update")
        length = utf16_length(buf[at:pos])
    elif ref == DELETED:
        length, pos = varuint_at(buf, pos)
    elif ref == JSON:
        length, pos = varuint_at(buf, pos)
        for _ in range(length):
            pos = _skip_bytes(buf, pos)
    elif ref == ANY:
        length, pos = varuint_at(buf, pos)
        for _ in range(length):
            pos = _skip_any(buf, pos)
    else:
        length = 1
        if ref in (BINARY, EMBED):
            pos = _skip_bytes(buf, pos)
        elif ref == FORMAT:
            pos = _skip_bytes(buf, _skip_bytes(buf, pos))
        elif ref == TYPE:
            type_ref, pos = varuint_at(buf, pos)
            if type_ref in (XML_ELEMENT, XML_HOOK):
                pos = _skip_bytes(buf, pos)
        elif ref == SUBDOC:
            pos = _skip_any(buf, _skip_bytes(buf, pos))
        else:
            raise ProtocolError(f"unknown content type {ref}")
    return _Struct(ref, length, origin, right, start, content_start, pos, parent)


def _skip_uint(buf: bytes, pos: int) -> int:
    while buf[pos] & 0x80:
        pos += 1
    return pos + 1


def _string_bytes(buf: bytes, pos: int) -> bytes:
    size, start = varuint_at(buf, pos)
    return buf[start : start + size]


def utf16_length(utf8: bytes) -> int:
    """A string's length as Yjs counts it (UTF-16 code units), from its UTF-8."""
    if utf8.isascii():
        return len(utf8)
    text = utf8.decode("utf-8")  # strict: a malformed string stops the squash
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _skip_bytes(buf: bytes, pos: int) -> int:
    size, pos = varuint_at(buf, pos)
    end = pos + size
    if end > len(buf):
        raise ProtocolError("length runs past the end of the update")
    return end


def _skip_any(buf: bytes, pos: int) -> int:
    """Past one lib0 ``writeAny`` value."""
    kind = buf[pos]
    pos += 1
    if kind in (127, 126, 121, 120):  # undefined, null, false, true
        return pos
    if kind == 125:  # varint: 6 bits in the first byte, then 7 per byte
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if kind == 124:  # float32
        return pos + 4
    if kind in (123, 122):  # float64, bigint64
        return pos + 8
    if kind in (119, 116):  # string, Uint8Array
        return _skip_bytes(buf, pos)
    if kind == 118:  # object: count, then key and value
        count, pos = varuint_at(buf, pos)
        for _ in range(count):
            pos = _skip_any(buf, _skip_bytes(buf, pos))
        return pos
    if kind == 117:  # array
        count, pos = varuint_at(buf, pos)
        for _ in range(count):
            pos = _skip_any(buf, pos)
        return pos
    raise ProtocolError(f"unknown value type {kind}")
