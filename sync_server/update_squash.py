"""Squash a Yjs update: one struct for each run of text a client typed in sequence.

A room broadcasts each batch of gated transactions as one update,
``merge_updates`` of the batch. That merge keeps every transaction's structs as
they came: a client that typed ten characters into one batch sends ten
one-character items, and every receiver integrates ten items. The same
characters in the server's own document are one item (Yjs and yrs squash
adjacent items after every transaction), which is what an update encoded from a
document holds, but encoding from the document costs a walk of its whole delete
set, about 1 ms for a 20,000-task project.

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
edits per typist, and each receiver (a phone, say) pays per item. Measured by
``bench.fanout_peers`` (200 clients x 10 edits): 3.8 -> 2.5 ms of client CPU per
1,000 edits delivered; see ``bench/README.md``.

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

from .protocol import ProtocolError, varuint, varuint_at

log = logging.getLogger(__name__)

ORIGIN = 0x80
RIGHT_ORIGIN = 0x40
PARENT_SUB = 0x20
CONTENT_REF = 0x1F
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, SUBDOC, SKIP = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
)
XML_ELEMENT, XML_HOOK = 3, 5  # type refs followed by a name


class _Item:
    """One parsed struct: where its bytes are and what a merge needs to know."""

    __slots__ = ("content_start", "end", "length", "origin", "ref", "right", "start", "text")

    def __init__(self) -> None:
        self.text: bytes | None = None  # a string item's UTF-8, once it is merged


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


def _squash(update: bytes) -> bytes:
    clients, pos = varuint_at(update, 0)
    runs: list[tuple[int, int, list[_Item]]] = []
    merged_any = False
    for _ in range(clients):
        count, pos = varuint_at(update, pos)
        client, pos = varuint_at(update, pos)
        first_clock, pos = varuint_at(update, pos)
        clock = first_clock
        items: list[_Item] = []
        for _ in range(count):
            item, pos = _read_struct(update, pos, client)
            item_clock = clock
            clock += item.length
            prev = items[-1] if items else None
            if (
                prev is not None
                and item.ref == STRING
                and prev.ref == STRING
                and item.origin == (client, item_clock - 1)
                and item.right == prev.right
            ):
                if prev.text is None:
                    prev.text = _string_bytes(update, prev.content_start)
                prev.text += _string_bytes(update, item.content_start)
                prev.length += item.length
                merged_any = True
                continue
            items.append(item)
        runs.append((client, first_clock, items))
    if not merged_any:
        return update
    out = bytearray(varuint(clients))
    for client, first_clock, items in runs:
        out += varuint(len(items))
        out += varuint(client)
        out += varuint(first_clock)
        for item in items:
            if item.text is None:
                out += update[item.start : item.end]
            else:
                out += update[item.start : item.content_start]
                out += varuint(len(item.text))
                out += item.text
    out += update[pos:]  # the delete set
    return bytes(out)


def _read_struct(buf: bytes, pos: int, client: int) -> tuple[_Item, int]:
    item = _Item()
    item.start = pos
    info = buf[pos]
    pos += 1
    ref = info & CONTENT_REF
    item.ref = ref
    item.origin = item.right = None
    if ref in (GC, SKIP):
        item.length, pos = varuint_at(buf, pos)
        item.content_start = item.start + 1
        item.end = pos
        return item, pos
    if info & ORIGIN:
        origin_client, pos = varuint_at(buf, pos)
        origin_clock, pos = varuint_at(buf, pos)
        item.origin = (origin_client, origin_clock)
    if info & RIGHT_ORIGIN:
        right_client, pos = varuint_at(buf, pos)
        right_clock, pos = varuint_at(buf, pos)
        item.right = (right_client, right_clock)
    if not info & (ORIGIN | RIGHT_ORIGIN):
        is_root, pos = varuint_at(buf, pos)
        if is_root == 1:
            pos = _skip_bytes(buf, pos)  # the root type's name
        else:
            _, pos = varuint_at(buf, pos)
            _, pos = varuint_at(buf, pos)
        if info & PARENT_SUB:
            pos = _skip_bytes(buf, pos)
    item.content_start = pos
    if ref == STRING:
        size, start = varuint_at(buf, pos)
        pos = start + size
        if pos > len(buf):
            raise ProtocolError("string runs past the end of the update")
        item.length = _utf16_length(buf[start:pos])
    elif ref == DELETED:
        item.length, pos = varuint_at(buf, pos)
    elif ref == JSON:
        item.length, pos = varuint_at(buf, pos)
        for _ in range(item.length):
            pos = _skip_bytes(buf, pos)
    elif ref == ANY:
        item.length, pos = varuint_at(buf, pos)
        for _ in range(item.length):
            pos = _skip_any(buf, pos)
    else:
        item.length = 1
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
            raise ProtocolError(f"unknown content type {ref} in client {client}'s structs")
    item.end = pos
    return item, pos


def _string_bytes(buf: bytes, pos: int) -> bytes:
    size, start = varuint_at(buf, pos)
    return buf[start : start + size]


def _utf16_length(utf8: bytes) -> int:
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
