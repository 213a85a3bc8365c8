"""The y-websocket wire protocol, plus Tandem's own message type. Pure: bytes in, messages out.

Message layout (lib0 encoding, as y-websocket / y-protocols write it):

    varuint message type
      0 SYNC       varuint sync type (0 step 1, 1 step 2, 2 update), varbytes payload
      1 AWARENESS  varbytes awareness update
      2 AUTH       varuint 0 (permission denied), varstring reason   (server -> client)
      3 QUERY_AWARENESS (no payload)
      100 TANDEM   varstring JSON object (acks, rejections, errors; opt-in, see below)

Standard clients never see a TANDEM message: the server sends them only to
connections that asked for them (``?tandem=1``), so unmodified y-websocket
clients do not log "Unable to compute message".

Every parser here is strict: a truncated varint, a length that runs past the
end of the frame, a varint wider than 53 bits (JavaScript's safe integers) or
bytes left over after a message raise :class:`ProtocolError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

MAX_VARUINT_BITS = 53  # lib0 writes JS numbers; anything wider is not from a real client


class ProtocolError(ValueError):
    """A frame that is not a valid message."""


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    TANDEM = 100


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True)
class AwarenessMessage:
    update: bytes
    entries: tuple[AwarenessEntry, ...]


class AwarenessEntry:
    """One client's presence: ``state`` is its JSON value (None: the client is gone).

    Entries decoded from a message keep the state's bytes and decode and parse them on
    first use (a ProtocolError then, if they are not UTF-8 JSON): stock y-websocket
    clients send back every state they hear, so with 1,000 clients a server that
    parsed eagerly would decode a million states it then ignores as not the sender's
    own.
    """

    __slots__ = ("_raw", "_state", "client_id", "clock")

    def __init__(self, client_id: int, clock: int, state: Any = None, *, raw: bytes | None = None):
        self.client_id = client_id
        self.clock = clock
        self._state = state
        self._raw = raw  # the state's JSON as UTF-8 bytes, not yet decoded

    @property
    def state(self) -> Any:
        if self._raw is not None:
            try:
                self._state = json.loads(self._raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ProtocolError("awareness state is not valid UTF-8") from e
            except ValueError as e:
                raise ProtocolError("awareness state is not JSON") from e
            self._raw = None
        return self._state

    def _key(self) -> tuple[int, int, str]:
        return (self.client_id, self.clock, json.dumps(self.state, sort_keys=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AwarenessEntry) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"AwarenessEntry({self.client_id}, {self.clock}, {self.state!r})"


@dataclass(frozen=True)
class QueryAwareness:
    pass


@dataclass(frozen=True)
class TandemMessage:
    payload: dict[str, Any]


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | TandemMessage


class Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def varuint(self) -> int:
        num, self.pos = varuint_at(self.buf, self.pos)
        return num

    def varbytes(self) -> bytes:
        length = self.varuint()
        end = self.pos + length
        if end > len(self.buf):
            raise ProtocolError(
                f"length {length} runs past the end of the message ({len(self.buf) - self.pos} bytes left)"
            )
        data = self.buf[self.pos : end]
        self.pos = end
        return data

    def varstring(self) -> str:
        try:
            return self.varbytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("string is not valid UTF-8") from e

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise ProtocolError(f"{len(self.buf) - self.pos} unexpected bytes after the message")


def decode_message(frame: bytes) -> Message:
    """Parse one WebSocket frame into a message, or raise ProtocolError."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError("text frames are not part of the protocol; send binary frames")
    frame = bytes(frame)
    r = Reader(frame)
    mtype = r.varuint()
    msg: Message
    if mtype == MessageType.SYNC:
        stype = r.varuint()
        payload = r.varbytes()
        if stype == SyncType.STEP1:
            msg = SyncStep1(payload)
        elif stype == SyncType.STEP2:
            msg = SyncStep2(payload)
        elif stype == SyncType.UPDATE:
            msg = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync message type {stype}")
    elif mtype == MessageType.AWARENESS:
        payload = r.varbytes()
        msg = AwarenessMessage(payload, decode_awareness_update(payload))
    elif mtype == MessageType.QUERY_AWARENESS:
        msg = QueryAwareness()
    elif mtype == MessageType.TANDEM:
        text = r.varstring()
        try:
            payload_obj = json.loads(text)
        except ValueError as e:
            raise ProtocolError("tandem message is not JSON") from e
        if not isinstance(payload_obj, dict):
            raise ProtocolError("tandem message must be a JSON object")
        msg = TandemMessage(payload_obj)
    elif mtype == MessageType.AUTH:
        raise ProtocolError("auth messages are sent by the server only")
    else:
        raise ProtocolError(f"unknown message type {mtype}")
    r.done()
    return msg


def varuint_at(buf: bytes, pos: int) -> tuple[int, int]:
    """The varuint starting at ``pos`` and the position after it: truncated, or wider than
    53 bits (JavaScript's safe integers), it raises ProtocolError.

    Wide varuints are mostly client ids, the same few again and again (a Yjs client id
    takes 5 bytes, pycrdt's up to 8): their end is found by a regular expression and
    their value looked up by their bytes, a third of the time of decoding them."""
    end = len(buf)
    if pos + 1 < end:
        first = buf[pos]
        if first < 0x80:  # one byte: most lengths, counts and clocks
            return first, pos + 1
        second = buf[pos + 1]
        if second < 0x80:  # two: clocks past 127 (never worth a cache entry)
            return (first & 0x7F) | (second << 7), pos + 2
    elif pos < end and buf[pos] < 0x80:  # one byte, the buffer's last
        return buf[pos], pos + 1
    last = _CONTINUED.match(buf, pos).end()  # type: ignore[union-attr]  # (always matches)
    if last - pos >= _MAX_VARUINT_BYTES:
        raise ProtocolError("varint wider than 53 bits")
    if last >= end:
        raise ProtocolError("truncated varint")
    raw = buf[pos : last + 1]
    if type(raw) is not bytes:  # a bytearray's slice is no dictionary key
        raw = bytes(raw)
    num = _WIDE.get(raw)
    if num is None:
        num = 0
        for i, byte in enumerate(raw):
            num |= (byte & 0x7F) << (7 * i)
        if num >= 1 << MAX_VARUINT_BITS:
            raise ProtocolError("varint wider than 53 bits")
        if len(_WIDE) >= _WIDE_CACHED:
            _WIDE.clear()
        _WIDE[raw] = num
    return num, last + 1


_MAX_VARUINT_BYTES = (MAX_VARUINT_BITS + 6) // 7 + 1  # 9: as lib0 may pad a value
# the bytes of a varuint before its last: one more than allowed is enough to refuse it
# (a run of megabytes of 0x80 is not scanned to its end)
_CONTINUED = re.compile(rb"[\x80-\xff]{0,%d}" % _MAX_VARUINT_BYTES)
_WIDE: dict[bytes, int] = {}  # wide varuints decoded, by their bytes (bounded)
_WIDE_CACHED = 4096


def decode_awareness_update(payload: bytes) -> tuple[AwarenessEntry, ...]:
    """Every entry's client id and clock, and its state's bytes (decoded on first use).

    The hot loop of a big room: every stock y-websocket client echoes each state
    it hears, so a server with N clients reads N entries for every state relayed.
    Clocks and lengths below 128 (nearly all) are read inline.
    """
    count, pos = varuint_at(payload, 0)
    end = len(payload)
    if count > end:  # each entry takes at least 3 bytes: cheap bound before looping
        raise ProtocolError(f"awareness update claims {count} entries in {end} bytes")
    entries = []
    for _ in range(count):
        client_id, pos = varuint_at(payload, pos)
        if pos < end and payload[pos] < 0x80:
            clock = payload[pos]
            pos += 1
        else:
            clock, pos = varuint_at(payload, pos)
        if pos < end and payload[pos] < 0x80:
            length = payload[pos]
            pos += 1
        else:
            length, pos = varuint_at(payload, pos)
        if pos + length > end:
            raise ProtocolError(
                f"length {length} runs past the end of the message ({end - pos} bytes left)"
            )
        entries.append(AwarenessEntry(client_id, clock, raw=payload[pos : pos + length]))
        pos += length
    if pos != end:
        raise ProtocolError(f"{end - pos} unexpected bytes after the message")
    return tuple(entries)


def awareness_holds_only(frame: bytes, known: Mapping[int, bytes]) -> bool:
    """Whether ``frame`` is an awareness message whose every entry is, byte for byte,
    ``known[client id]`` (an entry as ``encode_awareness_entry`` wrote it).

    Allocation-free (a varuint and a ``startswith`` per entry), so echoes of states a
    server already holds are told apart without decoding them; anything unexpected,
    malformed bytes included, is simply False and left to ``decode_message``.
    """
    try:
        if frame[:1] != bytes((MessageType.AWARENESS,)):
            return False
        length, pos = varuint_at(frame, 1)
        if pos + length != len(frame):
            return False
        count, pos = varuint_at(frame, pos)
        for _ in range(count):
            entry = known.get(varuint_at(frame, pos)[0])
            if entry is None or not frame.startswith(entry, pos):
                return False
            pos += len(entry)
    except ProtocolError:
        return False
    return pos == len(frame)


# -- encoding ------------------------------------------------------------------


def varuint(num: int) -> bytes:
    if num < 0:
        raise ValueError("varuint must be >= 0")
    out = bytearray()
    while num > 0x7F:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)
    return bytes(out)


def varbytes(data: bytes) -> bytes:
    return varuint(len(data)) + data


def encode_sync_step1(state_vector: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.STEP1)) + varbytes(state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.STEP2)) + varbytes(update)


def encode_update(update: bytes) -> bytes:
    return bytes((MessageType.SYNC, SyncType.UPDATE)) + varbytes(update)


def encode_awareness(update: bytes) -> bytes:
    return bytes((MessageType.AWARENESS,)) + varbytes(update)


def encode_awareness_entry(entry: AwarenessEntry) -> bytes:
    """One client's part of an awareness update (updates are a count, then these)."""
    state = json.dumps(entry.state, separators=(",", ":")).encode()
    return varuint(entry.client_id) + varuint(entry.clock) + varbytes(state)


def encode_awareness_update(entries: list[AwarenessEntry] | tuple[AwarenessEntry, ...]) -> bytes:
    return varuint(len(entries)) + b"".join(encode_awareness_entry(e) for e in entries)


def encode_query_awareness() -> bytes:
    return bytes((MessageType.QUERY_AWARENESS,))


def encode_permission_denied(reason: str) -> bytes:
    return bytes((MessageType.AUTH, 0)) + varbytes(reason.encode())


def encode_tandem(payload: dict[str, Any]) -> bytes:
    text = json.dumps(payload, separators=(",", ":")).encode()
    return bytes((MessageType.TANDEM,)) + varbytes(text)
